"""(b) How does salience react to out-of-set input?

*Paired perturbations* (salt-and-pepper, Gaussian noise, Gaussian blur): for each severity, the
similarity of the salience of the perturbed image to the salience of the clean image, and the change
of the probability of the class predicted on the clean image. The per-model summary is the area
under the similarity-vs-severity curve, normalised by the severity range to [0, 1] (1 = salience
never moves; a summary of ours, the authors report the curves). The paper's protocol is
salt-and-pepper noise at :data:`SALT_AND_PEPPER_FRACTIONS` (Crum et al. 2023, §IV-B), per element
(``per_channel=True``, skimage's ``random_noise``), scored by σ(logit of class 1) — the
``"paper"`` :class:`~salience_lib.protocol.Protocol`; ``"refined"`` uses whole grey pixels and the
softmax probability of the clean prediction.

*Distribution shift* (unseen generator families, non-face images): there is no paired clean image,
so the distributions are compared instead — entropy of salience (:mod:`.entropy`) and the similarity
of each map to the model's mean in-set map (:func:`similarity_to_mean_map`, with
:class:`MeanMapAccumulator` streaming the mean map).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from salience_lib.imaging import check_unit_images, gaussian_blur, gaussian_noise
from salience_lib.imaging import salt_and_pepper as _salt_and_pepper
from salience_lib.inference import Score, get_score
from salience_lib.maps import check_maps
from salience_lib.measures.accumulator import Accumulator, summary_of
from salience_lib.measures.entropy import salience_entropy
from salience_lib.measures.probe import Explainer, Similarity, clean_pass, probe
from salience_lib.protocol import SALT_AND_PEPPER_AMOUNTS
from salience_lib.similarity import ssim

__all__ = [
    "FAMILIES",
    "SALT_AND_PEPPER_FRACTIONS",
    "SHIFT_VALUES",
    "DistributionShiftAccumulator",
    "MeanMapAccumulator",
    "PerturbationAccumulator",
    "PerturbationCurve",
    "normalised_auc",
    "perturbation_curve",
    "salt_and_pepper",
    "similarity_to_mean_map",
]

Family = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]

SALT_AND_PEPPER_FRACTIONS: tuple[float, ...] = SALT_AND_PEPPER_AMOUNTS
"""The paper's salt-and-pepper schedule (``amount`` of skimage's ``random_noise``)."""


def salt_and_pepper(
    images: torch.Tensor, fraction: float, generator: torch.Generator | None = None, per_channel: bool = False
) -> torch.Tensor:
    """Replace a ``fraction`` of pixels (``per_channel``: of elements, the authors' noise) by black or white.

    See :func:`salience_lib.imaging.salt_and_pepper`.

    Raises:
        ValueError: images outside [0, 1] or not finite — salt is 1 and pepper 0, so a 0–255 or
            normalised batch would not be perturbed as intended.
    """
    return _salt_and_pepper(images, fraction, generator, per_channel)


FAMILIES: dict[str, tuple[Family, tuple[float, ...]]] = {
    "salt_and_pepper": (salt_and_pepper, SALT_AND_PEPPER_FRACTIONS),
    "gaussian_noise": (lambda x, s, g: gaussian_noise(x, s, g), (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)),
    "gaussian_blur": (lambda x, s, g: gaussian_blur(x, s), (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)),
}
"""Perturbation families by name: ``(function(images, severity, generator), default severities)``.
Blur σ is in pixels at the data's resolution; noise σ in image-value units."""


def normalised_auc(severities: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""Trapezoidal area under ``values`` (..., S) over ``severities`` (S,), divided by the range.

    :math:`\frac{1}{s_{max} - s_{min}} \int v(s)\, ds` — for values in [0, 1] the result is in [0, 1].
    """
    span = float(severities[-1] - severities[0])
    if span <= 0:
        raise ValueError("`severities` must be increasing with at least two distinct values")
    return torch.trapezoid(values, severities.to(values), dim=-1) / span


@dataclass
class PerturbationCurve:
    """Per-image curves of one perturbation family.

    Attributes:
        family: the family's name.
        severities: ``(S,)``.
        similarity: ``(B, S)`` similarity of S(perturbed) to S(clean).
        probability: ``(B, S)`` score of the target class on the perturbed image (the softmax
            probability of the clean prediction, or the authors' σ(logit 1): ``score``).
        clean_probability: ``(B,)`` the same on the clean image.
        targets: ``(B,)`` the class whose score is recorded.
    """

    family: str
    severities: torch.Tensor
    similarity: torch.Tensor
    probability: torch.Tensor
    clean_probability: torch.Tensor
    targets: torch.Tensor

    @property
    def probability_change(self) -> torch.Tensor:
        """``(B, S)`` change of the clean prediction's probability (negative = less confident)."""
        return self.probability - self.clean_probability[:, None]

    def auc(self) -> torch.Tensor:
        """``(B,)`` normalised area under each image's similarity-vs-severity curve."""
        return normalised_auc(self.severities, self.similarity)


def _resolve_family(family: str | Family, severities: Sequence[float] | None) -> tuple[str, Family, torch.Tensor]:
    if isinstance(family, str):
        if family not in FAMILIES:
            raise ValueError(f"unknown perturbation `family` {family!r}; known: {sorted(FAMILIES)} or a callable")
        function, default = FAMILIES[family]
        name = family
    elif callable(family):
        function, default, name = family, None, getattr(family, "__name__", "custom")
    else:
        raise TypeError(f"`family` must be a name or a callable, got {type(family).__name__}")
    chosen = default if severities is None else tuple(float(s) for s in severities)
    if chosen is None:
        raise ValueError("`severities` must be given for a custom perturbation family")
    grid = torch.tensor(chosen, dtype=torch.float64)
    if grid.numel() < 2 or not bool((grid[1:] > grid[:-1]).all()):
        raise ValueError(f"`severities` must be strictly increasing with at least 2 values, got {list(chosen)}")
    return name, function, grid


def perturbation_curve(
    model: nn.Module,
    explainer: Explainer,
    images: torch.Tensor,
    family: str | Family = "salt_and_pepper",
    severities: Sequence[float] | None = None,
    similarity: Similarity = ssim,
    generator: torch.Generator | None = None,
    *,
    clean_maps: torch.Tensor | None = None,
    clean_probabilities: torch.Tensor | None = None,
    score: str | Score = "softmax_predicted",
) -> PerturbationCurve:
    """Similarity of salience and probability of the clean prediction along a severity schedule.

    One model pass per severity (:func:`~salience_lib.measures.probe.probe`): a severity whose
    perturbation leaves the images unchanged (0 for every built-in family) reuses the clean pass.

    Args:
        model: the classifier (run in eval mode; its flags are restored).
        explainer: ``images -> (B, h, w)`` maps, e.g. ``GradCAM(model).at(size)``.
        images: ``(B, C, H, W)`` clean images in [0, 1].
        family: a name in :data:`FAMILIES` or ``function(images, severity, generator)``.
        severities: increasing schedule; default the family's (the paper's for salt-and-pepper).
        similarity: map similarity ``(a, b) -> (B,)``.
        generator: optional generator for the random families.
        clean_maps, clean_probabilities: ``explainer(images)`` and the model's ``(B, K)`` scores
            (``score``'s) on ``images``, when the caller already has them (no clean pass then).
        score: what is recorded of the model's output (:class:`salience_lib.inference.Score`):
            ``"softmax_predicted"`` — the softmax probability of the class predicted on the clean
            image (ours); ``"sigmoid_synthetic"`` — σ(logit of class 1), the authors' ``PAScore``.

    Raises:
        ValueError: images outside [0, 1] or with NaN/inf; NaN or inf maps or probabilities (the
            message says which, and the severity).
    """
    name, function, grid = _resolve_family(family, severities)
    check_unit_images(images)
    score = get_score(score)
    explain = probe(model, explainer, score)
    clean_maps, clean_prob = clean_pass(explain, images, clean_maps, clean_probabilities)
    targets = score.targets(clean_prob)
    sims, probs = [], []
    for severity in grid.tolist():
        perturbed = function(images, severity, generator)
        if perturbed is images or torch.equal(perturbed, images):
            maps, prob = clean_maps, clean_prob
        else:
            maps, prob = explain(perturbed, f"the {name} images at severity {severity:g}")
        sims.append(similarity(maps, clean_maps))
        probs.append(prob.gather(1, targets[:, None])[:, 0])
    return PerturbationCurve(
        family=name,
        severities=grid,
        similarity=torch.stack(sims, dim=1),
        probability=torch.stack(probs, dim=1),
        clean_probability=clean_prob.gather(1, targets[:, None])[:, 0],
        targets=targets,
    )


class PerturbationAccumulator(Accumulator):
    """Streams :func:`perturbation_curve` results of one family.

    ``compute()`` gives the AUC summary and, per severity, the mean similarity and mean probability
    change (with CIs).
    """

    def __init__(self, family: str, severities: Sequence[float]) -> None:
        super().__init__()
        self.family = family
        self.severities = tuple(float(s) for s in severities)
        self.add_cat_state("auc")
        self.add_cat_state("similarity", (len(self.severities),))
        self.add_cat_state("probability_change", (len(self.severities),))

    def config(self) -> dict[str, object]:
        return {"family": self.family, "severities": self.severities}

    def update(self, curve: PerturbationCurve) -> None:
        """Add one batch's curves."""
        if tuple(curve.severities.tolist()) != self.severities or curve.family != self.family:
            raise ValueError(
                f"curve ({curve.family}, {tuple(curve.severities.tolist())}) does not match the accumulator "
                f"({self.family}, {self.severities})"
            )
        self._cat("auc", curve.auc())
        self._cat("similarity", curve.similarity)
        self._cat("probability_change", curve.probability_change)

    def compute(self) -> dict[str, object]:
        """AUC summary and the per-severity curve summaries."""
        steps = range(len(self.severities))
        similarity, change = self.values("similarity"), self.values("probability_change")
        return {
            "auc": self.summary("auc"),
            "severities": list(self.severities),
            "similarity": [summary_of(similarity[:, i]) for i in steps],
            "probability_change": [summary_of(change[:, i]) for i in steps],
            "n": self.count,
        }


def similarity_to_mean_map(maps: torch.Tensor, mean_map: torch.Tensor, similarity: Similarity = ssim) -> torch.Tensor:
    """Similarity of each map ``(B, H, W)`` to a reference mean map ``(H, W)`` — for unpaired shifts."""
    maps = check_maps(maps)
    if not isinstance(mean_map, torch.Tensor) or mean_map.shape != maps.shape[1:]:
        raise ValueError(
            f"`mean_map` must be a tensor of shape {tuple(maps.shape[1:])}, got {getattr(mean_map, 'shape', None)}"
        )
    return similarity(maps, mean_map.to(maps).expand_as(maps).contiguous())


class MeanMapAccumulator(Accumulator):
    """Streams the mean salience map of a model over a data set (the in-set reference).

    Args:
        size: ``(H, W)`` of the maps it will see.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = tuple(int(s) for s in size)
        self.add_sum_state("sum", self.size)
        self.add_sum_state("images")

    def config(self) -> dict[str, object]:
        return {"size": self.size}

    def update(self, maps: torch.Tensor) -> None:
        """Add a batch of ``(B, H, W)`` maps."""
        maps = check_maps(maps)
        if tuple(maps.shape[1:]) != self.size:
            raise ValueError(f"maps of size {tuple(maps.shape[1:])} given to a mean map of size {self.size}")
        self._add("sum", maps.sum(dim=0))
        self._add("images", torch.tensor(maps.shape[0]))

    @property
    def count(self) -> int:
        return int(self.total("images"))

    def compute(self) -> torch.Tensor:
        """The ``(H, W)`` mean map (float32).

        Raises:
            ValueError: no map was added (there is no mean of nothing).
        """
        if int(self.images) == 0:
            raise ValueError("the mean map of no maps is undefined: no in-set image was seen")
        return (self.sum / self.images).float()


SHIFT_VALUES = ("entropy_histogram", "entropy_spatial", "similarity_to_mean")


class DistributionShiftAccumulator(Accumulator):
    """Per group (seen / unseen families, non-face images, ...): entropy and similarity to the in-set mean map.

    Args:
        groups: names of the group ids given to :meth:`update`.
        mean_map: ``(H, W)`` the model's mean in-set map (:class:`MeanMapAccumulator`).
        similarity: map similarity.
    """

    def __init__(self, groups: Sequence[str], mean_map: torch.Tensor, similarity: Similarity = ssim) -> None:
        super().__init__()
        self.groups, self.mean_map, self.similarity = tuple(groups), mean_map, similarity
        for name in (*SHIFT_VALUES, "group"):
            self.add_cat_state(name)

    def config(self) -> dict[str, object]:
        return {"groups": self.groups, "mean_map": tuple(self.mean_map.shape)}

    def update(self, maps: torch.Tensor, group: torch.Tensor) -> None:
        """Add ``(B, H, W)`` maps of images of the given ``(B,)`` group ids."""
        self._cat("entropy_histogram", salience_entropy(maps, "histogram"))
        self._cat("entropy_spatial", salience_entropy(maps, "spatial"))
        self._cat("similarity_to_mean", similarity_to_mean_map(maps, self.mean_map.to(maps), self.similarity))
        self._cat("group", group)

    def compute(self) -> dict[str, dict[str, object]]:
        """``{group: {entropy_histogram, entropy_spatial, similarity_to_mean: Summary, n}}`` for groups seen."""
        group = self.values("group").long()
        out: dict[str, dict[str, object]] = {}
        for g, name in enumerate(self.groups):
            chosen = group == g
            if bool(chosen.any()):
                out[name] = {value: summary_of(self.values(value)[chosen]) for value in SHIFT_VALUES}
                out[name]["n"] = int(chosen.sum())
        return out
