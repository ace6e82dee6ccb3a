"""The landing page's figure: the same faces, explained by a model of each recipe.

:func:`recipe_maps_figure` explains the same images with every model it is given (Grad-CAM of the
predicted class by default) and lays them out with :func:`~salience_lib.book.panels.map_grid`: the
faces on the first row (their artifact masks outlined, if given), then one row of maps per model,
each titled with the probability the model gives the class it predicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from salience_lib.book.chapters import explain_all
from salience_lib.book.panels import map_grid
from salience_lib.inference import class_probabilities

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["recipe_maps_figure"]


def recipe_maps_figure(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    *,
    masks: torch.Tensor | None = None,
    titles: Sequence[str] | None = None,
    class_names: Sequence[str] = ("real", "synthetic"),
    method: Callable[[nn.Module], Any] | None = None,
    image_row: str = "face",
    panel_size: float = 1.6,
) -> Figure:
    """The images on the first row, then each model's maps of them, titled ``<predicted class> p``.

    Args:
        models: row label (e.g. ``"XENT"``) -> model; every model explains the same images.
        images: ``(B, 3, H, W)`` in [0, 1], on the models' device.
        masks: optional ``(B, H, W)`` masks outlined on the first row (e.g. the artifact masks).
        titles: optional title per image, over the first row (e.g. its group).
        class_names: the name of each class index, for the titles of the map rows.
        method: the explainer class (default :class:`salience_lib.salience.GradCAM`, predicted class).
        image_row: the label of the first row.
        panel_size: side of one panel in inches.

    Returns:
        The figure (after ``tight_layout``).

    Raises:
        ValueError: no models, a row label equal to ``image_row``, images that are not a non-empty
            ``(B, 3, H, W)`` batch, or masks or titles of another length.
    """
    if not models:
        raise ValueError("`models` is empty: give at least one model")
    if image_row in models:
        raise ValueError(f"a model is labelled {image_row!r}, the label of the image row: rename one")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"`images` must be a non-empty batch (B, 3, H, W), got shape {tuple(images.shape)}")
    if masks is not None and len(masks) != len(images):
        raise ValueError(f"`masks` has {len(masks)} entries for {len(images)} images")
    maps = explain_all(list(models.values()), images, batch_size=len(images), method=method)
    rows: dict[str, Any] = {image_row: None}
    row_titles = {}
    for (label, model), model_maps in zip(models.items(), maps, strict=True):
        rows[label] = list(model_maps)
        row_titles[label] = [_predicted(p, class_names) for p in class_probabilities(model, images).cpu()]
    return map_grid(
        list(images.cpu()),
        rows,
        masks=None if masks is None else list(masks.cpu()),
        titles=titles,
        row_titles=row_titles,
        panel_size=panel_size,
    )


def _predicted(probabilities: torch.Tensor, class_names: Sequence[str]) -> str:
    """``"<class name> <p>"`` for the most probable class (its index if it has no name)."""
    k = int(probabilities.argmax())
    name = class_names[k] if k < len(class_names) else str(k)
    return f"{name} {float(probabilities[k]):.2f}"
