"""What the book's chapters share: one plot style, pictures of maps, frame widgets and chapter helpers.

One job per module, every public name re-exported here (``from salience_lib import book``, then
``book.gallery(...)``):

- :mod:`~salience_lib.book.style`: the palette, each recipe's colour and label, :func:`use_style`;
- :mod:`~salience_lib.book.figures`: images as arrays, map overlays, mask outlines, galleries, PNGs;
- :mod:`~salience_lib.book.widgets`: sliders and dropdowns over precomputed frames, which keep
  working on the static site (the control is linked to the frames in the browser, no kernel needed);
- :mod:`~salience_lib.book.recipes`: XENT against CYBORG over per-model numbers: summaries with CIs
  and a test, and their table;
- :mod:`~salience_lib.book.plots`: the recipe plots (per-model dots, means with CIs, CI bands,
  model × model matrices);
- :mod:`~salience_lib.book.chapters`: run selection and loading, seeded subsets, and gluing numbers
  into the prose.

Importing the package has no side effects: matplotlib's style changes only when a chapter calls
:func:`use_style`, and no widget exists until a function makes one.
"""

from salience_lib.book.chapters import (
    glue_numbers,
    glue_summary,
    load_runs,
    runs_by_recipe,
    seeded_picks,
    summary_numbers,
)
from salience_lib.book.figures import (
    PNG_SIGNATURE,
    gallery,
    outline_mask,
    overlay_map,
    show_image,
    to_image_array,
    to_png,
)
from salience_lib.book.plots import compare_recipes, plot_ci_bands, plot_recipe_means, plot_similarity_matrix
from salience_lib.book.results import HEADLINE, headline_table, result_value
from salience_lib.book.recipes import RECIPES, comparison_table, smallest_p_value, summarise_recipes
from salience_lib.book.style import (
    MAP_CMAP,
    MASK_COLOR,
    PALETTE,
    RECIPE_COLORS,
    RECIPE_LABELS,
    recipe_color,
    use_style,
)
from salience_lib.book.widgets import FrameViewer, frame_dropdown, frame_slider

__all__ = [
    "HEADLINE",
    "headline_table",
    "result_value",
    "MAP_CMAP",
    "MASK_COLOR",
    "PALETTE",
    "PNG_SIGNATURE",
    "RECIPES",
    "RECIPE_COLORS",
    "RECIPE_LABELS",
    "FrameViewer",
    "compare_recipes",
    "comparison_table",
    "frame_dropdown",
    "frame_slider",
    "gallery",
    "glue_numbers",
    "glue_summary",
    "load_runs",
    "outline_mask",
    "overlay_map",
    "plot_ci_bands",
    "plot_recipe_means",
    "plot_similarity_matrix",
    "recipe_color",
    "runs_by_recipe",
    "seeded_picks",
    "show_image",
    "smallest_p_value",
    "summarise_recipes",
    "summary_numbers",
    "to_image_array",
    "to_png",
    "use_style",
]
