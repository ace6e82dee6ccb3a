from types import SimpleNamespace

import numpy as np
import pytest
import torch

from salience_lib.book import curves
from salience_lib.measures.out_of_set import similarity_to_mean_map


def _curve(offset: float) -> SimpleNamespace:
    """A perturbation curve of 4 images at severities 0, 0.5, 1."""
    similarity = torch.tensor([[1.0, 0.8, 0.6]] * 4) - offset
    probability = torch.tensor([[0.9, 0.6, 0.4], [0.9, 0.7, 0.6], [0.8, 0.3, 0.2], [0.8, 0.8, 0.7]])
    return SimpleNamespace(
        severities=torch.tensor([0.0, 0.5, 1.0]),
        similarity=similarity,
        probability=probability,
        probability_change=probability - probability[:, :1],
    )


def _curves() -> tuple[dict, dict]:
    found = {("x0", "blur"): _curve(0.0), ("x1", "blur"): _curve(0.1)}
    found |= {("c0", "blur"): _curve(0.2), ("c1", "blur"): _curve(0.3)}
    found |= {(name, "noise"): _curve(0.05) for name in ("x0", "x1", "c0", "c1")}
    return found, {"x0": "xent", "x1": "xent", "c0": "cyborg", "c1": "cyborg"}


def test_curve_table_one_row_per_model_family_and_severity_with_image_means():
    found, recipes = _curves()
    table = curves.curve_table(found, recipes)
    assert len(table) == 8 * 3
    row = table[(table["run"] == "x1") & (table["family"] == "blur") & (table["severity"] == 0.5)].iloc[0]
    assert row["recipe"] == "xent" and row["similarity"] == pytest.approx(0.7)
    assert row["probability change"] == pytest.approx(np.mean([-0.3, -0.2, -0.5, 0.0]))
    with pytest.raises(KeyError, match="no recipe for run 'x0'"):
        curves.curve_table(found, {})


def test_plot_curve_grid_one_panel_per_family_and_quantity():
    found, recipes = _curves()
    table = curves.curve_table(found, recipes)
    _, axes = curves.plot_curve_grid(
        table,
        {"blur": "σ (px)", "noise": "noise σ"},
        {"similarity": "SSIM", "probability change": "Δp"},
        ylims={"similarity": (0, 1.02)},
        symlog={"noise": 0.1},
    )
    assert axes.shape == (2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["blur", "noise"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["SSIM", "Δp"] and axes[0, 1].get_ylabel() == ""
    assert axes[0, 0].get_ylim() == (0, 1.02) and axes[1, 1].get_xscale() == "symlog"
    xent_mean = axes[0, 0].get_lines()[0].get_ydata()
    assert np.allclose(xent_mean, [0.95, 0.75, 0.55]), "the mean over the recipe's two models"
    assert [t.get_text() for t in axes[0, 0].get_legend().get_texts()] == ["XENT", "CYBORG"]
    with pytest.raises(ValueError, match="'blur' has no curves of recipe"):
        curves.plot_curve_grid(table[table["recipe"] == "xent"], {"blur": "x"}, {"similarity": "y"})


def test_curve_means_by_label_splits_by_the_true_label():
    found, recipes = _curves()
    labels = torch.tensor([0, 0, 1, 1])
    table = curves.curve_means_by_label(found, recipes, labels)
    real = table.loc[("blur", "real", "xent")]
    assert real["mean Δp (over severities > 0)"] == pytest.approx(np.mean([-0.3, -0.5, -0.2, -0.3]))
    assert real["flipped (over severities > 0)"] == pytest.approx(0.25), "one of four values below 0.5"
    assert table.loc[("blur", "synthetic", "cyborg"), "flipped (over severities > 0)"] == pytest.approx(0.5)


class _Explainer:
    def __init__(self):
        self.calls = []

    def __call__(self, images):
        self.calls.append(len(images))
        return images.mean(1)


def test_mean_map_streams_every_image_in_batches():
    images = torch.rand(10, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    explain = _Explainer()
    mean = curves.mean_map(explain, images, batch_size=4)
    assert explain.calls == [4, 4, 2]
    assert torch.allclose(mean.float(), images.mean(1).mean(0), atol=1e-6)
    assert torch.allclose(curves.mean_map(_Explainer(), images, batch_size=64).float(), mean.float(), atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        curves.mean_map(_Explainer(), images, batch_size=0)


def test_shift_numbers_similarity_entropy_and_all_zero_share():
    maps = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(2))
    maps[3] = 0
    reference = maps[:3].mean(0)
    numbers = curves.shift_numbers(maps, reference, "seen")
    assert list(numbers) == ["similarity to mean map: seen", "spatial entropy: seen", "all-zero maps: seen"]
    assert numbers["all-zero maps: seen"] == 0.25
    assert numbers["similarity to mean map: seen"] == pytest.approx(
        float(similarity_to_mean_map(maps, reference).mean())
    )
    assert 0 < numbers["spatial entropy: seen"] <= 1
