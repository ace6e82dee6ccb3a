"""Perturbation curves of many models: one long table, and a grid of per-recipe CI bands (out-of-set chapter).

:func:`salience_lib.measures.out_of_set.perturbation_curve` gives, per model and perturbation
family, per-image values at each severity. :func:`curve_table` averages them over the images into
one row per (model, family, severity), and :func:`plot_curve_grid` draws, per family (column) and
quantity (row), each recipe's mean curve over its models in its 95% bootstrap CI band
(:func:`~salience_lib.book.plots.plot_ci_bands`); :func:`curve_means_by_label` splits the curves'
means by the images' true label.

For the distribution-shift part of the measure, :func:`mean_map` streams a model's maps of in-set
images into their mean (:class:`~salience_lib.measures.out_of_set.MeanMapAccumulator`), and
:func:`shift_numbers` says how far one group's maps are from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from salience_lib.book.chapters import in_batches
from salience_lib.book.plots import plot_ci_bands
from salience_lib.book.recipes import RECIPES
from salience_lib.measures.entropy import salience_entropy
from salience_lib.measures.out_of_set import MeanMapAccumulator, similarity_to_mean_map

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["curve_means_by_label", "curve_table", "mean_map", "plot_curve_grid", "shift_numbers"]


def curve_table(curves: Mapping[tuple[str, str], Any], recipes: Mapping[str, str]) -> pd.DataFrame:
    """One row per model, family and severity: ``run``, ``recipe``, ``family``, ``severity``, and the image means.

    Args:
        curves: ``(run name, family)`` -> its :class:`~salience_lib.measures.out_of_set.PerturbationCurve`
            (``severities`` ``(S,)``, ``similarity`` and ``probability_change`` ``(B, S)``).
        recipes: run name -> its recipe.

    Returns:
        Columns ``run``, ``recipe``, ``family``, ``severity``, ``similarity`` and
        ``probability change`` (the means over the images).

    Raises:
        KeyError: a run without a recipe.
    """
    import pandas as pd

    rows = []
    for (name, family), curve in curves.items():
        if name not in recipes:
            raise KeyError(f"no recipe for run {name!r}")
        for j, severity in enumerate(curve.severities.tolist()):
            rows.append(
                {
                    "run": name,
                    "recipe": recipes[name],
                    "family": family,
                    "severity": severity,
                    "similarity": float(curve.similarity[:, j].mean()),
                    "probability change": float(curve.probability_change[:, j].mean()),
                }
            )
    return pd.DataFrame(rows)


def plot_curve_grid(
    table: pd.DataFrame,
    families: Mapping[str, str],
    quantities: Mapping[str, str],
    *,
    recipes: Sequence[str] = RECIPES,
    ylims: Mapping[str, tuple[float, float]] | None = None,
    symlog: Mapping[str, float] | None = None,
    panel_size: tuple[float, float] = (3.7, 3.0),
) -> tuple[Figure, np.ndarray]:
    """Per family (column) and quantity (row), each recipe's mean curve over its models in a CI band.

    Args:
        table: what :func:`curve_table` returned.
        families: family -> the label of its x axis (its severity); column titles are the family
            names with spaces for underscores.
        quantities: column of ``table`` -> the label of its y axis, one row of panels each (rows
            share their y axis).
        recipes: the recipes to draw.
        ylims: quantity -> its y range.
        symlog: family -> the linear threshold of a symmetric-log x axis (linear below it,
            logarithmic above).
        panel_size: width and height of one panel in inches.

    Returns:
        The figure and its ``(quantities, families)`` axes; the top-left panel has the legend.

    Raises:
        ValueError: no families or quantities, or a family or recipe without rows in ``table``.
    """
    import matplotlib.pyplot as plt

    if not families or not quantities:
        raise ValueError("`families` and `quantities` must not be empty")
    fig, axes = plt.subplots(
        len(quantities),
        len(families),
        figsize=(panel_size[0] * len(families), panel_size[1] * len(quantities)),
        sharey="row",
        squeeze=False,
    )
    for column, (family, xlabel) in enumerate(families.items()):
        rows = table[table["family"] == family]
        missing = [r for r in recipes if r not in set(rows["recipe"])]
        if missing:
            raise ValueError(f"family {family!r} has no curves of recipe(s) {', '.join(missing)}")
        for row, (quantity, ylabel) in enumerate(quantities.items()):
            ax = axes[row, column]
            block = rows.pivot(index=["recipe", "run"], columns="severity", values=quantity)
            plot_ci_bands(ax, block.columns.to_numpy(), {r: block.loc[r].to_numpy() for r in recipes})
            if symlog is not None and family in symlog:
                ax.set_xscale("symlog", linthresh=symlog[family])
            ax.set_xlabel(xlabel)
            if column == 0:
                ax.set_ylabel(ylabel)
            if ylims is not None and quantity in ylims:
                ax.set_ylim(*ylims[quantity])
        axes[0, column].set_title(family.replace("_", " "))
    axes[0, 0].legend(frameon=False)
    fig.tight_layout()
    return fig, axes


def curve_means_by_label(
    curves: Mapping[tuple[str, str], Any],
    recipes: Mapping[str, str],
    labels: torch.Tensor,
    names: Sequence[str] = ("real", "synthetic"),
) -> pd.DataFrame:
    """Per family, true label and recipe: the mean change of the clean prediction's probability and the flip rate.

    Both are over the severities above the first (the clean image) and over the images of that
    label, then averaged over the recipe's models. "Flipped" means the probability of the clean
    prediction fell below 0.5.

    Args:
        curves: ``(run name, family)`` -> its perturbation curve.
        recipes: run name -> its recipe.
        labels: ``(B,)`` the images' true labels, 0, 1, ... in the order of ``names``.
        names: the labels' names.

    Returns:
        Index ``(family, true label, recipe)``; columns ``mean Δp (over severities > 0)`` and
        ``flipped (over severities > 0)``.
    """
    import pandas as pd

    rows = []
    for (name, family), curve in curves.items():
        for label, label_name in enumerate(names):
            chosen = labels == label
            rows.append(
                {
                    "recipe": recipes[name],
                    "family": family,
                    "true label": label_name,
                    "mean Δp (over severities > 0)": float(curve.probability_change[chosen, 1:].mean()),
                    "flipped (over severities > 0)": float((curve.probability[chosen, 1:] < 0.5).float().mean()),
                }
            )
    return pd.DataFrame(rows).groupby(["family", "true label", "recipe"]).mean()


def mean_map(explainer: Any, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """The mean of ``explainer``'s maps of ``images``, streamed in batches: ``(h, w)``.

    The first batch sets the map size of the :class:`~salience_lib.measures.out_of_set.MeanMapAccumulator`.

    Raises:
        ValueError: no images, or ``batch_size`` < 1.
    """
    if len(images) == 0 or batch_size < 1:
        raise ValueError(f"need images and `batch_size` >= 1, got {len(images)} images and {batch_size}")
    first = explainer(images[:batch_size])
    accumulator = MeanMapAccumulator(tuple(first.shape[-2:]))
    accumulator.update(first)
    if len(images) > batch_size:
        in_batches(explainer, images[batch_size:], batch_size, each=[accumulator.update])
    return accumulator.compute()


def shift_numbers(maps: torch.Tensor, reference: torch.Tensor, group: str) -> dict[str, float]:
    """How one group's maps relate to a model's mean in-set map, as means over the maps.

    Returns:
        ``similarity to mean map: <group>`` (SSIM to ``reference``), ``spatial entropy: <group>`` and
        ``all-zero maps: <group>`` (the share of maps that are zero everywhere).
    """
    return {
        f"similarity to mean map: {group}": float(similarity_to_mean_map(maps, reference).mean()),
        f"spatial entropy: {group}": float(salience_entropy(maps, "spatial").mean()),
        f"all-zero maps: {group}": float((maps.flatten(1).amax(1) == 0).float().mean()),
    }
