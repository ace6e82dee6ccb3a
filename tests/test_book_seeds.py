import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from salience_lib.book import seeds
from salience_lib.similarity import pearson, ssim


def _matrix() -> torch.Tensor:
    """Five models (rows 0–2 of one recipe, 3–4 of another) with known pair means."""
    m = torch.tensor(
        [
            [1.0, 0.8, 0.6, 0.1, 0.2],
            [0.8, 1.0, 0.4, 0.3, 0.1],
            [0.6, 0.4, 1.0, 0.2, 0.2],
            [0.1, 0.3, 0.2, 1.0, 0.9],
            [0.2, 0.1, 0.2, 0.9, 1.0],
        ]
    )
    return m


def test_stability_by_recipe_off_diagonal_row_means_and_the_between_block_mean():
    within, between = seeds.stability_by_recipe(_matrix(), {"xent": [0, 1, 2], "cyborg": [3, 4]})
    assert within["xent"].tolist() == pytest.approx([0.7, 0.6, 0.5])
    assert within["cyborg"].tolist() == pytest.approx([0.9, 0.9])
    assert between == pytest.approx(np.mean([0.1, 0.2, 0.3, 0.1, 0.2, 0.2]))
    assert np.isnan(seeds.stability_by_recipe(_matrix(), {"xent": [0, 1]})[1]), "one recipe has no between pairs"
    with pytest.raises(ValueError, match="outside the 5×5 matrix"):
        seeds.stability_by_recipe(_matrix(), {"xent": [0, 7]})
    with pytest.raises(ValueError, match="K×K matrix with K >= 2"):
        seeds.stability_by_recipe(_matrix(), {"xent": [0]})
    with pytest.raises(ValueError, match=r"\(K, K\)"):
        seeds.stability_by_recipe(torch.ones(2, 3), {"xent": [0, 1]})


def test_subset_stability_is_the_mean_off_diagonal_value_of_every_subset():
    m = _matrix()
    values = seeds.subset_stability(m, [0, 1, 2], 2)
    assert values == pytest.approx([0.8, 0.6, 0.4]), "pairs (0,1), (0,2), (1,2)"
    trio = seeds.subset_stability(m, [0, 1, 2, 3], 3)
    expected = [
        float(np.mean([m[i, j] for i, j in itertools.combinations(subset, 2)]))
        for subset in itertools.combinations([0, 1, 2, 3], 3)
    ]
    assert trio == pytest.approx(expected)
    with pytest.raises(ValueError, match="size"):
        seeds.subset_stability(m, [0, 1], 3)


def test_seed_grid_one_row_per_image_and_recipe_with_every_models_map():
    images = [torch.full((3, 8, 8), 0.2), torch.full((3, 8, 8), 0.6)]
    maps = {"xent": torch.rand(3, 2, 4, 4), "cyborg": torch.rand(3, 2, 4, 4)}
    names = {"xent": ["XENT s0", "XENT s1", "XENT s2"], "cyborg": ["CYBORG s0", "CYBORG s1", "CYBORG s2"]}
    mask = torch.zeros(8, 8)
    mask[2:5, 2:5] = 1
    fig = seeds.seed_grid(images, maps, names, masks=[mask, mask], notes={"xent": ["a", "b"], "cyborg": ["c", "d"]})
    axes = np.array(fig.axes).reshape(4, 4)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["XENT", "CYBORG", "XENT", "CYBORG"]
    assert [ax.get_title() for ax in axes[0]] == ["a", "XENT s0", "XENT s1", "XENT s2"]
    assert [ax.get_title() for ax in axes[3]] == ["d", "CYBORG s0", "CYBORG s1", "CYBORG s2"]
    assert all(len(ax.collections) > 0 for ax in axes[:, 0]) and all(len(ax.collections) == 0 for ax in axes[0, 1:])
    with pytest.raises(ValueError, match="same number of models"):
        seeds.seed_grid(images, {"xent": maps["xent"], "cyborg": maps["cyborg"][:2]}, names)
    with pytest.raises(ValueError, match="one map per image"):
        seeds.seed_grid(images[:1], maps, names)


def test_shifted_blob_similarity_is_one_without_a_shift_and_falls_with_it():
    curves = seeds.shifted_blob_similarity({"ssim": (ssim, None), "ssim up": (ssim, 32), "pearson": (pearson, None)})
    for values in curves.values():
        assert float(values[0]) == pytest.approx(1.0, abs=1e-5)
        assert (values[1:] < values[:-1]).all(), "similarity falls as the blob moves away"
    assert float(curves["ssim up"][1]) < float(curves["ssim"][1]), "upsampled SSIM punishes one pixel more"


def test_plot_shift_similarity_draws_each_curve_and_plot_ssim_windows_every_position():
    _, (left, right) = plt.subplots(1, 2)
    curves = seeds.plot_shift_similarity(right, {"a": (ssim, None), "b": (pearson, None)}, shifts=range(3))
    assert [line.get_label() for line in right.get_lines()] == ["a", "b"]
    assert np.allclose(right.get_lines()[1].get_ydata(), curves["b"].numpy())
    seeds.plot_ssim_windows(left, torch.rand(8, 8))
    assert len(left.patches) == 4, "a 7×7 window fits an 8×8 map at 2 × 2 positions"
    _, ax = plt.subplots()
    seeds.plot_ssim_windows(ax, torch.rand(9, 10), window=7)
    assert len(ax.patches) == 3 * 4
    with pytest.raises(ValueError, match="side >= 7"):
        seeds.plot_ssim_windows(ax, torch.rand(6, 6))
