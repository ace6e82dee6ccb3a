import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from salience_lib.book import recipes
from salience_lib.book.style import RECIPE_COLORS
from salience_lib.stats import Summary, summarise


@pytest.fixture
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


def _hex(colour) -> str:
    return mpl.colors.to_hex(colour).upper()


def _models() -> dict[str, dict]:
    """Five XENT models with acc 0.0-0.4, five CYBORG with 1.0-1.4: every CYBORG value is higher."""
    models = {f"x{i}": {"loss": "xent", "seed": i, "acc": 0.1 * i} for i in range(5)}
    models |= {f"c{i}": {"loss": "cyborg", "seed": i, "acc": 1 + 0.1 * i} for i in range(5)}
    return models


def test_summarise_recipes_tests_xent_against_cyborg():
    summary = recipes.summarise_recipes(_models())
    assert list(summary) == ["acc"], "only float values are metrics (the int seed is not)"
    assert summary["acc"]["mann_whitney"]["p"] == pytest.approx(2 / 252)
    assert summary["acc"]["xent"]["mean"] == pytest.approx(0.2)
    assert summary["acc"]["xent"]["values"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    table = recipes.comparison_table(summary)
    assert list(table.index) == ["acc"]
    assert table.loc["acc", "cyborg mean"] == pytest.approx(1.2)
    assert table.loc["acc", "Mann–Whitney p"] == pytest.approx(2 / 252)
    low, high = summary["acc"]["cyborg"]["ci_low"], summary["acc"]["cyborg"]["ci_high"]
    assert table.loc["acc", "cyborg 95% CI"] == f"[{low:.3f}, {high:.3f}]"


def test_summarise_recipes_without_a_pair_has_no_test():
    models = {"x0": {"loss": "xent", "acc": 0.5}, "c0": {"loss": "cyborg", "acc": 0.7}, "c1": {"loss": "cyborg"}}
    summary = recipes.summarise_recipes(models)
    assert "mann_whitney" not in summary["acc"], "one XENT value: no test"
    assert summary["acc"]["cyborg"]["n"] == 1, "a model without the metric is skipped"
    table = recipes.comparison_table(summary, ["acc"], recipes=("cyborg",))
    assert list(table.columns) == ["cyborg mean", "cyborg 95% CI", "Mann–Whitney p"]
    assert table.loc["acc", "Mann–Whitney p"] is None


def test_smallest_p_value():
    assert recipes.smallest_p_value(5, 5) == pytest.approx(2 / 252)
    assert recipes.smallest_p_value(10, 10) < recipes.smallest_p_value(5, 5)
    with pytest.raises(ValueError, match="n_a"):
        recipes.smallest_p_value(0, 5)


def test_compare_recipes_uses_recipe_colours(ax):
    values = {"xent": [0.7, 0.72, 0.75, 0.71, 0.74], "cyborg": torch.tensor([0.6, 0.62, 0.61, 0.65, 0.6])}
    summaries = recipes.compare_recipes(ax, values, "entropy")
    assert set(summaries) == {"xent", "cyborg"} and all(isinstance(s, Summary) for s in summaries.values())
    assert summaries["xent"].n == 5 and summaries["xent"].ci_low <= 0.726 <= summaries["xent"].ci_high
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 5]
    colours = [_hex(c.get_facecolor()[0]) for c in dots]
    assert colours == [RECIPE_COLORS["xent"], RECIPE_COLORS["cyborg"]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["XENT", "CYBORG"]
    assert ax.get_ylabel() == "entropy"
    with pytest.raises(ValueError, match="empty"):
        recipes.compare_recipes(ax, {}, "y")


def test_plot_recipe_means_draws_each_recipe_mean_and_ci(ax):
    models = _models()
    for i, model in enumerate(models.values()):
        model["auc"] = 0.5 + 0.01 * i
    summary = recipes.summarise_recipes(models)
    positions = recipes.plot_recipe_means(ax, summary, ["acc", "auc"], ["accuracy", "AUC"], spread=0.3)
    assert positions.tolist() == [0.0, 1.0]
    lines = ax.get_lines()
    markers = [line for line in lines if line.get_marker() == "o"]
    assert [_hex(line.get_color()) for line in markers] == [RECIPE_COLORS["xent"], RECIPE_COLORS["cyborg"]]
    assert markers[0].get_xdata() == pytest.approx([-0.15, 0.85])
    assert markers[1].get_xdata() == pytest.approx([0.15, 1.15])
    assert markers[1].get_ydata() == pytest.approx([summary["acc"]["cyborg"]["mean"], summary["auc"]["cyborg"]["mean"]])
    # the error bar of XENT at "acc" spans its CI
    bars = ax.containers[0].lines[2][0].get_segments()
    assert bars[0][:, 1] == pytest.approx([summary["acc"]["xent"]["ci_low"], summary["acc"]["xent"]["ci_high"]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["accuracy", "AUC"]
    assert ax.get_legend_handles_labels()[1] == ["XENT", "CYBORG"]
    with pytest.raises(ValueError, match="ticks"):
        recipes.plot_recipe_means(ax, summary, ["acc"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        recipes.plot_recipe_means(ax, summary, [])
    with pytest.raises(ValueError, match="recipe"):
        recipes.plot_recipe_means(ax, recipes.summarise_recipes({"x": {"loss": "xent", "acc": 1.0}}), ["acc"])


def test_plot_ci_bands_mean_line_and_band_over_models(ax):
    x = [0.0, 0.5, 1.0]
    curves = {
        "xent": np.array([[1.0, 0.6, 0.2], [0.8, 0.5, 0.1], [0.9, 0.4, 0.3]]),
        "cyborg": torch.tensor([[1.0, 0.9, 0.8], [0.9, 0.8, 0.7]]),
    }
    out = recipes.plot_ci_bands(ax, x, curves, label="{recipe}, Grad-CAM", linestyle="--")
    assert set(out) == {"xent", "cyborg"} and len(out["xent"]) == 3
    expected = summarise([0.6, 0.5, 0.4])
    assert out["xent"][1].mean == pytest.approx(expected.mean)
    assert (out["xent"][1].ci_low, out["xent"][1].ci_high) == pytest.approx((expected.ci_low, expected.ci_high))
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["XENT, Grad-CAM", "CYBORG, Grad-CAM"]
    assert lines[0].get_linestyle() == "--"
    assert lines[1].get_ydata() == pytest.approx([0.95, 0.85, 0.75])
    assert [_hex(line.get_color()) for line in lines] == [RECIPE_COLORS["xent"], RECIPE_COLORS["cyborg"]]
    assert len(ax.collections) == 2, "one band per recipe"
    with pytest.raises(ValueError, match="models"):
        recipes.plot_ci_bands(ax, x, {"xent": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="empty"):
        recipes.plot_ci_bands(ax, x, {})


def test_plot_similarity_matrix_writes_values_and_marks_recipe_blocks(ax):
    matrix = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.2], [0.3, 0.2, 1.0]])
    labels, owners = ["X s0", "X s1", "C s0"], ["xent", "xent", "cyborg"]
    image = recipes.plot_similarity_matrix(ax, torch.tensor(matrix), labels, owners)
    assert np.array_equal(image.get_array(), matrix)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t for t in ax.texts}
    assert len(texts) == 9 and texts[0, 1].get_text() == "0.80" and texts[2, 0].get_text() == "0.30"
    assert _hex(texts[0, 0].get_color()) == "#000000" and _hex(texts[1, 2].get_color()) == "#FFFFFF"
    separators = [line for line in ax.get_lines() if line.get_color() == "white"]
    assert len(separators) == 2, "one horizontal and one vertical line between the XENT and the CYBORG block"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["X s0", "X s1", "C s0"]
    colours = [_hex(t.get_color()) for t in ax.get_xticklabels()]
    assert colours == [RECIPE_COLORS["xent"]] * 2 + [RECIPE_COLORS["cyborg"]]
    with pytest.raises(ValueError, match="square"):
        recipes.plot_similarity_matrix(ax, np.zeros((2, 3)), ["a", "b"], ["xent", "xent"])
    with pytest.raises(ValueError, match="labels"):
        recipes.plot_similarity_matrix(ax, np.zeros((2, 2)), ["a"], ["xent", "xent"])
