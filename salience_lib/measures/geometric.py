"""(c) Does salience follow geometric transforms?

For a transform :math:`T` (flips, ±90° rotations, 8 compass shifts by ``side/14`` px with
edge-replicate padding, arbitrary rotations and zooms — :mod:`salience_lib.transforms`):

.. math:: c_T(x) = \\mathrm{sim}\\big(S(T x),\\ T(S(x))\\big)

with both maps at the input size. Two protocols (:mod:`salience_lib.protocol`):

* ``"paper"`` — the authors' 12 transforms (flips, ±90°, 8 shifts by side/14 with edge replication,
  their Transformations notebook), both maps their "upscaled" 8-bit files (PIL bicubic of the 8-bit
  map), compared over the whole image (their code does not show the comparison: assumed);
* ``"refined"`` — 14 transforms (adds a 30° rotation and a ×1.25 zoom), maps upsampled bilinearly,
  pixels that :math:`T` brought in from outside the image masked out and both maps min–max
  renormalised over the valid region (``mask_out_of_frame``).

1 means the salience moved exactly with the image; an explainer that only looks at pixel values (e.g.
the channel mean of the image) scores 1 on every transform.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from salience_lib.imaging import check_unit_images
from salience_lib.maps import check_maps, minmax_normalise, upsample_maps
from salience_lib.measures.accumulator import Accumulator, summary_of
from salience_lib.measures.probe import Explainer, Similarity
from salience_lib.similarity import ssim
from salience_lib.transforms import DEFAULT_TRANSFORMS, Transform, get_transform, transform_maps

__all__ = ["GeometricAccumulator", "geometric_consistency"]


def _at_input_size(maps: torch.Tensor, images: torch.Tensor, name: str, upsample: str) -> torch.Tensor:
    maps = check_maps(maps, name)  # finite: a NaN map must not be renormalised into a "perfect" score
    return upsample_maps(maps, tuple(images.shape[-2:]), upsample)


def geometric_consistency(
    explainer: Explainer,
    images: torch.Tensor,
    transforms: Iterable[str | Transform] | None = None,
    similarity: Similarity = ssim,
    *,
    clean_maps: torch.Tensor | None = None,
    mask_out_of_frame: bool = True,
    upsample: str = "bilinear",
) -> dict[str, torch.Tensor]:
    """Consistency of salience under each transform, ``{name: (B,)}``.

    Args:
        explainer: ``images -> (B, h, w)`` maps.
        images: ``(B, C, H, W)`` images.
        transforms: names or :class:`~salience_lib.transforms.Transform` objects; ``None`` =
            :data:`~salience_lib.transforms.DEFAULT_TRANSFORMS`.
        similarity: ``(a, b, mask=...) -> (B,)``; must accept a boolean ``mask`` keyword.
        clean_maps: ``explainer(images)``, when the caller already has it (one pass per transform then).
        mask_out_of_frame: compare only the pixels ``T`` did not bring in from outside, both maps
            min–max renormalised over them (ours); ``False``: the whole maps as they are (the
            ``"paper"`` protocol, assumed).
        upsample: how maps reach the input size, :func:`salience_lib.maps.upsample_maps`
            (``"bilinear"``; ``"pil_bicubic"``: the authors' 8-bit "upscaled" maps).

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf; NaN or inf maps (the message names the
            transform); no transform.
    """
    chosen = [get_transform(t) for t in (DEFAULT_TRANSFORMS if transforms is None else transforms)]
    if not chosen:
        raise ValueError("`transforms` must name at least one transform")
    check_unit_images(images)
    clean_name = "clean_maps"
    if clean_maps is None:
        clean_maps, clean_name = explainer(images), "explainer output on the clean images"
    elif clean_maps.shape[0] != images.shape[0]:
        raise ValueError(f"`clean_maps` has {clean_maps.shape[0]} maps but `images` has {images.shape[0]} images")
    reference = _at_input_size(clean_maps, images, clean_name, upsample)
    scores: dict[str, torch.Tensor] = {}
    for transform in chosen:
        moved_images, valid = transform(images)
        of_moved = _at_input_size(
            explainer(moved_images), images, f"explainer output on the {transform.name} images", upsample
        )
        moved_maps, _ = transform_maps(transform, reference)
        if mask_out_of_frame:
            a, b = minmax_normalise(of_moved, valid), minmax_normalise(moved_maps, valid)
            scores[transform.name] = similarity(a, b, mask=valid)
        else:
            scores[transform.name] = similarity(of_moved, moved_maps)
    return scores


class GeometricAccumulator(Accumulator):
    """Streams :func:`geometric_consistency`; ``compute()`` = ``{name: Summary}`` plus ``"mean"``."""

    def __init__(self, transforms: Iterable[str | Transform] | None = None) -> None:
        super().__init__()
        self.transforms = tuple(
            get_transform(t).name for t in (DEFAULT_TRANSFORMS if transforms is None else transforms)
        )
        self.add_cat_state("scores", (len(self.transforms),))
        self.add_cat_state("mean")

    def config(self) -> dict[str, object]:
        return {"transforms": self.transforms}

    def update(self, scores: dict[str, torch.Tensor]) -> None:
        """Add one batch's scores (the output of :func:`geometric_consistency`)."""
        if tuple(scores) != self.transforms:
            raise ValueError(f"scores for {tuple(scores)} do not match the accumulator's transforms {self.transforms}")
        stacked = torch.stack(list(scores.values()), dim=1)
        self._cat("scores", stacked)
        self._cat("mean", stacked.mean(dim=1))

    def compute(self) -> dict[str, object]:
        """Per-transform summaries and the summary of each image's mean over transforms."""
        scores = self.values("scores")
        out: dict[str, object] = {name: summary_of(scores[:, i]) for i, name in enumerate(self.transforms)}
        out["mean"] = self.summary("mean")
        out["n"] = self.count
        return out
