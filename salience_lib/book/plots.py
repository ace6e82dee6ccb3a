"""Plots that compare the training recipes, in the recipes' fixed colours and labels.

- :func:`compare_recipes`: one panel, every model as a dot and each recipe's mean with its CI;
- :func:`plot_recipe_means`: several metrics side by side, each recipe's mean with its CI (from
  :func:`salience_lib.book.recipes.summarise_recipes`);
- :func:`plot_ci_bands`: a curve per model (a value per x), each recipe's mean curve in a CI band;
- :func:`plot_recipe_histograms`: each recipe's values (e.g. per-image entropies) as a histogram;
- :func:`plot_recipe_scatter`: one quantity against another, a cloud per recipe, with its correlation;
- :func:`plot_similarity_matrix`: a models × models matrix (e.g. of salience similarity across
  seeds) as a heat map, with each value written in its cell and the recipes' blocks marked.

Every CI is a 95% percentile bootstrap over the models of a recipe (:func:`salience_lib.stats.summarise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from salience_lib.book.recipes import RECIPES
from salience_lib.book.style import RECIPE_LABELS, recipe_color
from salience_lib.stats import Summary, summarise

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.image import AxesImage

__all__ = [
    "compare_recipes",
    "plot_ci_bands",
    "plot_recipe_histograms",
    "plot_recipe_means",
    "plot_recipe_scatter",
    "plot_similarity_matrix",
]


def _as_numpy(values: Any) -> np.ndarray:
    """A tensor (on any device), an array or nested lists as a new, writable float64 numpy array.

    A copy, because pandas hands out read-only views, which torch (in :func:`summarise`) warns about.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.array(values, dtype=np.float64)


def compare_recipes(
    ax: Axes,
    values: Mapping[str, Sequence[float] | torch.Tensor | np.ndarray],
    ylabel: str,
    *,
    title: str | None = None,
    seed: int = 0,
) -> dict[str, Summary]:
    """Per recipe: every value as a dot, and the mean with its 95% bootstrap CI; same colours everywhere.

    Meant for a handful to a few hundred values per recipe (e.g. one value per trained model).

    Args:
        ax: matplotlib axes.
        values: recipe name (``"xent"``, ``"cyborg"``, or any other) -> values.
        ylabel: what the values are (the y-axis label).
        title: optional axes title.
        seed: seeds the bootstrap and the horizontal jitter of the dots.

    Returns:
        recipe -> :class:`salience_lib.stats.Summary` (mean, CI, n).

    Raises:
        ValueError: no recipes, or a recipe without values.
    """
    if not values:
        raise ValueError("`values` is empty: give at least one recipe")
    rng = np.random.default_rng(seed)
    summaries: dict[str, Summary] = {}
    names = list(values)
    for x, name in enumerate(names):
        data = _as_numpy(values[name]).reshape(-1)
        summary = summarise(data, seed=seed)
        summaries[name] = summary
        color = recipe_color(name, x)
        jitter = rng.uniform(-0.12, 0.12, data.size)
        ax.scatter(x + jitter, data, s=18, color=color, alpha=0.55 if data.size > 20 else 0.85, linewidths=0)
        ax.errorbar(
            x + 0.3,
            summary.mean,
            yerr=[[summary.mean - summary.ci_low], [summary.ci_high - summary.mean]],
            fmt="D",
            color=color,
            capsize=4,
            markersize=6,
        )
    ax.set_xticks(range(len(names)), [RECIPE_LABELS.get(n, n) for n in names])
    ax.set_xlim(-0.5, len(names) - 0.3)
    ax.set_xlabel("recipe (dots: values; diamond: mean with 95% bootstrap CI)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return summaries


def plot_recipe_means(
    ax: Axes,
    summary: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str],
    ticks: Sequence[str] | None = None,
    *,
    recipes: Sequence[str] = RECIPES,
    spread: float = 0.2,
    capsize: float = 4,
    rotation: float = 0,
) -> np.ndarray:
    """Several metrics side by side: at each, every recipe's mean over its models with the 95% CI.

    The metrics sit at x = 0, 1, ...; the recipes are drawn next to each other within ``spread``
    around each position, in their colours and with their labels (for ``ax.legend()``).

    Args:
        ax: matplotlib axes.
        summary: what :func:`summarise_recipes` returned (at least the ``metrics``).
        metrics: the metrics to draw, in order along the x axis.
        ticks: the x tick labels (default: the metric names).
        recipes: the recipes to draw.
        spread: horizontal distance between the first and the last recipe at one metric.
        capsize: length of the error bars' caps, in points.
        rotation: angle of the tick labels in degrees (rotated labels are aligned at their right end).

    Returns:
        The x positions of the metrics.

    Raises:
        ValueError: no metrics, ``ticks`` of another length, or a metric without one of the recipes.
    """
    if not metrics:
        raise ValueError("`metrics` is empty: nothing to plot")
    if ticks is not None and len(ticks) != len(metrics):
        raise ValueError(f"`ticks` has {len(ticks)} entries for {len(metrics)} metrics")
    for metric in metrics:
        missing = [r for r in recipes if r not in summary[metric]]
        if missing:
            raise ValueError(f"metric {metric!r} has no values for recipe(s) {', '.join(missing)}")
    positions = np.arange(len(metrics), dtype=float)
    offsets = np.linspace(-spread / 2, spread / 2, len(recipes)) if len(recipes) > 1 else np.zeros(1)
    for k, (offset, recipe) in enumerate(zip(offsets, recipes, strict=True)):
        entries = [summary[metric][recipe] for metric in metrics]
        means = np.array([e["mean"] for e in entries])
        errors = np.array([[e["mean"] - e["ci_low"] for e in entries], [e["ci_high"] - e["mean"] for e in entries]])
        ax.errorbar(
            positions + offset,
            means,
            yerr=errors,
            fmt="o",
            capsize=capsize,
            color=recipe_color(recipe, k),
            label=RECIPE_LABELS.get(recipe, recipe),
        )
    labels = list(metrics) if ticks is None else list(ticks)
    if rotation:
        ax.set_xticks(positions, labels, rotation=rotation, ha="right")
    else:
        ax.set_xticks(positions, labels)
    return positions


def plot_ci_bands(
    ax: Axes,
    x: Sequence[float] | np.ndarray | torch.Tensor,
    curves: Mapping[str, Sequence[Sequence[float]] | np.ndarray | torch.Tensor],
    *,
    label: str = "{recipe}",
    linestyle: str = "-",
    marker: str = "o",
    markersize: float = 4,
    alpha: float = 0.25,
    seed: int = 0,
) -> dict[str, list[Summary]]:
    """Per recipe, the mean of its models' curves as a line, in a band of the 95% bootstrap CI over models.

    Args:
        ax: matplotlib axes.
        x: the x values shared by all curves, length ``n``.
        curves: recipe -> its models' curves, ``(models, n)``: one row per model (e.g. a model's mean
            over images at each severity).
        label: legend label; ``{recipe}`` is replaced by the recipe's label (``"XENT"``).
        linestyle, marker, markersize: how the mean line is drawn.
        alpha: opacity of the band.
        seed: seeds the bootstrap.

    Returns:
        recipe -> one :class:`salience_lib.stats.Summary` per x value.

    Raises:
        ValueError: no recipes, or curves that are not ``(models, n)`` with at least one model.
    """
    if not curves:
        raise ValueError("`curves` is empty: give at least one recipe")
    xs = _as_numpy(x).reshape(-1)
    out: dict[str, list[Summary]] = {}
    for k, (recipe, rows) in enumerate(curves.items()):
        data = _as_numpy(rows)
        if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] != xs.size:
            raise ValueError(
                f"`curves[{recipe!r}]` must be (models, {xs.size}) with at least one model, got {data.shape}"
            )
        summaries = [summarise(data[:, j], seed=seed) for j in range(xs.size)]
        color = recipe_color(recipe, k)
        ax.plot(
            xs,
            [s.mean for s in summaries],
            linestyle=linestyle,
            marker=marker,
            markersize=markersize,
            color=color,
            label=label.format(recipe=RECIPE_LABELS.get(recipe, recipe)),
        )
        ax.fill_between(
            xs, [s.ci_low for s in summaries], [s.ci_high for s in summaries], color=color, alpha=alpha, linewidth=0
        )
        out[recipe] = summaries
    return out


def plot_recipe_histograms(
    ax: Axes,
    values: Mapping[str, Sequence[float] | np.ndarray | torch.Tensor],
    *,
    bins: int = 40,
    range: tuple[float, float] = (0.0, 1.0),
    density: bool = False,
    filled: bool = False,
) -> None:
    """One histogram per recipe over the same bins, in the recipe's colour and labelled for ``ax.legend()``.

    Args:
        ax: matplotlib axes.
        values: recipe -> its values (any shape; flattened).
        bins, range: the shared bins.
        density: normalise each histogram to unit area (recipes with different counts stay comparable).
        filled: semi-transparent filled histograms (for a few overlapping distributions) instead of
            outlines.

    Raises:
        ValueError: no recipes.
    """
    if not values:
        raise ValueError("`values` is empty: give at least one recipe")
    for k, (recipe, data) in enumerate(values.items()):
        style = {"histtype": "stepfilled", "alpha": 0.45} if filled else {"histtype": "step", "lw": 1.8}
        ax.hist(
            _as_numpy(data).reshape(-1),
            bins=bins,
            range=range,
            density=density,
            color=recipe_color(recipe, k),
            label=RECIPE_LABELS.get(recipe, recipe),
            **style,
        )


def plot_recipe_scatter(
    ax: Axes,
    x: Mapping[str, Sequence[float] | np.ndarray | torch.Tensor],
    y: Mapping[str, Sequence[float] | np.ndarray | torch.Tensor],
    *,
    size: float = 8,
    alpha: float = 0.5,
) -> dict[str, float]:
    """Per recipe, ``y`` against ``x`` as a cloud of dots, its Pearson correlation r in the legend label.

    Args:
        ax: matplotlib axes.
        x, y: recipe -> values of the same length (e.g. one per image).
        size, alpha: the dots' size and opacity.

    Returns:
        recipe -> Pearson's r of its values (NaN when either is constant).

    Raises:
        ValueError: no recipes, recipes missing from ``y``, or values of different lengths.
    """
    if not x:
        raise ValueError("`x` is empty: give at least one recipe")
    if set(x) != set(y):
        raise ValueError(f"`x` and `y` must have the same recipes, got {sorted(x)} and {sorted(y)}")
    correlations = {}
    for k, recipe in enumerate(x):
        xs, ys = _as_numpy(x[recipe]).reshape(-1), _as_numpy(y[recipe]).reshape(-1)
        if xs.size != ys.size or xs.size < 2:
            raise ValueError(
                f"recipe {recipe!r}: need two equally long arrays of >= 2 values, got {xs.size} and {ys.size}"
            )
        constant = xs.std() == 0 or ys.std() == 0
        correlations[recipe] = float("nan") if constant else float(np.corrcoef(xs, ys)[0, 1])
        label = f"{RECIPE_LABELS.get(recipe, recipe)} (r = {correlations[recipe]:.2f})"
        ax.scatter(xs, ys, s=size, alpha=alpha, color=recipe_color(recipe, k), label=label)
    return correlations


def plot_similarity_matrix(
    ax: Axes,
    matrix: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    labels: Sequence[str],
    recipes: Sequence[str],
    *,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "viridis",
    fmt: str = "{:.2f}",
) -> AxesImage:
    """A models × models matrix as a heat map: every value in its cell, the recipes' blocks marked.

    Models are grouped by recipe in the order given (e.g. all XENT seeds, then all CYBORG seeds); a
    white line separates consecutive groups, so the diagonal blocks are the within-recipe matrices
    and the others compare two recipes. Tick labels take the colour of their model's recipe.

    Args:
        ax: matplotlib axes.
        matrix: ``(n, n)`` values, e.g. the mean similarity of every pair of models.
        labels: one tick label per model, e.g. ``"XENT s0"``.
        recipes: the recipe of each model, in the matrix's order.
        vmin, vmax: the range of the colour map; values written on a colour above 60% of it are black,
            below it white.
        cmap: matplotlib colour map name.
        fmt: how each value is written.

    Returns:
        The image, for ``fig.colorbar``.

    Raises:
        ValueError: a matrix that is not square, or labels or recipes of another length.
    """
    values = _as_numpy(matrix)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"`matrix` must be square (n, n), got shape {values.shape}")
    n = values.shape[0]
    for name, given in (("labels", labels), ("recipes", recipes)):
        if len(given) != n:
            raise ValueError(f"`{name}` has {len(given)} entries for a {n}×{n} matrix")
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    threshold = vmin + 0.6 * (vmax - vmin)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                fmt.format(values[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="black" if values[i, j] > threshold else "white",
            )
    for k in range(1, n):
        if recipes[k] != recipes[k - 1]:
            ax.axhline(k - 0.5, color="white", lw=2)
            ax.axvline(k - 0.5, color="white", lw=2)
    order = list(dict.fromkeys(recipes))
    ax.set_xticks(range(n), labels, rotation=90)
    ax.set_yticks(range(n), labels)
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        for tick, recipe in zip(ticks, recipes, strict=True):
            tick.set_color(recipe_color(recipe, order.index(recipe)))
    return image
