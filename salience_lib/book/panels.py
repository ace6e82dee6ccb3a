"""Whole figures the chapters repeat: recipes compared over several metrics, and rows of maps.

- :func:`compare_recipe_panels`: one :func:`~salience_lib.book.plots.compare_recipes` panel per
  metric of a :func:`~salience_lib.book.recipes.summarise_recipes` summary, its Mann–Whitney p in
  the title;
- :func:`recipe_means_panels`: one :func:`~salience_lib.book.plots.plot_recipe_means` panel per
  group of metrics (e.g. per quantity, the conditions along the x axis);
- :func:`image_and_maps`: one image, then the same image under each of several maps, and
  optionally a wider panel for a plot about them (a frame of an image browser);
- :func:`map_grid`: the same images in every row, the first plain (or with their masks outlined),
  each further row with one set of maps over them (e.g. the maps of one XENT and one CYBORG model).

Each returns the figure (and its axes) after ``tight_layout``, so a chapter can add a reference line
or a legend before the cell ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from salience_lib.book.figures import gallery, show_image
from salience_lib.book.plots import compare_recipes, plot_recipe_means
from salience_lib.book.recipes import RECIPES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["compare_recipe_panels", "image_and_maps", "map_grid", "recipe_means_panels", "recipe_values"]


def recipe_values(summary: Mapping[str, Mapping[str, Any]], metric: str, recipes: Sequence[str] = RECIPES) -> dict:
    """``{recipe: its models' values}`` of one metric of a summary, the input of :func:`compare_recipes`.

    Raises:
        KeyError: a metric or recipe the summary lacks, naming it.
    """
    if metric not in summary:
        raise KeyError(f"the summary has no metric {metric!r} (it has {sorted(summary)})")
    missing = [r for r in recipes if r not in summary[metric]]
    if missing:
        raise KeyError(f"metric {metric!r} has no values for recipe(s) {', '.join(missing)}")
    return {recipe: summary[metric][recipe]["values"] for recipe in recipes}


def _titled(title: str, entry: Mapping[str, Any]) -> str:
    """``title`` with the entry's Mann–Whitney p: in place of ``{p}`` if it has one, else appended."""
    if "mann_whitney" not in entry:
        return title
    p = f"{entry['mann_whitney']['p']:.3f}"
    if "{p}" in title:
        return title.replace("{p}", p)
    return f"{title} (p = {p})" if title else f"Mann–Whitney p = {p}"


def compare_recipe_panels(
    summary: Mapping[str, Mapping[str, Any]],
    panels: Sequence[tuple[str, str, str]],
    *,
    recipes: Sequence[str] = RECIPES,
    baselines: Mapping[str, float] | None = None,
    baseline_label: str = "baseline",
    panel_size: tuple[float, float] = (3.8, 3.8),
    seed: int = 0,
) -> tuple[Figure, np.ndarray]:
    """One panel per metric: every model as a dot, each recipe's mean with its 95% CI, p in the title.

    Args:
        summary: what :func:`summarise_recipes` returned.
        panels: ``(metric, ylabel, title)`` per panel, left to right. The title gets the metric's
            Mann–Whitney p: where it says ``{p}``, or appended as ``" (p = …)"`` (an empty title
            becomes ``"Mann–Whitney p = …"``).
        recipes: the recipes to draw, in order.
        baselines: metric -> a value drawn as a grey dashed line in its panel (e.g. the similarity
            between models of different recipes).
        baseline_label: the legend label of those lines.
        panel_size: width and height of one panel in inches.
        seed: seeds the bootstrap and the dots' jitter.

    Returns:
        The figure and its 1-D array of axes.

    Raises:
        ValueError: no panels.
        KeyError: a metric or recipe the summary lacks.
    """
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("`panels` is empty: nothing to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size[0] * len(panels), panel_size[1]), squeeze=False)
    for ax, (metric, ylabel, title) in zip(axes[0], panels, strict=True):
        compare_recipes(
            ax, recipe_values(summary, metric, recipes), ylabel, title=_titled(title, summary[metric]), seed=seed
        )
        if baselines is not None and metric in baselines:
            ax.axhline(baselines[metric], color="grey", lw=1, ls="--", label=baseline_label)
        ax.set_xlabel("recipe")
    fig.tight_layout()
    return fig, axes[0]


def recipe_means_panels(
    summary: Mapping[str, Mapping[str, Any]],
    panels: Sequence[tuple[Sequence[str], Sequence[str], str, str, str]],
    *,
    recipes: Sequence[str] = RECIPES,
    panel_size: tuple[float, float] = (4.0, 3.8),
) -> tuple[Figure, np.ndarray]:
    """One :func:`plot_recipe_means` panel per group of metrics; the first panel has the recipe legend.

    Args:
        summary: what :func:`summarise_recipes` returned.
        panels: ``(metrics, ticks, xlabel, ylabel, title)`` per panel: the metrics along its x axis,
            their tick labels, and the panel's labels.
        recipes: the recipes to draw.
        panel_size: width and height of one panel in inches.

    Returns:
        The figure and its 1-D array of axes.

    Raises:
        ValueError: no panels (or what :func:`plot_recipe_means` refuses).
    """
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("`panels` is empty: nothing to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size[0] * len(panels), panel_size[1]), squeeze=False)
    for ax, (metrics, ticks, xlabel, ylabel, title) in zip(axes[0], panels, strict=True):
        plot_recipe_means(ax, summary, metrics, ticks, recipes=recipes)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes[0, 0].legend(frameon=False)
    fig.tight_layout()
    return fig, axes[0]


def image_and_maps(
    image: Any,
    maps: Mapping[str, Any],
    *,
    mask: Any = None,
    title: str | None = None,
    extra_width: float | None = None,
    panel_size: tuple[float, float] = (2.2, 2.7),
) -> tuple[Figure, np.ndarray]:
    """A row of panels: the image (mask outlined), then the image under each map, then an empty wider panel.

    Args:
        image: anything :func:`~salience_lib.book.figures.to_image_array` accepts.
        maps: the title of each map's panel -> the map in [0, 1].
        mask: an optional mask outlined on the first panel.
        title: the first panel's title.
        extra_width: if given, one more panel this many times as wide as the others, left empty for
            the caller (e.g. the maps' histograms).
        panel_size: width and height of one image panel in inches.

    Returns:
        The figure and its 1-D array of axes (the extra panel last). ``tight_layout`` is the caller's,
        after it has drawn into the extra panel.

    Raises:
        ValueError: ``extra_width`` <= 0.
    """
    import matplotlib.pyplot as plt

    if extra_width is not None and extra_width <= 0:
        raise ValueError(f"`extra_width` must be > 0, got {extra_width}")
    ratios = [1.0] * (1 + len(maps)) + ([] if extra_width is None else [extra_width])
    fig, axes = plt.subplots(
        1, len(ratios), figsize=(panel_size[0] * sum(ratios), panel_size[1]), width_ratios=ratios, squeeze=False
    )
    show_image(axes[0, 0], image, mask=mask, title=title)
    for ax, (label, salience) in zip(axes[0, 1:], maps.items(), strict=False):
        show_image(ax, image, salience=salience, title=label)
    return fig, axes[0]


def map_grid(
    images: Sequence[Any],
    rows: Mapping[str, Sequence[Any] | None],
    *,
    masks: Sequence[Any] | None = None,
    mask_rows: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
    row_titles: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> Figure:
    """A :func:`gallery` with one column per image and one row per entry of ``rows``.

    Every row shows the same images; a row's maps (one per image, or None for a plain image; None for
    the whole row for plain images) are overlaid, and the masks are outlined on the rows named in
    ``mask_rows`` (default: the first row).

    Args:
        images: the images, one per column.
        rows: row label -> the maps of that row, or None.
        masks: per image, a binary mask or None.
        mask_rows: the rows on which the masks are outlined (default: the first).
        titles: per image, the title over its column (on the first row).
        row_titles: row label -> per image, a title for that row's panels (e.g. a score per map).
        **options: passed to :func:`gallery` (``panel_size``, ``suptitle``, ``alpha``).

    Raises:
        ValueError: no images or rows, a row, mask list or titles of another length, or a
            ``mask_rows`` / ``row_titles`` entry that names no row.
    """
    n = len(images)
    if n == 0 or not rows:
        raise ValueError("`images` and `rows` must not be empty")
    labels = list(rows)
    outlined = set(labels[:1] if mask_rows is None else mask_rows)
    unknown = (outlined | set(row_titles or {})) - set(labels)
    if unknown:
        raise ValueError(f"no row named {sorted(unknown)} (rows: {labels})")
    for name, values in (("masks", masks), ("titles", titles), *((f"rows[{k!r}]", v) for k, v in rows.items())):
        if values is not None and len(values) != n:
            raise ValueError(f"`{name}` has {len(values)} entries for {n} images")
    all_maps, all_masks, all_titles = [], [], []
    for k, label in enumerate(labels):
        row_maps = rows[label]
        all_maps += [None] * n if row_maps is None else list(row_maps)
        all_masks += list(masks) if masks is not None and label in outlined else [None] * n
        if row_titles is not None and label in row_titles:
            if len(row_titles[label]) != n:
                raise ValueError(f"`row_titles[{label!r}]` has {len(row_titles[label])} entries for {n} images")
            all_titles += [str(t) for t in row_titles[label]]
        else:
            all_titles += [str(t) for t in titles] if titles is not None and k == 0 else [""] * n
    return gallery(
        list(images) * len(labels),
        maps=all_maps,
        masks=all_masks,
        titles=all_titles,
        ncols=n,
        row_labels=labels,
        **options,
    )
