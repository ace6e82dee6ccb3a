import matplotlib as mpl
import numpy as np
import pytest
import torch

from salience_lib.book import panels
from salience_lib.book.recipes import summarise_recipes
from salience_lib.book.style import RECIPE_COLORS


def _summary() -> dict:
    models = {f"x{i}": {"loss": "xent", "acc": 0.1 * i, "auc": 0.5 + 0.01 * i} for i in range(5)}
    models |= {f"c{i}": {"loss": "cyborg", "acc": 1 + 0.1 * i, "auc": 0.55 + 0.01 * i} for i in range(5)}
    return summarise_recipes(models)


def test_recipe_values_picks_each_recipes_values_and_names_what_is_missing():
    summary = _summary()
    values = panels.recipe_values(summary, "acc")
    assert list(values) == ["xent", "cyborg"]
    assert np.allclose(values["cyborg"], [1.0, 1.1, 1.2, 1.3, 1.4])
    with pytest.raises(KeyError, match="no metric 'f1'"):
        panels.recipe_values(summary, "f1")
    with pytest.raises(KeyError, match="other"):
        panels.recipe_values(summary, "acc", ("xent", "other"))


def test_compare_recipe_panels_one_panel_per_metric_with_p_and_baseline():
    summary = _summary()
    p = summary["acc"]["mann_whitney"]["p"]
    fig, axes = panels.compare_recipe_panels(
        summary,
        [("acc", "accuracy", "acc"), ("auc", "AUC", "{p} is p"), ("auc", "AUC", "")],
        baselines={"acc": 0.5},
        baseline_label="between",
    )
    assert len(axes) == 3 and len(fig.axes) == 3
    assert axes[0].get_title() == f"acc (p = {p:.3f})"
    assert axes[1].get_title() == f"{summary['auc']['mann_whitney']['p']:.3f} is p"
    assert axes[2].get_title().startswith("Mann–Whitney p = ")
    assert [ax.get_ylabel() for ax in axes] == ["accuracy", "AUC", "AUC"]
    assert all(ax.get_xlabel() == "recipe" for ax in axes)
    dashed = [line for line in axes[0].get_lines() if line.get_label() == "between"]
    assert len(dashed) == 1 and tuple(dashed[0].get_ydata()) == (0.5, 0.5)
    assert not [line for line in axes[1].get_lines() if line.get_label() == "between"]
    with pytest.raises(ValueError, match="empty"):
        panels.compare_recipe_panels(summary, [])


def test_recipe_means_panels_draws_each_groups_metrics_with_labels_and_a_legend():
    summary = _summary()
    _, axes = panels.recipe_means_panels(
        summary, [(["acc", "auc"], ["A", "B"], "metric", "value", "both"), (["auc"], ["B"], "x", "y", "one")]
    )
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["A", "B"]
    assert (axes[1].get_xlabel(), axes[1].get_ylabel(), axes[1].get_title()) == ("x", "y", "one")
    legend = axes[0].get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["XENT", "CYBORG"]
    assert axes[1].get_legend() is None
    with pytest.raises(ValueError, match="empty"):
        panels.recipe_means_panels(summary, [])


def _images(n: int) -> list[torch.Tensor]:
    return [torch.full((3, 8, 8), 0.1 * (i + 1)) for i in range(n)]


def test_map_grid_shows_the_images_in_every_row_with_maps_masks_and_titles():
    images = _images(3)
    maps = [torch.ones(8, 8)] * 3
    mask = torch.zeros(8, 8)
    mask[2:5, 2:5] = 1
    fig = panels.map_grid(
        images,
        {"image": None, "outlined": None, "XENT": maps},
        masks=[mask] * 3,
        mask_rows=["outlined"],
        titles=["a", "b", "c"],
        row_titles={"XENT": ["h 1", "h 2", "h 3"]},
    )
    axes = np.array(fig.axes).reshape(3, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["image", "outlined", "XENT"]
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    assert [ax.get_title() for ax in axes[1]] == ["", "", ""]
    assert [ax.get_title() for ax in axes[2]] == ["h 1", "h 2", "h 3"]
    assert all(len(ax.collections) == 0 for ax in axes[0]), "no outline on the plain row"
    assert all(len(ax.collections) > 0 for ax in axes[1]), "the masks are outlined on the named row"
    plain = axes[0, 0].get_images()[0].get_array()
    overlaid = axes[2, 0].get_images()[0].get_array()
    assert np.allclose(plain, 0.1) and not np.allclose(overlaid, plain), "the map is blended over the image"


def test_map_grid_outlines_the_first_row_by_default_and_refuses_bad_lengths():
    mask = torch.zeros(8, 8)
    mask[1:4, 1:4] = 1
    fig = panels.map_grid(_images(2), {"image": None, "map": None}, masks=[mask, mask])
    axes = np.array(fig.axes).reshape(2, 2)
    assert all(len(ax.collections) > 0 for ax in axes[0]) and all(len(ax.collections) == 0 for ax in axes[1])
    with pytest.raises(ValueError, match=r"`rows\['map'\]` has 1 entries for 2 images"):
        panels.map_grid(_images(2), {"image": None, "map": [torch.ones(8, 8)]})
    with pytest.raises(ValueError, match="no row named"):
        panels.map_grid(_images(2), {"image": None}, mask_rows=["other"])
    with pytest.raises(ValueError, match="empty"):
        panels.map_grid([], {"image": None})


def test_image_and_maps_one_panel_per_map_and_a_wider_free_panel():
    image = _images(1)[0]
    _, axes = panels.image_and_maps(
        image, {"XENT": torch.ones(4, 4), "CYBORG": torch.zeros(4, 4)}, title="real", extra_width=1.5
    )
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes[:3]] == ["real", "XENT", "CYBORG"]
    assert axes[3].get_images() == [] and axes[3].get_title() == "", "the extra panel is left to the caller"
    widths = [ax.get_position().width for ax in axes]
    assert widths[3] == pytest.approx(1.5 * widths[0], rel=0.05)
    _, axes = panels.image_and_maps(image, {"m": torch.ones(4, 4)})
    assert len(axes) == 2
    with pytest.raises(ValueError, match="extra_width"):
        panels.image_and_maps(image, {}, extra_width=0)


def test_compare_recipe_panels_uses_the_recipe_colours():
    _, axes = panels.compare_recipe_panels(_summary(), [("acc", "accuracy", "")])
    colours = {mpl.colors.to_hex(c.get_facecolor()[0]).upper() for c in axes[0].collections if len(c.get_facecolor())}
    assert {RECIPE_COLORS["xent"].upper(), RECIPE_COLORS["cyborg"].upper()} <= colours
