"""Frames for the measure chapters' browsers: one figure per setting of a slider or a dropdown.

Each function draws a few example images as the measure sees them at one setting, with the maps of
one model per row (or column) and the numbers the measure takes from them in the titles; the
chapters turn a list of them into a widget with :func:`~salience_lib.book.widgets.frame_slider` or
:func:`~salience_lib.book.widgets.frame_dropdown`.

- :func:`consistency_frame` (geometric consistency): the transformed image, the map of the
  transformed image and the transformed map, with their SSIM over the valid pixels;
- :func:`perturbation_frame` (out-of-set): perturbed images and each model's map of them, with the
  SSIM to its clean map and the probability of the clean prediction;
- :func:`degradation_frame` (single-pass degradation): each model's images blurred as its own map
  (or a random map) guides, with its new map and the probability before and after;
- :func:`deletion_frames` (deletion curve): the images with the top fraction of pixels of each
  ranking blurred, one frame per fraction.

Maps are computed with Grad-CAM of the predicted class unless another explainer class is passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from salience_lib.book.figures import gallery
from salience_lib.inference import class_probabilities
from salience_lib.maps import minmax_normalise, resize_maps, top_fraction_mask
from salience_lib.protocol import Protocol
from salience_lib.measures import degradation
from salience_lib.similarity import ssim
from salience_lib.transforms import Transform, get_transform, transform_maps

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "clean_prediction_probability",
    "consistency_frame",
    "degradation_frame",
    "deletion_frames",
    "perturbation_frame",
]

Explainer = Callable[[torch.nn.Module], Any]


def _gradcam() -> Explainer:
    from salience_lib.salience import GradCAM

    return GradCAM


def clean_prediction_probability(model: torch.nn.Module, clean: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the probability, on ``changed``, of the class the model predicts on ``clean``."""
    target = class_probabilities(model, clean).argmax(1, keepdim=True)
    return class_probabilities(model, changed).gather(1, target)[:, 0]


def _check_models(models: Mapping[str, torch.nn.Module], images: torch.Tensor) -> None:
    if not models:
        raise ValueError("`models` is empty: give at least one model")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"`images` must be a non-empty batch (B, 3, H, W), got shape {tuple(images.shape)}")


def consistency_frame(
    models: Mapping[str, torch.nn.Module],
    images: torch.Tensor,
    transform: str | Transform,
    *,
    explainer: Explainer | None = None,
    panel_size: float = 1.9,
) -> Figure:
    """One row per image: ``T x``, then per model ``S(Tx)`` and ``T(S(x))`` titled with their consistency c.

    Both maps are upsampled to the image size and min–max normalised over the valid pixels of
    ``T x`` (pixels a transform brings in from outside the image are outlined); c is their SSIM over
    those pixels, as :func:`salience_lib.measures.geometric.geometric_consistency` computes it.

    Args:
        models: label (e.g. ``"XENT"``) -> model.
        images: ``(B, 3, H, W)`` in [0, 1].
        transform: a transform or its name (``"hflip"``, ``"rotate:30"``, ...).
        explainer: the explainer class (default Grad-CAM).
        panel_size: side of one panel in inches.

    Raises:
        ValueError: no models or no images.
    """
    _check_models(models, images)
    explain = explainer or _gradcam()
    t = get_transform(transform)
    size = tuple(images.shape[-2:])
    moved, valid = t(images)
    per_model = {}
    for label, model in models.items():
        with explain(model) as cam:
            of_moved = resize_maps(cam(moved), size)
            moved_map, _ = transform_maps(t, resize_maps(cam(images), size))
        a, b = minmax_normalise(of_moved, valid), minmax_normalise(moved_map, valid)
        per_model[label] = (a, b, ssim(a, b, mask=valid))
    panels, maps, outlines, titles = [], [], [], []
    for k in range(len(images)):
        outside = (~valid[k]).float()
        panels.append(moved[k])
        maps.append(None)
        titles.append("T x")
        for label, (a, b, score) in per_model.items():
            panels += [moved[k], moved[k]]
            maps += [a[k], b[k]]
            titles += [f"{label} S(Tx)", f"{label} T(S(x)), c = {float(score[k]):.2f}"]
        outlines += [outside] * (1 + 2 * len(models))
    name = transform if isinstance(transform, str) else type(transform).__name__
    return gallery(
        panels,
        maps=maps,
        masks=outlines,
        titles=titles,
        ncols=1 + 2 * len(models),
        panel_size=panel_size,
        suptitle=f"T = {name}",
    )


def perturbation_frame(
    models: Mapping[str, torch.nn.Module],
    images: torch.Tensor,
    perturbed: torch.Tensor,
    *,
    explainer: Explainer | None = None,
    panel_size: float = 1.6,
    suptitle: str | None = None,
) -> Figure:
    """The perturbed images (first row), then per model its maps of them, titled ``SSIM s, p q``.

    ``s`` is the SSIM of the model's map of the perturbed image to its map of the clean one (native
    resolution), ``q`` the probability, on the perturbed image, of the class it predicts on the clean
    image.

    Args:
        models: label (the row label) -> model.
        images: the clean images ``(B, 3, H, W)``.
        perturbed: the same images perturbed, same shape.
        explainer: the explainer class (default Grad-CAM).
        panel_size: side of one panel in inches.
        suptitle: a title over the frame.

    Raises:
        ValueError: no models, no images, or ``perturbed`` of another shape.
    """
    _check_models(models, images)
    if perturbed.shape != images.shape:
        raise ValueError(f"`perturbed` has shape {tuple(perturbed.shape)}, the images {tuple(images.shape)}")
    explain = explainer or _gradcam()
    n = len(images)
    panels, maps, titles = list(perturbed), [None] * n, [""] * n
    for model in models.values():
        with explain(model) as cam:
            clean_maps, new_maps = cam(images), cam(perturbed)
        similarity = ssim(new_maps, clean_maps)
        probability = clean_prediction_probability(model, images, perturbed)
        panels += list(perturbed)
        maps += list(new_maps)
        titles += [f"SSIM {s:.2f}, p {q:.2f}" for s, q in zip(similarity.tolist(), probability.tolist(), strict=True)]
    return gallery(
        panels,
        maps=maps,
        titles=titles,
        ncols=n,
        panel_size=panel_size,
        row_labels=["perturbed", *models],
        suptitle=suptitle,
    )


def degradation_frame(
    models: Mapping[str, torch.nn.Module],
    images: torch.Tensor,
    condition: str,
    *,
    seed: int = 0,
    explainer: Explainer | None = None,
    panel_size: float = 1.7,
    protocol: str | Protocol = "paper",
) -> Figure:
    """One row per model: the images blurred as ``condition`` says, its new map over them, ``p before → after``.

    Conditions: ``"salient"`` and ``"background"`` blur guided by the model's own map
    (:func:`salience_lib.measures.degradation.salience_guided_blur` in that mode); ``"random"`` blurs
    in mode ``salient`` guided by a random map at the map's native resolution, drawn from a generator
    seeded with ``seed`` (the same for every model). The probabilities are those of the class
    predicted on the clean image.

    Args:
        models: label (e.g. ``"XENT"``) -> model; the rows are labelled ``"<label>-guided"``.
        images: ``(B, 3, H, W)`` in [0, 1].
        condition: ``"salient"``, ``"background"`` or ``"random"``.
        seed: seeds the random maps.
        explainer: the explainer class (default Grad-CAM).
        panel_size: side of one panel in inches.
        protocol: whose guided blur (:func:`~salience_lib.measures.degradation.salience_guided_blur`).

    Raises:
        ValueError: no models, no images, or an unknown condition.
    """
    _check_models(models, images)
    if condition not in ("salient", "background", "random"):
        raise ValueError(f"`condition` must be 'salient', 'background' or 'random', got {condition!r}")
    explain = explainer or _gradcam()
    mode = "salient" if condition == "random" else condition
    panels, maps, titles = [], [], []
    for model in models.values():
        with explain(model) as cam:
            clean_maps = cam(images)
            generator = torch.Generator(images.device).manual_seed(seed)
            noise = degradation.random_maps(len(images), tuple(clean_maps.shape[-2:]), generator, device=images.device)
            guide = noise if condition == "random" else clean_maps
            degraded = degradation.salience_guided_blur(images, guide, mode, protocol=protocol)
            new_maps = cam(degraded)
        before = clean_prediction_probability(model, images, images)
        after = clean_prediction_probability(model, images, degraded)
        panels += list(degraded)
        maps += list(new_maps)
        titles += [f"p {b:.2f} → {a:.2f}" for b, a in zip(before.tolist(), after.tolist(), strict=True)]
    guides = "the same random maps in every row" if condition == "random" else "each row guided by its own model's map"
    return gallery(
        panels,
        maps=maps,
        titles=titles,
        ncols=len(images),
        panel_size=panel_size,
        row_labels=[f"{label}-guided" for label in models],
        suptitle=f"single pass, blur {condition}: {guides}",
    )


def deletion_frames(
    rankings: Mapping[str, tuple[torch.nn.Module, torch.Tensor]],
    images: torch.Tensor,
    blurred: torch.Tensor,
    fractions: Sequence[float] = degradation.DEFAULT_FRACTIONS,
    *,
    panel_size: float = 1.6,
) -> list[Figure]:
    """Per fraction q, a frame: one row per ranking, the images with its top-q pixels taken from ``blurred``.

    Titles give the probability, on the changed image, of the class the row's model predicts on the
    clean image (one step of :func:`salience_lib.measures.degradation.deletion_curve`).

    Args:
        rankings: row label -> (the model to score with, maps ranking the pixels, ``(B, h, w)``,
            resized to the images if needed).
        images: the clean images ``(B, 3, H, W)``.
        blurred: the images the deleted pixels come from (:func:`~salience_lib.measures.degradation.deletion_blur`).
        fractions: the fractions q, one frame each.
        panel_size: side of one panel in inches.

    Raises:
        ValueError: no rankings, no images, or ``blurred`` of another shape.
    """
    if not rankings:
        raise ValueError("`rankings` is empty: give at least one ranking")
    if blurred.shape != images.shape:
        raise ValueError(f"`blurred` has shape {tuple(blurred.shape)}, the images {tuple(images.shape)}")
    size = tuple(images.shape[-2:])
    resized = {label: resize_maps(ranking, size) for label, (_, ranking) in rankings.items()}
    frames = []
    for q in fractions:
        panels, titles = [], []
        for label, (model, _) in rankings.items():
            deleted = torch.where(top_fraction_mask(resized[label], q, minimum=0)[:, None], blurred, images)
            panels += list(deleted)
            titles += [f"p {p:.2f}" for p in clean_prediction_probability(model, images, deleted).tolist()]
        frames.append(
            gallery(
                panels,
                titles=titles,
                ncols=len(images),
                panel_size=panel_size,
                row_labels=list(rankings),
                suptitle=f"deletion: top {q:.0%} of pixels blurred",
            )
        )
    return frames
