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
- :mod:`~salience_lib.book.chapters`: run selection and loading, seeded subsets, batched maps, and
  gluing numbers into the prose;
- :mod:`~salience_lib.book.panels`: whole figures the chapters repeat (recipes compared over several
  metrics, rows of maps over the same images);
- :mod:`~salience_lib.book.frames`: the frames of the measure chapters' browsers;
- :mod:`~salience_lib.book.examples`: hand-made maps with known answers;
- :mod:`~salience_lib.book.runs`: the trained runs as tables and figures (models chapter);
- :mod:`~salience_lib.book.faces`: examples of a data set and its shortcut cue (data chapter);
- :mod:`~salience_lib.book.blur`: the single-pass degradation protocol (degradation chapter);
- :mod:`~salience_lib.book.curves`: perturbation curves and mean maps (out-of-set chapter);
- :mod:`~salience_lib.book.seeds`: comparing the models of a recipe across seeds (stability chapter);
- :mod:`~salience_lib.book.sanity`: cascading model randomisation, the sanity check of the measures
  (sanity chapter);
- :mod:`~salience_lib.book.explorer`: the live explorer of the measures, for a Jupyter kernel;
- :mod:`~salience_lib.book.landing`: the landing page's figure (XENT and CYBORG maps of the same faces).

Importing the package has no side effects: matplotlib's style changes only when a chapter calls
:func:`use_style`, and no widget exists until a function makes one.
"""

from salience_lib.book.blur import CONDITIONS, blur_pipeline, blur_sigmas, effect_means, plot_blur_schedule, single_pass
from salience_lib.book.chapters import (
    explain_all,
    glue_cells,
    glue_numbers,
    glue_summary,
    group_means,
    in_batches,
    load_runs,
    picks_per_group,
    runs_by_recipe,
    seeded_picks,
    summary_numbers,
)
from salience_lib.book.curves import curve_means_by_label, curve_table, mean_map, plot_curve_grid, shift_numbers
from salience_lib.book.examples import gaussian_blob, hand_made_maps, plot_against_formula, show_maps
from salience_lib.book.explorer import MEASURES, METHODS, Explorer, explore
from salience_lib.book.faces import cue_difference, dataset_examples, shortcut_figure
from salience_lib.book.figures import (
    PNG_SIGNATURE,
    gallery,
    outline_mask,
    overlay_map,
    show_image,
    to_image_array,
    to_png,
)
from salience_lib.book.frames import (
    clean_prediction_probability,
    consistency_frame,
    degradation_frame,
    deletion_frames,
    perturbation_frame,
)
from salience_lib.book.landing import recipe_maps_figure
from salience_lib.book.own_data import fine_tune_plain, write_cyborg_folder
from salience_lib.book.panels import compare_recipe_panels, image_and_maps, map_grid, recipe_means_panels, recipe_values
from salience_lib.book.plots import (
    compare_recipes,
    plot_ci_bands,
    plot_recipe_histograms,
    plot_recipe_means,
    plot_recipe_scatter,
    plot_similarity_matrix,
)
from salience_lib.book.recipes import RECIPES, comparison_table, smallest_p_value, summarise_recipes
from salience_lib.book.results import HEADLINE, headline_table, result_value
from salience_lib.book.runs import (
    architecture_table,
    called_synthetic,
    plot_called_synthetic,
    plot_histories,
    runs_overview,
)
from salience_lib.book.sanity import (
    NORM_LAYERS,
    cascade_stability,
    cascading_randomisation,
    first_departure,
    map_similarity_frame,
    plot_sanity,
    randomisation_layers,
    sanity_frame,
    similarity_to_trained,
    spearman,
    upsample_maps,
)
from salience_lib.book.seeds import (
    plot_shift_similarity,
    plot_ssim_windows,
    seed_grid,
    shifted_blob_similarity,
    stability_by_recipe,
    subset_stability,
)
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
    "CONDITIONS",
    "HEADLINE",
    "MAP_CMAP",
    "MASK_COLOR",
    "MEASURES",
    "METHODS",
    "NORM_LAYERS",
    "PALETTE",
    "PNG_SIGNATURE",
    "RECIPES",
    "RECIPE_COLORS",
    "RECIPE_LABELS",
    "Explorer",
    "FrameViewer",
    "architecture_table",
    "blur_pipeline",
    "blur_sigmas",
    "called_synthetic",
    "cascade_stability",
    "cascading_randomisation",
    "clean_prediction_probability",
    "compare_recipe_panels",
    "compare_recipes",
    "comparison_table",
    "consistency_frame",
    "cue_difference",
    "curve_means_by_label",
    "curve_table",
    "dataset_examples",
    "degradation_frame",
    "deletion_frames",
    "effect_means",
    "explain_all",
    "explore",
    "fine_tune_plain",
    "first_departure",
    "frame_dropdown",
    "frame_slider",
    "gallery",
    "gaussian_blob",
    "glue_cells",
    "glue_numbers",
    "glue_summary",
    "group_means",
    "hand_made_maps",
    "headline_table",
    "image_and_maps",
    "in_batches",
    "load_runs",
    "map_grid",
    "map_similarity_frame",
    "mean_map",
    "outline_mask",
    "overlay_map",
    "perturbation_frame",
    "picks_per_group",
    "plot_against_formula",
    "plot_blur_schedule",
    "plot_called_synthetic",
    "plot_ci_bands",
    "plot_curve_grid",
    "plot_histories",
    "plot_recipe_histograms",
    "plot_recipe_means",
    "plot_recipe_scatter",
    "plot_sanity",
    "plot_shift_similarity",
    "plot_similarity_matrix",
    "plot_ssim_windows",
    "randomisation_layers",
    "recipe_color",
    "recipe_maps_figure",
    "recipe_means_panels",
    "recipe_values",
    "result_value",
    "runs_by_recipe",
    "runs_overview",
    "sanity_frame",
    "seed_grid",
    "seeded_picks",
    "shift_numbers",
    "shifted_blob_similarity",
    "shortcut_figure",
    "show_image",
    "show_maps",
    "similarity_to_trained",
    "single_pass",
    "smallest_p_value",
    "spearman",
    "stability_by_recipe",
    "subset_stability",
    "summarise_recipes",
    "summary_numbers",
    "to_image_array",
    "to_png",
    "upsample_maps",
    "use_style",
    "write_cyborg_folder",
]
