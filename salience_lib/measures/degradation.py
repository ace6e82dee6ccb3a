"""(e) Does salience react sensibly to salience-guided degradation?

*Single pass* (the paper's protocol, Crum et al. 2023 §IV-E, and the authors' Explain2Me code):
upsample the map to the input size, smooth it with a Gaussian of σ = 5 px, rescale to
:math:`s \\in [0, 10]` in steps of 0.1, and blur every pixel with a Gaussian of

.. math:: \\sigma(s) = (10 - s)^4 / 1000 \\ \\text{px}

— mode ``background``: salient pixels (s = 10) stay sharp and the rest is blurred up to σ = 10;
mode ``salient``: :math:`s` is replaced by :math:`10 - s`, so the salient regions are blurred.
Both σ are in pixels at 224 px and scaled by ``side/224`` for other sizes (``reference_size``).
Per image: the drop of the probability of the clean prediction, whether the prediction flips, and
the similarity of the new map to the original.

*Iterative deletion*: blur (σ = 10 px at 224) the top-``q`` fraction of pixels ranked by salience,
q = 0 … 1, and record the probability of the clean prediction; the normalised area under that
curve is low for a faithful explainer. :func:`random_maps` gives the baseline: random maps at the
explainer's native resolution, upsampled like a salience map — blobs of the same area and texture.
A faithful explainer hurts the score more in mode ``salient`` than in ``background`` and than random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from salience_lib.imaging import _spatially_varying_blur, blur_levels, check_images, check_unit_images, gaussian_blur
from salience_lib.inference import class_probabilities
from salience_lib.maps import check_finite, check_maps, pixel_ranks, resize_maps, top_fraction_mask
from salience_lib.measures.accumulator import Accumulator
from salience_lib.measures.out_of_set import normalised_auc
from salience_lib.measures.probe import Explainer, Similarity, clean_pass, probe
from salience_lib.similarity import ssim

__all__ = [
    "DEFAULT_FRACTIONS",
    "DegradationAccumulator",
    "DegradationResult",
    "DeletionAccumulator",
    "DeletionCurve",
    "degradation_effect",
    "deletion_blur",
    "deletion_curve",
    "level_sigmas",
    "random_maps",
    "salience_guided_blur",
]

Mode = Literal["background", "salient"]
_MODES = ("background", "salient")
N_LEVELS = 101
DEFAULT_FRACTIONS: tuple[float, ...] = tuple(i / 10 for i in range(11))


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}")


def _scale(side: int, reference_size: int | None) -> float:
    return 1.0 if reference_size is None else side / reference_size


def level_sigmas(scale: float = 1.0, n_levels: int = N_LEVELS) -> torch.Tensor:
    """σ in pixels for each level ``i`` (``s = 10·i/(n_levels−1)``): ``scale · (10 − s)^4 / 1000``."""
    s = torch.linspace(0, 10, n_levels, dtype=torch.float64)
    return scale * (10 - s) ** 4 / 1000


SMOOTHING_SIGMA = 5.0
"""σ (px at the reference size) of the map smoothing before the blur levels are cut."""


def salience_guided_blur(
    images: torch.Tensor,
    maps: torch.Tensor,
    mode: Mode = "background",
    smoothing_sigma: float = SMOOTHING_SIGMA,
    reference_size: int | None = 224,
) -> torch.Tensor:
    """The paper's single-pass, spatially varying blur guided by salience (module docstring).

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
        maps: ``(B, h, w)`` salience maps (any resolution; upsampled bilinearly).
        mode: ``"background"`` keeps salient regions sharp; ``"salient"`` blurs them.
        smoothing_sigma: σ (px at ``reference_size``) of the map smoothing.
        reference_size: side at which σ values are defined; ``None`` = use them as given.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf, NaN/inf maps, a bad ``mode``, or
            maps and images of different batch sizes.
    """
    return _guided_blur(check_unit_images(images), maps, mode, smoothing_sigma, reference_size)


def _guided_blur(images: torch.Tensor, maps: torch.Tensor, mode: Mode, smoothing_sigma: float,
                 reference_size: int | None) -> torch.Tensor:  # fmt: skip
    """:func:`salience_guided_blur` of images the caller has checked (:func:`degradation_effect`)."""
    maps = check_maps(maps)
    _check_mode(mode)
    if maps.shape[0] != images.shape[0]:
        raise ValueError(f"`maps` has {maps.shape[0]} maps but `images` has {images.shape[0]} images")
    scale = _scale(min(images.shape[-2:]), reference_size)
    levels = blur_levels(maps.to(images.device), tuple(images.shape[-2:]), smoothing_sigma * scale, N_LEVELS)
    if mode == "salient":
        levels = (N_LEVELS - 1) - levels
    return _spatially_varying_blur(images, level_sigmas(scale), levels)


@dataclass
class DegradationResult:
    """Per-image effect of one single-pass degradation (all ``(B,)``)."""

    mode: str
    clean_probability: torch.Tensor
    probability: torch.Tensor
    flipped: torch.Tensor
    similarity: torch.Tensor

    @property
    def probability_drop(self) -> torch.Tensor:
        """Clean minus degraded probability of the clean prediction (positive = hurt)."""
        return self.clean_probability - self.probability


def degradation_effect(
    model: nn.Module,
    explainer: Explainer,
    images: torch.Tensor,
    mode: Mode = "background",
    similarity: Similarity = ssim,
    maps: torch.Tensor | None = None,
    reference_size: int | None = 224,
    *,
    clean_maps: torch.Tensor | None = None,
    clean_probabilities: torch.Tensor | None = None,
) -> DegradationResult:
    """Blur guided by the explainer's maps and measure score change, flips and salience change.

    ``maps`` may be given (e.g. :func:`random_maps` for the baseline); by default they are
    ``explainer(images)``. The similarity compares ``explainer(degraded)`` with ``explainer(images)``.
    One model pass for the degraded images (:func:`~salience_lib.measures.probe.probe`); callers
    that run several degradations of the same batch pass ``clean_maps`` (= ``explainer(images)``)
    and ``clean_probabilities`` (the model's ``(B, K)`` probabilities on ``images``) once.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf (before any pass); NaN or inf maps or
            probabilities (the message says which); a bad ``mode``.
    """
    _check_mode(mode)
    check_unit_images(images)
    explain = probe(model, explainer)
    clean_maps, clean = clean_pass(explain, images, clean_maps, clean_probabilities)
    guide = clean_maps if maps is None else maps
    degraded = _guided_blur(images, guide, mode, SMOOTHING_SIGMA, reference_size)  # images checked above
    targets = clean.argmax(dim=1)
    degraded_maps, after = explain(degraded, f"the images degraded in mode {mode!r}")
    return DegradationResult(
        mode=mode,
        clean_probability=clean.gather(1, targets[:, None])[:, 0],
        probability=after.gather(1, targets[:, None])[:, 0],
        flipped=after.argmax(dim=1) != targets,
        similarity=similarity(degraded_maps, clean_maps),
    )


def _clean_probabilities(model: nn.Module, images: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
    """``given`` (checked: one row of class probabilities per image) or the model's probabilities on ``images``."""
    if given is None:
        return class_probabilities(model, images)
    if given.ndim != 2 or given.shape[0] != images.shape[0]:
        expected = f"({images.shape[0]}, classes)"
        raise ValueError(f"`clean_probabilities` must have shape {expected}, got {tuple(given.shape)}")
    return given


def random_maps(
    batch: int, size: tuple[int, int], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Uniform random maps ``(B, h, w)`` — a salience baseline with no information.

    Draw them at the explainer's native resolution so that, once upsampled, they form blobs like a
    real salience map of the same resolution.
    """
    return torch.rand((batch, *size), generator=generator, device=device)


@dataclass
class DeletionCurve:
    """Probability of the clean prediction as the top-q salient pixels are blurred (``(B, Q)``)."""

    fractions: torch.Tensor
    probability: torch.Tensor

    def auc(self) -> torch.Tensor:
        """``(B,)`` normalised area under the deletion curve (lower = more faithful ranking)."""
        return normalised_auc(self.fractions, self.probability)


def deletion_blur(images: torch.Tensor, sigma: float = 10.0, reference_size: int | None = 224) -> torch.Tensor:
    """The images :func:`deletion_curve` swaps in for the deleted pixels: blurred with σ = ``sigma`` px at 224.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf (:func:`~salience_lib.imaging.gaussian_blur`).
    """
    images = check_images(images)
    return gaussian_blur(images, sigma * _scale(min(images.shape[-2:]), reference_size))


def deletion_curve(
    model: nn.Module,
    maps: torch.Tensor,
    images: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    sigma: float = 10.0,
    reference_size: int | None = 224,
    *,
    clean_probabilities: torch.Tensor | None = None,
    blurred: torch.Tensor | None = None,
) -> DeletionCurve:
    """Blur the top-``q`` fraction of pixels (ranked by ``maps`` upsampled to the input size).

    Args:
        model: classifier; the target is its prediction on the clean images.
        maps: ``(B, h, w)`` salience (or :func:`random_maps` for the baseline).
        images: ``(B, C, H, W)``.
        fractions: increasing q values in [0, 1].
        sigma: blur σ in px at ``reference_size``.
        clean_probabilities: the model's ``(B, classes)`` softmax on ``images``, if already known.
        blurred: ``images`` blurred with ``sigma`` (at ``reference_size``), if already known — e.g.
            by a caller that ranks the same images by several maps.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf; NaN/inf maps; maps for another number
            of images than ``images``; bad ``fractions``; NaN or inf probabilities (at which fraction).
    """
    images = check_unit_images(images)
    maps = check_maps(maps)
    if maps.shape[0] != images.shape[0]:
        raise ValueError(
            f"`maps` and `images` must hold one map per image, got maps of shape {tuple(maps.shape)} "
            f"and images of shape {tuple(images.shape)}"
        )
    grid = torch.tensor([float(f) for f in fractions], dtype=torch.float64)
    if grid.numel() < 2 or not bool((grid[1:] > grid[:-1]).all()) or grid[0] < 0 or grid[-1] > 1:
        raise ValueError(f"`fractions` must be increasing values in [0, 1], got {list(fractions)}")
    ranking = resize_maps(maps.float().to(images.device), tuple(images.shape[-2:]))
    if blurred is None:
        blurred = deletion_blur(images, sigma, reference_size)
    elif blurred.shape != images.shape:
        raise ValueError(f"`blurred` has shape {tuple(blurred.shape)} but `images` {tuple(images.shape)}")
    clean = _clean_probabilities(model, images, clean_probabilities)
    targets = clean.argmax(dim=1)
    ranks = pixel_ranks(ranking)  # one sort for every fraction
    probs = []
    for q in grid.tolist():
        if q == 0:  # nothing blurred: the clean image, whose probabilities are known
            probs.append(clean.gather(1, targets[:, None])[:, 0])
            continue
        chosen = top_fraction_mask(ranking, q, minimum=0, ranks=ranks)[:, None]
        probs.append(class_probabilities(model, torch.where(chosen, blurred, images)).gather(1, targets[:, None])[:, 0])
    curve = torch.stack(probs, dim=1)
    finite = torch.isfinite(curve).all(dim=0).tolist()  # one synchronisation for every fraction
    if not all(finite):
        q = grid[finite.index(False)].item()
        what = "the clean images" if q == 0 else f"the images with the top {q:g} of pixels blurred"
        check_finite((f"the model's probabilities on {what}", curve))
    return DeletionCurve(fractions=grid, probability=curve)


class DegradationAccumulator(Accumulator):
    """Streams :class:`DegradationResult` of one mode: probability drop, flip rate, map similarity."""

    def __init__(self, mode: Mode = "background") -> None:
        super().__init__()
        _check_mode(mode)
        self.mode = mode
        for name in ("probability_drop", "flipped", "similarity"):
            self.add_cat_state(name)

    def config(self) -> dict[str, str]:
        return {"mode": self.mode}

    def update(self, result: DegradationResult) -> None:
        """Add one batch's result."""
        if result.mode != self.mode:
            raise ValueError(f"result of mode {result.mode!r} given to an accumulator of mode {self.mode!r}")
        self._cat("probability_drop", result.probability_drop)
        self._cat("flipped", result.flipped.double())
        self._cat("similarity", result.similarity)

    def compute(self) -> dict[str, object]:
        """Summaries of the probability drop, the flip rate and the map similarity."""
        return {name: self.summary(name) for name in ("probability_drop", "flipped", "similarity")} | {"n": self.count}


class DeletionAccumulator(Accumulator):
    """Streams :class:`DeletionCurve` results: AUC summary and the mean curve."""

    def __init__(self, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> None:
        super().__init__()
        self.fractions = tuple(float(f) for f in fractions)
        self.add_cat_state("auc")
        self.add_sum_state("curve_sum", (len(self.fractions),))

    def config(self) -> dict[str, object]:
        return {"fractions": self.fractions}

    def update(self, curve: DeletionCurve) -> None:
        """Add one batch's curves."""
        if tuple(curve.fractions.tolist()) != self.fractions:
            raise ValueError(f"curve fractions {tuple(curve.fractions.tolist())} differ from {self.fractions}")
        self._cat("auc", curve.auc())
        self._add("curve_sum", curve.probability.sum(dim=0))

    def compute(self) -> dict[str, object]:
        """AUC summary and the mean probability at each fraction."""
        return {
            "auc": self.summary("auc"),
            "mean_curve": (self.curve_sum / max(self.count, 1)).tolist(),
            "n": self.count,
        }
