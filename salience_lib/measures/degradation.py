r"""(e) Does salience react sensibly to salience-guided degradation?

*Single pass* (the paper's protocol, Crum et al. 2023 §IV-E, and the authors' Explain2Me code,
``Measures/Degradation/main.py``: ``blur_image``, ``get_curve``): bring the map to the input size,
smooth it with a Gaussian of σ = 5 px, rescale to :math:`s \in [0, 10]` in steps of 0.1, and blur
every pixel with a Gaussian of

.. math:: \sigma(s) = (10 - s)^4 / 1000 \ \text{px}

— mode ``background``: salient pixels (s = 10) stay sharp and the rest is blurred up to σ = 10;
mode ``salient`` (their "object"): the salient regions are blurred. Both σ are in pixels at 224 px
and scaled by ``side/224`` for other sizes (``reference_size``). Per image: the drop of the target
class's score, whether the prediction flips (its argmax changes), and the similarity of the new map
to the original.

Which parts are the authors' and which ours — every difference is a field of
:class:`~salience_lib.protocol.Protocol` (``protocol=``; nothing here branches on a protocol's name):

===================================  ==========================================  ===============================
step (Protocol field)                ``"paper"`` (the authors' code)             ``"refined"`` (ours)
===================================  ==========================================  ===============================
map to input size (upsample)         8-bit map (truncated), PIL bicubic          bilinear, float
map smoothing (blur_bits)            scipy on the ``uint8`` map, each pass       float, ``replicate`` border
                                     truncated, ``reflect`` border
levels (blur_levels)                 ``s = S / (max S / 10)``, rounded to 0.1    min–max to [0, 10], rounded
mode salient (salient_mode)          ``255 − map`` *before* smoothing            ``10 − s`` after
image blur (blur_bits, blur_border)  8-bit image, each pass truncated as         float image, ``replicate``
                                     scipy's ``uint8`` output, ``reflect``
score (score)                        sigmoid of logit 1 ("Synthetic")            softmax of the clean prediction
comparison (degradation_compare_at)  both maps PIL bicubic to the input          native size, float
                                     size, 8 bits (their "upscaled" files)
===================================  ==========================================  ===============================

Ours in both: the σ scaling with ``side/224`` and the model's native map where they use 7×7; the
batched tiled blur (:mod:`salience_lib.blur`; the same pixels as their per-level loop — the same
levels, and each 8-bit pixel within one grey level of theirs nearly everywhere, every pixel with
``exact=True`` at ~2× the time); an all-zero map blurs nothing under ``"paper"`` (their code divides
by zero: its NaN levels match no pixel, so the same image, with a warning); the maps are min–max
normalised before the 8-bit guide (torchcam's maps always are); the model runs once per batch, not
rebuilt for each image.

*Iterative deletion* (ours, not in their code): blur (σ = 10 px at 224) the top-``q`` fraction of
pixels ranked by salience, q = 0 … 1, and record the target's score; the normalised area under that
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

from salience_lib.blur import _spatially_varying_blur, blur_levels, from_grey, gaussian_blur, to_grey, upsample_maps
from salience_lib.imaging import check_images, check_unit_images
from salience_lib.inference import Score, get_score
from salience_lib.maps import check_finite, check_maps, pixel_ranks, quantise, resize_maps, top_fraction_mask
from salience_lib.measures.accumulator import Accumulator
from salience_lib.measures.out_of_set import normalised_auc
from salience_lib.measures.probe import Explainer, Similarity, clean_pass, probe
from salience_lib.protocol import Protocol, get_protocol
from salience_lib.similarity import ssim

__all__ = [
    "DEFAULT_FRACTIONS",
    "DegradationAccumulator",
    "DegradationResult",
    "DeletionAccumulator",
    "DeletionCurve",
    "compared_maps",
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
    """σ in pixels for each level ``i`` (``s = 10·i/(n_levels−1)``): ``scale · (10 − s)^4 / 1000``.

    Computed as the authors' ``get_curve(10, round(10 − s, 1), 4)`` = ``(1/10³) · b⁴`` with
    ``b = (n_levels − 1 − i)·10/(n_levels − 1)`` in float64, so at ``scale = 1`` each σ is their value
    to the last bit (the 8-bit blur's truncation can depend on it).
    """
    steps = n_levels - 1
    amounts = [(steps - i) * 10 / steps for i in range(n_levels)]
    return torch.tensor([scale * ((1 / 10**3) * b**4) for b in amounts], dtype=torch.float64)


SMOOTHING_SIGMA = 5.0
"""σ (px at the reference size) of the map smoothing before the blur levels are cut."""


def salience_guided_blur(
    images: torch.Tensor,
    maps: torch.Tensor,
    mode: Mode = "background",
    smoothing_sigma: float = SMOOTHING_SIGMA,
    reference_size: int | None = 224,
    *,
    protocol: str | Protocol = "paper",
    exact: bool = False,
) -> torch.Tensor:
    """The paper's single-pass, spatially varying blur guided by salience (module docstring).

    Reads the protocol's ``upsample``, ``blur_levels``, ``blur_border``, ``salient_mode`` and
    ``blur_bits`` (:class:`~salience_lib.protocol.Protocol`). Under ``"paper"`` the result is the
    authors' ``blur_image`` per channel on the 8-bit image, ``k / 255``: the same levels, and each
    pixel within one grey level of theirs (``exact=True``: the same on every pixel, float64, ~2× the
    time; ``tests/test_authors_degradation.py``, :mod:`salience_lib.blur`). Under ``"refined"``: a
    float blur.

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
        maps: ``(B, h, w)`` salience maps (any resolution).
        mode: ``"background"`` keeps salient regions sharp; ``"salient"`` blurs them.
        smoothing_sigma: σ (px at ``reference_size``) of the map smoothing.
        reference_size: side at which σ values are defined; ``None`` = use them as given.
        protocol: ``"paper"`` (default), ``"refined"`` or a :class:`~salience_lib.protocol.Protocol`.
        exact: with ``blur_bits=8``, follow scipy's ``uint8`` casts bit for bit (float64).

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf, NaN/inf maps, a bad ``mode`` or protocol,
            or maps and images of different batch sizes.
    """
    images = check_unit_images(images)
    return _guided_blur(images, maps, mode, smoothing_sigma, reference_size, get_protocol(protocol), exact)


def _guided_blur(images: torch.Tensor, maps: torch.Tensor, mode: Mode, smoothing_sigma: float,
                 reference_size: int | None, protocol: Protocol, exact: bool = False) -> torch.Tensor:  # fmt: skip
    """:func:`salience_guided_blur` of images the caller has checked (:func:`degradation_effect`)."""
    maps = check_maps(maps)
    _check_mode(mode)
    if protocol.salient_mode not in ("invert_map", "invert_levels"):
        raise ValueError(f"`salient_mode` must be 'invert_map' or 'invert_levels', got {protocol.salient_mode!r}")
    if maps.shape[0] != images.shape[0]:
        raise ValueError(f"`maps` has {maps.shape[0]} maps but `images` has {images.shape[0]} images")
    scale = _scale(min(images.shape[-2:]), reference_size)
    salient = mode == "salient"
    levels = blur_levels(
        maps.to(images.device),
        tuple(images.shape[-2:]),
        smoothing_sigma * scale,
        N_LEVELS,
        upsample=protocol.upsample,
        rescale=protocol.blur_levels,
        border=protocol.blur_border,
        bits=protocol.blur_bits,
        invert=salient and protocol.salient_mode == "invert_map",
    )
    if salient and protocol.salient_mode == "invert_levels":
        levels = (N_LEVELS - 1) - levels
    sigmas = level_sigmas(scale)
    if protocol.blur_bits is None:
        return _spatially_varying_blur(images, sigmas, levels, protocol.blur_border)
    grey = _spatially_varying_blur(to_grey(images), sigmas, levels, protocol.blur_border, protocol.blur_bits, exact)
    return from_grey(grey, images.dtype)


def compared_maps(maps: torch.Tensor, size: tuple[int, int], protocol: str | Protocol = "paper") -> torch.Tensor:
    """``maps`` as the protocol compares them in (e): ``degradation_compare_at`` and ``map_bits``.

    ``"input"``: brought to the input ``size`` the protocol's ``upsample`` way
    (:func:`~salience_lib.blur.upsample_maps`; PIL's 8-bit bicubic for ``"paper"``, their 224-px
    "upscaled" files); ``"map"``: at their own size. Then truncated to 8 bits when ``map_bits`` is 8
    (:func:`~salience_lib.maps.quantise`), unchanged for ``None``.
    """
    protocol = get_protocol(protocol)
    if protocol.degradation_compare_at == "input":
        maps = upsample_maps(maps, size, protocol.upsample, protocol.map_bits)
    elif protocol.degradation_compare_at != "map":
        raise ValueError(f"`degradation_compare_at` must be 'input' or 'map', got {protocol.degradation_compare_at!r}")
    return quantise(maps, protocol.map_bits)


@dataclass
class DegradationResult:
    """Per-image effect of one single-pass degradation (all ``(B,)``).

    ``clean_probability`` and ``probability`` are the target's score (``score``, the protocol's:
    :class:`~salience_lib.inference.Score`) on the clean and the degraded images.
    """

    mode: str
    clean_probability: torch.Tensor
    probability: torch.Tensor
    flipped: torch.Tensor
    similarity: torch.Tensor
    score: str = "softmax_predicted"

    @property
    def probability_drop(self) -> torch.Tensor:
        """Clean minus degraded score of the target class (positive = hurt)."""
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
    protocol: str | Protocol = "paper",
) -> DegradationResult:
    """Blur guided by the explainer's maps and measure score change, flips and salience change.

    ``maps`` may be given (e.g. :func:`random_maps` for the baseline); by default they are
    ``explainer(images)``. The blur is :func:`salience_guided_blur` under ``protocol``; the score is
    the protocol's (``score``: :meth:`~salience_lib.inference.Score.targets` of the clean scores —
    the clean prediction, or class 1 "Synthetic" for ``"paper"``); a flip is a change of the argmax.
    The similarity compares ``explainer(degraded)`` with ``explainer(images)``, both as
    :func:`compared_maps` makes them. One model pass for the degraded images
    (:func:`~salience_lib.measures.probe.probe`); callers that run several degradations of the same
    batch pass ``clean_maps`` (= ``explainer(images)``) and ``clean_probabilities`` (the model's
    ``(B, K)`` scores on ``images`` under the protocol's score) once.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf (before any pass); NaN or inf maps or
            probabilities (the message says which); a bad ``mode`` or protocol.
    """
    _check_mode(mode)
    protocol = get_protocol(protocol)
    check_unit_images(images)
    score = get_score(protocol.score)
    explain = probe(model, explainer, score)
    clean_maps, clean = clean_pass(explain, images, clean_maps, clean_probabilities)
    guide = clean_maps if maps is None else maps
    degraded = _guided_blur(images, guide, mode, SMOOTHING_SIGMA, reference_size, protocol)  # images checked above
    targets = score.targets(clean)
    degraded_maps, after = explain(degraded, f"the images degraded in mode {mode!r}")
    size = tuple(images.shape[-2:])
    return DegradationResult(
        mode=mode,
        clean_probability=clean.gather(1, targets[:, None])[:, 0],
        probability=after.gather(1, targets[:, None])[:, 0],
        flipped=after.argmax(dim=1) != clean.argmax(dim=1),
        similarity=similarity(compared_maps(degraded_maps, size, protocol), compared_maps(clean_maps, size, protocol)),
        score=score.name,
    )


def _clean_scores(model: nn.Module, images: torch.Tensor, given: torch.Tensor | None, score: Score) -> torch.Tensor:
    """``given`` (checked: one row of class scores per image) or the model's ``score`` on ``images``."""
    if given is None:
        return score.model_scores(model, images)
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
    """The target's score as the top-q salient pixels are blurred (``(B, Q)``; ``score`` names it)."""

    fractions: torch.Tensor
    probability: torch.Tensor
    score: str = "softmax_predicted"

    def auc(self) -> torch.Tensor:
        """``(B,)`` normalised area under the deletion curve (lower = more faithful ranking)."""
        return normalised_auc(self.fractions, self.probability)


def deletion_blur(images: torch.Tensor, sigma: float = 10.0, reference_size: int | None = 224) -> torch.Tensor:
    """The images :func:`deletion_curve` swaps in for the deleted pixels: blurred with σ = ``sigma`` px at 224.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf (:func:`~salience_lib.blur.gaussian_blur`).
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
    score: str | Score = "softmax_predicted",
) -> DeletionCurve:
    """Blur the top-``q`` fraction of pixels (ranked by ``maps`` upsampled to the input size).

    Args:
        model: classifier.
        maps: ``(B, h, w)`` salience (or :func:`random_maps` for the baseline).
        images: ``(B, C, H, W)``.
        fractions: increasing q values in [0, 1].
        sigma: blur σ in px at ``reference_size``.
        clean_probabilities: the model's ``(B, classes)`` scores (under ``score``) on ``images``, if
            already known.
        blurred: ``images`` blurred with ``sigma`` (at ``reference_size``), if already known — e.g.
            by a caller that ranks the same images by several maps.
        score: what is recorded (:class:`~salience_lib.inference.Score`): ``"softmax_predicted"``
            (the softmax probability of the clean prediction; default) or ``"sigmoid_synthetic"``
            (a protocol's ``score``); the curve names it.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf; NaN/inf maps; maps for another number
            of images than ``images``; bad ``fractions``; NaN or inf probabilities (at which fraction).
    """
    images = check_unit_images(images)
    maps = check_maps(maps)
    score = get_score(score)
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
    clean = _clean_scores(model, images, clean_probabilities, score)
    targets = score.targets(clean)
    ranks = pixel_ranks(ranking)  # one sort for every fraction
    probs = []
    for q in grid.tolist():
        if q == 0:  # nothing blurred: the clean image, whose scores are known
            probs.append(clean.gather(1, targets[:, None])[:, 0])
            continue
        chosen = top_fraction_mask(ranking, q, minimum=0, ranks=ranks)[:, None]
        degraded = torch.where(chosen, blurred, images)
        probs.append(score.model_scores(model, degraded).gather(1, targets[:, None])[:, 0])
    curve = torch.stack(probs, dim=1)
    finite = torch.isfinite(curve).all(dim=0).tolist()  # one synchronisation for every fraction
    if not all(finite):
        q = grid[finite.index(False)].item()
        what = "the clean images" if q == 0 else f"the images with the top {q:g} of pixels blurred"
        check_finite((f"the model's probabilities on {what}", curve))
    return DeletionCurve(fractions=grid, probability=curve, score=score.name)


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
