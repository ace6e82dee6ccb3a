import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from salience_lib.book import examples
from salience_lib.measures.entropy import salience_entropy


def test_gaussian_blob_peaks_at_its_centre_with_the_given_width():
    blob = examples.gaussian_blob(9, (4.0, 2.0), 1.5)
    assert blob.shape == (9, 9) and blob.dtype == torch.float32
    assert blob[4, 2] == 1.0 and blob.argmax() == 4 * 9 + 2
    assert blob[4, 3] == pytest.approx(np.exp(-1 / (2 * 1.5**2)))
    assert torch.allclose(blob[4 - 2], blob[4 + 2]), "symmetric about the centre row"
    with pytest.raises(ValueError, match="sigma"):
        examples.gaussian_blob(9, (4.0, 4.0), 0)


def test_hand_made_maps_are_normalised_and_rank_as_the_chapter_says():
    names, native, upsampled = examples.hand_made_maps(8, 32, seed=0)
    assert names == ["one hot pixel", "small blob", "wide blob", "two flat halves", "ramp", "noise", "uniform"]
    assert native.shape == (7, 8, 8) and upsampled.shape == (7, 32, 32)
    assert native.amin((1, 2))[:-1].eq(0).all() and native.amax((1, 2)).eq(1).all()
    assert native[-1].eq(1).all() and upsampled[-1].eq(1).all(), "the uniform map stays at 1"
    assert native[0].sum() == 1 and native[0, 3, 4] == 1
    assert float(upsampled.min()) >= 0 and float(upsampled.max()) <= 1
    spatial = salience_entropy(native, "spatial")
    assert spatial[0] == 0 and spatial[-1] == pytest.approx(1.0), "one pixel is most, a uniform map least focused"
    assert spatial[1] < spatial[2], "the small blob is more focused than the wide one"
    assert torch.equal(examples.hand_made_maps(8, 32, seed=0)[1], native)
    assert not torch.equal(examples.hand_made_maps(8, 32, seed=1)[1][5], native[5]), "the noise map is seeded"
    with pytest.raises(ValueError, match="side"):
        examples.hand_made_maps(1)


def test_show_maps_one_panel_per_map_in_the_map_colour_map():
    fig = examples.show_maps(torch.rand(3, 4, 4), ["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    image = fig.axes[0].get_images()[0]
    assert image.get_cmap().name == "inferno" and image.get_clim() == (0, 1)
    with pytest.raises(ValueError, match="2 entries for 3 maps"):
        examples.show_maps(torch.rand(3, 4, 4), ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        examples.show_maps([], [])


def test_plot_against_formula_draws_markers_and_lines_and_returns_the_largest_gap():
    _, ax = plt.subplots()
    x = torch.arange(4.0)
    gap = examples.plot_against_formula(ax, x, {"a": (x**2, x**2), "b": (x + 0.5, x)})
    assert gap == pytest.approx(0.5)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0] == "a" and labels[2] == "b" and labels[-1] == "formulas"
    assert ax.get_lines()[0].get_marker() == "o" and ax.get_lines()[2].get_marker() == "s"
    with pytest.raises(ValueError, match="4 computed and formula values"):
        examples.plot_against_formula(ax, x, {"a": (x[:3], x)})
    with pytest.raises(ValueError, match="empty"):
        examples.plot_against_formula(ax, x, {})
