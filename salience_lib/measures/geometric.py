"""(c) Does salience follow geometric transforms?

For a transform :math:`T` (flips, ±90° rotations, 8 compass shifts by ``side/14`` px with
edge-replicate padding, arbitrary rotations and zooms — :mod:`salience_lib.transforms`):

.. math:: c_T(x) = \\mathrm{sim}\\big(S(T x),\\ T(S(x))\\big)

with both maps upsampled (bilinear) to the input size, pixels that :math:`T` brought in from
outside the image masked out, and both maps min–max renormalised over the valid region. 1 means the
salience moved exactly with the image; an explainer that only looks at pixel values (e.g. the
channel mean of the image) scores 1 on every transform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from salience_lib.maps import check_maps, minmax_normalise, resize_maps
from salience_lib.measures.accumulator import Accumulator
from salience_lib.similarity import ssim
from salience_lib.transforms import DEFAULT_TRANSFORMS, Transform, get_transform, transform_maps

__all__ = ["GeometricAccumulator", "geometric_consistency"]

Explainer = Callable[[torch.Tensor], torch.Tensor]
Similarity = Callable[..., torch.Tensor]


def _maps_at(explainer: Explainer, images: torch.Tensor) -> torch.Tensor:
    maps = check_maps(explainer(images), "explainer output")
    return resize_maps(maps.float(), tuple(images.shape[-2:]))


def geometric_consistency(
    explainer: Explainer,
    images: torch.Tensor,
    transforms: Iterable[str | Transform] | None = None,
    similarity: Similarity = ssim,
) -> dict[str, torch.Tensor]:
    """Consistency of salience under each transform, ``{name: (B,)}``.

    Args:
        explainer: ``images -> (B, h, w)`` maps.
        images: ``(B, C, H, W)`` images.
        transforms: names or :class:`~salience_lib.transforms.Transform` objects; ``None`` =
            :data:`~salience_lib.transforms.DEFAULT_TRANSFORMS`.
        similarity: ``(a, b, mask=...) -> (B,)``; must accept a boolean ``mask`` keyword.
    """
    chosen = [get_transform(t) for t in (DEFAULT_TRANSFORMS if transforms is None else transforms)]
    if not chosen:
        raise ValueError("`transforms` must name at least one transform")
    reference = _maps_at(explainer, images)
    scores: dict[str, torch.Tensor] = {}
    for transform in chosen:
        moved_images, valid = transform(images)
        of_moved = _maps_at(explainer, moved_images)
        moved_maps, _ = transform_maps(transform, reference)
        a = minmax_normalise(of_moved, valid)
        b = minmax_normalise(moved_maps, valid)
        scores[transform.name] = similarity(a, b, mask=valid)
    return scores


class GeometricAccumulator(Accumulator):
    """Streams :func:`geometric_consistency`; ``compute()`` = ``{name: Summary}`` plus ``"mean"``."""

    def __init__(self, transforms: Iterable[str | Transform] | None = None) -> None:
        super().__init__()
        self.transforms = tuple(
            get_transform(t).name for t in (DEFAULT_TRANSFORMS if transforms is None else transforms)
        )

    def config(self) -> dict[str, object]:
        return {"transforms": self.transforms}

    def update(self, scores: dict[str, torch.Tensor]) -> None:
        """Add one batch's scores (the output of :func:`geometric_consistency`)."""
        if tuple(scores) != self.transforms:
            raise ValueError(f"scores for {tuple(scores)} do not match the accumulator's transforms {self.transforms}")
        for name, values in scores.items():
            self._cat(name, values)
        self._cat("mean", torch.stack(list(scores.values())).mean(dim=0))

    def compute(self) -> dict[str, object]:
        """Per-transform summaries and the summary of each image's mean over transforms."""
        out: dict[str, object] = {name: self.summary(name) for name in self.transforms}
        out["mean"] = self.summary("mean")
        out["n"] = self.count
        return out
