import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from salience_lib.book import blur
from salience_lib.imaging import blur_levels
from salience_lib.measures import degradation
from salience_lib.models import build_model
from salience_lib.salience import GradCAM


def test_blur_sigmas_follow_the_protocols_schedule():
    maps = torch.zeros(1, 4, 4)
    maps[0, 1:3, 1:3] = 1.0
    size = (56, 56)  # a quarter of 224: σ values scale by 1/4
    background = blur.blur_sigmas(maps, size, "background", protocol="refined")
    salient = blur.blur_sigmas(maps, size, "salient", protocol="refined")
    levels = blur_levels(maps, size, 5.0 / 4)
    assert background.shape == (1, 56, 56) and background.dtype == torch.float64
    assert torch.allclose(background, degradation.level_sigmas(0.25)[levels])
    assert float(background.max()) == pytest.approx(10 / 4), "the least salient pixels get σ = 10 px at 224"
    assert float(background.min()) == 0.0, "the most salient stay sharp in mode background"
    assert torch.allclose(salient, degradation.level_sigmas(0.25)[100 - levels]), "mode salient reverses the levels"
    with pytest.raises(ValueError, match="mode"):
        blur.blur_sigmas(maps, size, "random")


def test_blur_sigmas_under_the_paper_protocol_equal_the_blurs_levels():
    """The paper's levels (8-bit bicubic guide, /max, inverted map for mode salient) give the σ drawn."""
    maps = torch.zeros(1, 4, 4)
    maps[0, 1:3, 1:3] = 1.0
    size = (56, 56)
    for mode, invert in (("background", False), ("salient", True)):
        levels = blur_levels(maps, size, 5.0 / 4, upsample="pil_bicubic", rescale="max", border="reflect",
                             bits=8, invert=invert)  # fmt: skip
        expected = degradation.level_sigmas(0.25)[levels]
        assert torch.equal(blur.blur_sigmas(maps, size, mode), expected)
    assert float(blur.blur_sigmas(maps, size, "background").min()) == 0.0


def test_plot_blur_schedule_draws_both_modes_with_a_second_axis():
    _, ax = plt.subplots()
    blur.plot_blur_schedule(ax, 64)
    background, salient = ax.get_lines()
    assert background.get_ydata()[0] == pytest.approx(10.0) and background.get_ydata()[-1] == 0.0
    assert np.allclose(salient.get_ydata(), background.get_ydata()[::-1])
    assert any("px at 64 px" in child.get_ylabel() for child in ax.child_axes)


def test_blur_pipeline_shows_the_image_the_map_and_both_modes():
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    fig = blur.blur_pipeline(image, torch.rand(8, 8), map_title="Grad-CAM")
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["image", "Grad-CAM", "σ, background", "mode background", "σ, salient", "mode salient"]
    assert len(fig.axes) == 7, "six panels and the colour bar"
    with pytest.raises(ValueError, match="need an image"):
        blur.blur_pipeline(image[None], torch.rand(8, 8))


def test_single_pass_runs_the_three_conditions_and_effect_means_names_them():
    model = build_model("small_cnn", image_size=32).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    noise = degradation.random_maps(3, (4, 4), torch.Generator().manual_seed(0))
    with GradCAM(model) as cam:
        results = blur.single_pass(model, cam, images, noise)
        random_blur = degradation.degradation_effect(model, cam, images, "salient", maps=noise)
        background = degradation.degradation_effect(model, cam, images, "background")
    assert list(results) == list(blur.CONDITIONS) == ["background", "random", "salient"]
    assert results["random"].mode == "salient" and results["background"].mode == "background"
    assert torch.allclose(results["random"].probability, random_blur.probability)
    assert torch.allclose(results["background"].probability, background.probability)
    means = blur.effect_means(results["random"], "random")
    assert list(means) == ["Δp random", "flip rate random", "map similarity random"]
    assert means["Δp random"] == pytest.approx(float(random_blur.probability_drop.mean()))
    assert means["flip rate random"] == pytest.approx(float(random_blur.flipped.float().mean()))
