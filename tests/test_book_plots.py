import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from salience_lib.book import plots
from salience_lib.book.recipes import summarise_recipes
from salience_lib.book.style import RECIPE_COLORS
from salience_lib.stats import Summary, summarise


@pytest.fixture
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


def _hex(colour) -> str:
    return mpl.colors.to_hex(colour).upper()


def _summary() -> dict:
    """Five XENT and five CYBORG models with metrics ``acc`` and ``auc``."""
    models = {f"x{i}": {"loss": "xent", "acc": 0.1 * i, "auc": 0.5 + 0.01 * i} for i in range(5)}
    models |= {f"c{i}": {"loss": "cyborg", "acc": 1 + 0.1 * i, "auc": 0.55 + 0.01 * i} for i in range(5)}
    return summarise_recipes(models)


def test_compare_recipes_uses_recipe_colours(ax):
    values = {"xent": [0.7, 0.72, 0.75, 0.71, 0.74], "cyborg": torch.tensor([0.6, 0.62, 0.61, 0.65, 0.6])}
    summaries = plots.compare_recipes(ax, values, "entropy")
    assert set(summaries) == {"xent", "cyborg"} and all(isinstance(s, Summary) for s in summaries.values())
    assert summaries["xent"].n == 5 and summaries["xent"].ci_low <= 0.726 <= summaries["xent"].ci_high
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 5]
    colours = [_hex(c.get_facecolor()[0]) for c in dots]
    assert colours == [RECIPE_COLORS["xent"], RECIPE_COLORS["cyborg"]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["XENT", "CYBORG"]
    assert ax.get_ylabel() == "entropy"
    with pytest.raises(ValueError, match="empty"):
        plots.compare_recipes(ax, {}, "y")


def test_plot_recipe_means_draws_each_recipe_mean_and_ci(ax):
    summary = _summary()
    positions = plots.plot_recipe_means(ax, summary, ["acc", "auc"], ["accuracy", "AUC"], spread=0.3)
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
        plots.plot_recipe_means(ax, summary, ["acc"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        plots.plot_recipe_means(ax, summary, [])
    with pytest.raises(ValueError, match="recipe"):
        plots.plot_recipe_means(ax, summarise_recipes({"x": {"loss": "xent", "acc": 1.0}}), ["acc"])


def test_plot_ci_bands_mean_line_and_band_over_models(ax):
    x = [0.0, 0.5, 1.0]
    curves = {
        "xent": np.array([[1.0, 0.6, 0.2], [0.8, 0.5, 0.1], [0.9, 0.4, 0.3]]),
        "cyborg": torch.tensor([[1.0, 0.9, 0.8], [0.9, 0.8, 0.7]]),
    }
    out = plots.plot_ci_bands(ax, x, curves, label="{recipe}, Grad-CAM", linestyle="--")
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
        plots.plot_ci_bands(ax, x, {"xent": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="empty"):
        plots.plot_ci_bands(ax, x, {})


def test_plot_similarity_matrix_writes_values_and_marks_recipe_blocks(ax):
    matrix = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.2], [0.3, 0.2, 1.0]])
    labels, owners = ["X s0", "X s1", "C s0"], ["xent", "xent", "cyborg"]
    image = plots.plot_similarity_matrix(ax, torch.tensor(matrix), labels, owners)
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
        plots.plot_similarity_matrix(ax, np.zeros((2, 3)), ["a", "b"], ["xent", "xent"])
    with pytest.raises(ValueError, match="labels"):
        plots.plot_similarity_matrix(ax, np.zeros((2, 2)), ["a"], ["xent", "xent"])


def test_plot_ci_bands_accepts_read_only_arrays_without_warning(ax, recwarn):
    rows = np.array([[1.0, 0.5], [0.8, 0.4]])
    rows.setflags(write=False)  # what pandas' to_numpy() returns under copy-on-write
    plots.plot_ci_bands(ax, [0, 1], {"xent": rows})
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_plot_recipe_histograms_one_histogram_per_recipe_over_shared_bins(ax):
    plots.plot_recipe_histograms(ax, {"xent": [0.1, 0.1, 0.9], "cyborg": torch.tensor([0.5])}, bins=10, range=(0, 1))
    assert [p.get_label() for p in ax.patches] == ["XENT", "CYBORG"]
    assert _hex(ax.patches[0].get_edgecolor()) == RECIPE_COLORS["xent"].upper()
    heights = ax.patches[0].get_xy()[:, 1]
    assert heights.max() == 2, "two of the three XENT values share a bin"
    fig, other = plt.subplots()
    plots.plot_recipe_histograms(other, {"xent": [0.1, 0.2]}, bins=2, range=(0, 1), density=True, filled=True)
    assert other.patches[0].get_xy()[:, 1].max() == pytest.approx(2.0), "density: unit area over bins of width 0.5"
    assert other.patches[0].get_fill()
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plots.plot_recipe_histograms(ax, {})


def test_plot_recipe_scatter_returns_each_recipes_correlation(ax):
    x = {"xent": [0.0, 1.0, 2.0], "cyborg": np.array([0.0, 1.0, 2.0])}
    y = {"xent": [0.0, 2.0, 4.0], "cyborg": np.array([2.0, 1.0, 0.0])}
    r = plots.plot_recipe_scatter(ax, x, y)
    assert r == pytest.approx({"xent": 1.0, "cyborg": -1.0})
    assert [c.get_label() for c in ax.collections] == ["XENT (r = 1.00)", "CYBORG (r = -1.00)"]
    assert np.isnan(plots.plot_recipe_scatter(ax, {"xent": [1.0, 1.0]}, {"xent": [0.0, 1.0]})["xent"])
    with pytest.raises(ValueError, match="same recipes"):
        plots.plot_recipe_scatter(ax, {"xent": [1, 2]}, {"cyborg": [1, 2]})
    with pytest.raises(ValueError, match="equally long"):
        plots.plot_recipe_scatter(ax, {"xent": [1, 2, 3]}, {"xent": [1, 2]})
