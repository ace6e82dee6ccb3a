"""Comparing the models of a recipe across seeds: block means of a pair matrix, every seed's map, SSIM windows.

- :func:`stability_by_recipe`: from a models × models matrix of mean similarities, each run's
  stability within its recipe (:func:`salience_lib.measures.stability.stability_per_run` of the
  recipe's block) and the between-recipe baseline;
- :func:`seed_grid`: one row per image and recipe, the image first, then every model's map of it;
- :func:`subset_stability`: the stability of every subset of a recipe's models, to see how much the
  estimate depends on which seeds were trained;
- :func:`shifted_blob_similarity`, :func:`plot_shift_similarity` and :func:`plot_ssim_windows`: why
  SSIM on an 8×8 map is nearly one global comparison, shown on a blob shifted by whole map pixels
  and on the window positions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

import torch

from salience_lib.book.figures import gallery
from salience_lib.book.style import MAP_CMAP, PALETTE, RECIPE_LABELS
from salience_lib.maps import minmax_normalise, resize_maps
from salience_lib.measures.stability import stability_per_run

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_shift_similarity",
    "plot_ssim_windows",
    "seed_grid",
    "shifted_blob_similarity",
    "stability_by_recipe",
    "subset_stability",
]


def stability_by_recipe(
    pair_means: torch.Tensor, index: Mapping[str, Sequence[int]]
) -> tuple[dict[str, torch.Tensor], float]:
    """Each run's stability within its recipe, and the mean similarity of models of different recipes.

    Args:
        pair_means: ``(K, K)``, entry ``(i, j)`` the mean similarity of models ``i`` and ``j``.
        index: recipe -> the rows of its models (at least two per recipe).

    Returns:
        recipe -> ``(K_recipe,)`` float64, each model's mean similarity to the other models of its
        recipe (the off-diagonal row mean of the recipe's block); and the between-recipe baseline,
        the mean over every pair of models of two different recipes (NaN with one recipe).

    Raises:
        ValueError: a matrix that is not square, a row index outside it, or a recipe with fewer than
            two models.
    """
    m = torch.as_tensor(pair_means, dtype=torch.float64).cpu()
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"`pair_means` must be (K, K), got shape {tuple(m.shape)}")
    within: dict[str, torch.Tensor] = {}
    for recipe, rows in index.items():
        if any(not 0 <= i < m.shape[0] for i in rows):
            raise ValueError(f"index[{recipe!r}] = {list(rows)} has rows outside the {m.shape[0]}×{m.shape[0]} matrix")
        within[recipe] = stability_per_run(m[list(rows)][:, list(rows)])
    recipes = list(index)
    cross = [m[list(index[a])][:, list(index[b])].flatten() for k, a in enumerate(recipes) for b in recipes[k + 1 :]]
    between = float(torch.cat(cross).mean()) if cross else float("nan")
    return within, between


def subset_stability(pair_means: torch.Tensor, rows: Sequence[int], size: int) -> list[float]:
    """The stability (mean similarity over its pairs) of every subset of ``size`` of the models ``rows``.

    Args:
        pair_means: ``(K, K)`` mean similarities of every pair of models.
        rows: the rows of one recipe's models.
        size: models per subset, at least 2.

    Returns:
        One value per subset, in the order of :func:`itertools.combinations`.

    Raises:
        ValueError: ``size`` < 2 or more than ``len(rows)``.
    """
    if not 2 <= size <= len(rows):
        raise ValueError(f"`size` must lie in [2, {len(rows)}] for {len(rows)} models, got {size}")
    m = torch.as_tensor(pair_means, dtype=torch.float64).cpu()
    return [float(stability_per_run(m[list(subset)][:, list(subset)]).mean()) for subset in combinations(rows, size)]


def seed_grid(
    images: Sequence[Any],
    maps: Mapping[str, Sequence[Sequence[Any]]],
    names: Mapping[str, Sequence[str]],
    *,
    masks: Sequence[Any] | None = None,
    notes: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> Figure:
    """One row per image and recipe: the image (mask outlined, titled with a note), then each model's map.

    Args:
        images: the images.
        maps: recipe -> per model, its maps of the images (e.g. ``stacked[index[recipe]]``, shape
            ``(models, images, h, w)``).
        names: recipe -> per model, its label (``"XENT s0"``), the title over its map.
        masks: per image, a mask outlined on the plain image, or None.
        notes: recipe -> per image, the title of the plain image in that recipe's row.
        **options: passed to :func:`gallery` (``panel_size``, ``suptitle``).

    Returns:
        The figure; its rows are labelled with the recipes.

    Raises:
        ValueError: recipes with different numbers of models, or lists of another length.
    """
    counts = {recipe: len(per_model) for recipe, per_model in maps.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every recipe needs the same number of models for one grid, got {counts}")
    for recipe, per_model in maps.items():
        if len(names[recipe]) != len(per_model):
            raise ValueError(f"`names[{recipe!r}]` has {len(names[recipe])} entries for {len(per_model)} models")
        if any(len(model_maps) != len(images) for model_maps in per_model):
            raise ValueError(f"`maps[{recipe!r}]` must hold one map per image ({len(images)}) for every model")
    panels, overlays, outlines, titles, row_labels = [], [], [], [], []
    for i, image in enumerate(images):
        for recipe, per_model in maps.items():
            panels += [image] * (1 + len(per_model))
            overlays += [None] + [model_maps[i] for model_maps in per_model]
            outlines += [None if masks is None else masks[i]] + [None] * len(per_model)
            titles += ["" if notes is None else notes[recipe][i], *names[recipe]]
            row_labels.append(RECIPE_LABELS.get(recipe, recipe))
    ncols = 1 + next(iter(counts.values()))
    return gallery(panels, maps=overlays, masks=outlines, titles=titles, ncols=ncols, row_labels=row_labels, **options)


def shifted_blob_similarity(
    similarities: Mapping[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], int | None]],
    side: int = 8,
    shifts: Sequence[int] = (0, 1, 2, 3),
    centre: tuple[float, float] = (3.5, 2.5),
    sigma: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Similarity of a Gaussian blob on a ``side``-px map to the same blob moved right by each shift.

    Both maps are min–max normalised; each similarity is applied to them as they are or after both
    are upsampled (bilinear) to a given side and normalised again.

    Args:
        similarities: label -> (similarity function, upsampled side or None for the native maps).
        side: the side of the maps.
        shifts: the horizontal displacements, in map pixels.
        centre: the blob's (row, column) centre before the shift.
        sigma: the blob's standard deviation in map pixels.

    Returns:
        label -> ``(len(shifts),)`` similarities (1 at shift 0).
    """
    row, col = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)), indexing="ij")

    def blob(dx: float) -> torch.Tensor:
        return torch.exp(-((row - centre[0]) ** 2 + (col - centre[1] - dx) ** 2) / (2 * sigma**2))

    still = minmax_normalise(torch.stack([blob(0.0)] * len(shifts)))
    moved = minmax_normalise(torch.stack([blob(float(d)) for d in shifts]))
    curves = {}
    for label, (similarity, upsample_to) in similarities.items():
        a, b = still, moved
        if upsample_to is not None:
            a, b = (minmax_normalise(resize_maps(m, upsample_to)) for m in (still, moved))
        curves[label] = similarity(a, b)
    return curves


def plot_shift_similarity(
    ax: Axes,
    similarities: Mapping[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], int | None]],
    shifts: Sequence[int] = (0, 1, 2, 3),
    markers: str = "osD",
) -> dict[str, torch.Tensor]:
    """Draw :func:`shifted_blob_similarity` against the shift, one line (and marker) per similarity.

    Returns:
        What :func:`shifted_blob_similarity` returned.
    """
    shifts = list(shifts)
    curves = shifted_blob_similarity(similarities, shifts=shifts)
    for k, (label, values) in enumerate(curves.items()):
        ax.plot(shifts, values.tolist(), marker=markers[k % len(markers)], label=label)
    ax.set(xlabel="shift of the blob (map pixels)", ylabel="similarity to the unshifted blob", xticks=shifts)
    ax.legend()
    return curves


def plot_ssim_windows(ax: Axes, salience: torch.Tensor, window: int = 7) -> None:
    """A map with the outlines of every position of a ``window``×``window`` SSIM window inside it.

    Each outline is drawn slightly inset (and offset with its position) so that overlapping windows
    stay distinguishable.

    Raises:
        ValueError: a map that is not 2-D or smaller than the window.
    """
    import matplotlib.pyplot as plt

    m = torch.as_tensor(salience).detach().cpu()
    if m.ndim != 2 or min(m.shape) < window:
        raise ValueError(f"`salience` must be a 2-D map of side >= {window}, got shape {tuple(m.shape)}")
    ax.imshow(m.numpy(), cmap=MAP_CMAP, vmin=0, vmax=1)
    positions = [(dr, dc) for dr in range(m.shape[0] - window + 1) for dc in range(m.shape[1] - window + 1)]
    for k, (dr, dc) in enumerate(positions):
        ax.add_patch(
            plt.Rectangle(
                (dc - 0.5 + 0.06 * dc, dr - 0.5 + 0.06 * dr),
                window - 0.12,
                window - 0.12,
                fill=False,
                lw=2,
                color=PALETTE[2 + k % (len(PALETTE) - 2)],
            )
        )
    ax.set(xlabel="column (map pixel)", ylabel="row (map pixel)")
