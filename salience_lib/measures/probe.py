"""One model pass per perturbed image: salience maps and class probabilities together.

Several measures need, for the same (perturbed) image, both the explainer's map and the model's
probabilities. A Grad-CAM call already runs the forward pass whose logits give the probabilities,
so a second forward would double the cost (SPEC §8, the pass floor). :func:`probe` returns
``images -> (maps, probabilities)`` that uses one pass whenever the explainer can report its logits
(``explainer.explain``, e.g. :meth:`salience_lib.salience.GradCAM.at`) and explains ``model``; any
other explainer (a plain function) costs its own call plus one forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from salience_lib.inference import Score, get_score
from salience_lib.maps import check_finite, check_maps

__all__ = ["Explainer", "Probe", "Similarity", "clean_pass", "probe"]

Explainer = Callable[[torch.Tensor], torch.Tensor]
Similarity = Callable[..., torch.Tensor]
Probe = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``probe(images, what="the images") -> (maps, probabilities)``; ``what`` names the images in errors."""


def _unwrapped(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def probe(model: nn.Module, explainer: Explainer, score: str | Score = "softmax_predicted") -> Probe:
    """``images -> (maps (B, h, w), scores (B, K))``, in one pass when the explainer allows it.

    ``scores`` are :meth:`salience_lib.inference.Score.scores` of the logits: softmax probabilities
    by default, the element-wise sigmoid for ``score="sigmoid_synthetic"`` (the authors' ``PAScore``).

    Both are checked to be finite with one host synchronisation; a ValueError says which is not,
    on which images (``what``, e.g. "the salt_and_pepper images at severity 0.05") — NaN weights or
    a NaN pixel never become all-zero maps that score as "perfect".
    """
    score = get_score(score)
    explain = getattr(explainer, "explain", None)
    explained = getattr(explainer, "model", None)
    if callable(explain) and isinstance(explained, nn.Module) and _unwrapped(explained) is _unwrapped(model):

        def one_pass(images: torch.Tensor, what: str = "the images") -> tuple[torch.Tensor, torch.Tensor]:
            maps, logits = explain(images)
            maps = check_maps(maps, "explainer output", finite=False)
            check_finite((f"the model's logits on {what}", logits), (f"the explainer's maps of {what}", maps))
            return maps, score.scores(logits)

        return one_pass

    def two_passes(images: torch.Tensor, what: str = "the images") -> tuple[torch.Tensor, torch.Tensor]:
        maps = check_maps(explainer(images), "explainer output", finite=False)
        probs = score.model_scores(model, images)
        check_finite((f"the model's probabilities on {what}", probs), (f"the explainer's maps of {what}", maps))
        return maps, probs

    return two_passes


def clean_pass(
    explain: Probe,
    images: torch.Tensor,
    maps: torch.Tensor | None = None,
    probs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean maps and ``(B, K)`` probabilities: as given (checked against ``images``), else one pass.

    Raises:
        ValueError: shapes that do not fit ``images``; NaN or inf in what was given.
    """
    given: list[tuple[str, torch.Tensor]] = []
    if maps is not None:
        given.append(("`clean_maps`", check_maps(maps, "clean_maps", finite=False)))
    if probs is not None:
        given.append(("`clean_probabilities`", probs))
    if maps is None or probs is None:
        fresh_maps, fresh_probs = explain(images, "the clean images")  # checked by the probe
        maps = fresh_maps if maps is None else maps
        probs = fresh_probs if probs is None else probs
    batch = images.shape[0]
    if maps.shape[0] != batch:
        raise ValueError(f"`clean_maps` has {maps.shape[0]} maps but `images` has {batch} images")
    if probs.ndim != 2 or probs.shape[0] != batch:
        raise ValueError(f"`clean_probabilities` must have shape ({batch}, classes), got {tuple(probs.shape)}")
    check_finite(*given)
    return maps, probs
