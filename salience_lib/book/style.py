"""The book's plot style: one colour-blind-safe palette, fixed colours and labels per recipe.

Colours are fixed here so that a recipe looks the same in every chapter: :data:`RECIPE_COLORS`
(XENT vermillion, CYBORG blue, from the Okabe–Ito palette, which stays distinguishable with the
common colour-vision deficiencies). Salience and annotation maps use the perceptually uniform
``inferno`` colour map (:data:`MAP_CMAP`); artifact masks are outlined in :data:`MASK_COLOR`.

Importing this module changes nothing: matplotlib's style changes only when a chapter calls
:func:`use_style`.
"""

from __future__ import annotations

import matplotlib as mpl

__all__ = ["MAP_CMAP", "MASK_COLOR", "PALETTE", "RECIPE_COLORS", "RECIPE_LABELS", "recipe_color", "use_style"]

#: Okabe & Ito (2008) colour-blind-safe palette, in the order used for categorical colours.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

#: The colour of each training recipe, in every chapter.
RECIPE_COLORS: dict[str, str] = {"xent": "#D55E00", "cyborg": "#0072B2"}

#: How each recipe is written in figures and tables.
RECIPE_LABELS: dict[str, str] = {"xent": "XENT", "cyborg": "CYBORG"}

#: Colour map for salience and annotation maps (perceptually uniform, readable in grey).
MAP_CMAP = "inferno"

#: Outline colour for exact artifact masks (sky blue: visible on skin, hair and dark maps).
MASK_COLOR = "#56B4E9"


def recipe_color(recipe: str, position: int = 0) -> str:
    """The colour of ``recipe``: :data:`RECIPE_COLORS`, or a palette colour for any other recipe.

    Args:
        recipe: recipe name (``"xent"``, ``"cyborg"``, or any other).
        position: the recipe's place in a figure; picks the palette colour of an unknown recipe,
            skipping the two recipe colours.
    """
    return RECIPE_COLORS.get(recipe, PALETTE[(position + 2) % len(PALETTE)])


def use_style(context: str = "notebook") -> None:
    """Apply the book's plot style (seaborn ``ticks`` theme, the palette above, PNG-friendly sizes).

    Call once near the top of a chapter; calling it again is harmless.

    Args:
        context: seaborn context (``"paper"``, ``"notebook"``, ``"talk"``).
    """
    import seaborn as sns

    sns.set_theme(context=context, style="ticks", palette=list(PALETTE))
    mpl.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "savefig.bbox": "tight",
            "figure.figsize": (6.4, 4.0),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": "medium",
            "image.cmap": MAP_CMAP,
            "image.interpolation": "nearest",
        }
    )
