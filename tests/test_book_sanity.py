"""The cascading-randomisation sanity check (salience_lib.book.sanity)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from salience_lib.book import sanity
from salience_lib.models.builders import build_model

HEAD_FIRST = ["fc", "features.block4", "features.block3", "features.block2", "features.block1"]


@pytest.fixture
def trained() -> nn.Module:
    """The book's small_cnn (64 px) with non-default weights and BatchNorm statistics (as after training)."""
    torch.manual_seed(3)
    model = build_model("small_cnn", image_size=64)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [key for key in a if key.startswith(prefix + ".")]
    assert keys, prefix
    return all(torch.equal(a[key], b[key]) for key in keys)


def test_layers_are_grouped_and_head_first(trained):
    layers = sanity.randomisation_layers(trained)
    assert [label for label, _ in layers] == HEAD_FIRST
    assert dict(layers)["features.block4"] == ("features.block4.0", "features.block4.1")  # conv with its BatchNorm
    assert dict(layers)["fc"] == ("fc",)


def test_randomisation_is_cumulative_from_the_head(trained):
    before = _state(trained)
    states = [(depth, label, _state(copy)) for depth, label, copy in sanity.cascading_randomisation(trained, seed=1)]
    assert [label for _, label, _ in states] == ["trained", *HEAD_FIRST]
    assert [depth for depth, _, _ in states] == list(range(len(HEAD_FIRST) + 1))
    for depth, _, state in states:
        for position, label in enumerate(HEAD_FIRST):
            assert _equal(state, before, label) == (position >= depth), (depth, label)  # the first `depth` changed
            if position < depth - 1:  # randomised earlier: keeps the random weights it got then
                assert _equal(state, states[depth - 1][2], label), (depth, label)
    assert _equal(before, _state(trained), "features") and _equal(before, _state(trained), "fc")  # untouched


def test_reinitialised_layers_are_fresh_modules(trained):
    *_, (depth, _, random) = sanity.cascading_randomisation(trained, seed=0)
    assert depth == len(HEAD_FIRST)
    norm = random.features.block2[1]
    assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    bound = 1 / np.sqrt(128)  # PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(random.fc.weight.detach().abs().max()) <= bound
    assert not random.training  # the copies keep the model's mode


def test_deterministic_per_seed_and_leaves_the_global_rng_alone(trained):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = [_state(copy) for _, _, copy in sanity.cascading_randomisation(trained, seed=5)]
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random stream is not consumed
    second = [_state(copy) for _, _, copy in sanity.cascading_randomisation(trained, seed=5)]
    other = [_state(copy) for _, _, copy in sanity.cascading_randomisation(trained, seed=6)]
    for a, b in zip(first, second, strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(first[-1]["fc.weight"], other[-1]["fc.weight"])


def test_depth_zero_gives_the_trained_output(trained):
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cascade = list(sanity.cascading_randomisation(trained, seed=0))
    with torch.no_grad():
        reference = trained(images)
        assert torch.equal(cascade[0][2](images), reference)
        assert not torch.allclose(cascade[1][2](images), reference)
    assert cascade[0][2] is not trained


def test_a_model_without_parameters_is_refused():
    with pytest.raises(ValueError, match="no parameterised modules"):
        sanity.randomisation_layers(nn.Sequential(nn.ReLU()))


def _maps(generator: torch.Generator, n: int = 3, side: int = 9, zeros: float = 0.0) -> torch.Tensor:
    maps = torch.rand(n, side, side, generator=generator)
    return torch.where(maps < zeros, torch.zeros_like(maps), maps)  # ties at zero, as after Grad-CAM's ReLU


@pytest.mark.parametrize("zeros", [0.0, 0.4])
def test_spearman_matches_scipy(generator, zeros):
    a, b = _maps(generator, zeros=zeros), _maps(generator, zeros=zeros)
    b = 0.5 * a + 0.5 * b  # correlated
    ours = sanity.spearman(a, b)
    reference = [spearmanr(x.flatten().numpy(), y.flatten().numpy()).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_spearman_degenerate_cases():
    flat, ramp = torch.zeros(1, 4, 4), torch.arange(16.0).view(1, 4, 4)
    assert float(sanity.spearman(flat, flat)) == 1.0
    assert float(sanity.spearman(flat, ramp)) == 0.0
    assert float(sanity.spearman(ramp, -ramp)) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="must both be"):
        sanity.spearman(ramp, ramp[0])


def test_similarity_to_trained_matches_scipy_and_skimage(generator):
    stacked = torch.stack([_maps(generator, side=12, zeros=0.3) for _ in range(3)])  # (depths, images, h, w)
    values = sanity.similarity_to_trained(stacked)
    assert set(values) == {"Spearman", "SSIM"} and values["SSIM"].shape == (3, 3)
    torch.testing.assert_close(values["SSIM"][0], torch.ones(3))
    for depth in range(3):
        for image in range(3):
            a, ref = stacked[depth, image].numpy(), stacked[0, image].numpy()
            expected_ssim = structural_similarity(a.astype(np.float64), ref.astype(np.float64), data_range=1.0)
            assert float(values["SSIM"][depth, image]) == pytest.approx(expected_ssim, abs=1e-5)
            expected = spearmanr(a.ravel(), ref.ravel()).statistic
            assert float(values["Spearman"][depth, image]) == pytest.approx(expected, abs=1e-6)


def test_cascade_stability(trained):
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    values = sanity.cascade_stability(trained, images, seeds=[0, 1], map_size=8)
    assert values.shape == (len(HEAD_FIRST) + 1, 3)
    torch.testing.assert_close(values[0], torch.ones(3))  # identical copies of the trained model
    assert bool((values[1:] < 1).any())
    with pytest.raises(ValueError, match="at least two seeds"):
        sanity.cascade_stability(trained, images, seeds=[0])


def test_upsample_maps_keeps_leading_dimensions(generator):
    maps = torch.rand(2, 3, 4, 4, generator=generator)
    assert sanity.upsample_maps(maps, None) is maps
    big = sanity.upsample_maps(maps, 8)
    assert big.shape == (2, 3, 8, 8)
    torch.testing.assert_close(big.flatten(2).amax(-1), torch.ones(2, 3))


def _fake_result() -> tuple[dict, dict]:
    def summary(mean: float) -> dict:
        return {"mean": mean, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": 10}

    models, depths = {}, {}
    for recipe, values in {"xent": [0.9, 0.88, 0.5], "cyborg": [0.9, 0.7, 0.5]}.items():
        for depth, value in enumerate(values):
            entropy = {"spatial": {"entropy": summary(0.8)}}
            models[f"{recipe}/depth{depth}"] = {"accuracy": summary(value), "entropy": entropy}
            depths[f"{recipe}/depth{depth}"] = (recipe, depth, ["trained", "fc", "block4"][depth])
    return {"models": models}, depths


def test_sanity_frame_and_first_departure():
    result, depths = _fake_result()
    columns = {"accuracy": "accuracy", "(a) entropy": "entropy.spatial.entropy"}
    frame = sanity.sanity_frame(result, depths, columns)
    assert list(frame.columns) == sanity.FRAME_COLUMNS and len(frame) == 12
    row = frame[(frame["recipe"] == "cyborg") & (frame["depth"] == 1) & (frame["measure"] == "accuracy")].iloc[0]
    assert (row["layer"], row["mean"], row["ci_low"], row["n"]) == ("fc", 0.7, pytest.approx(0.65), 10)
    assert sanity.first_departure(frame, "accuracy", "xent") == (2, "block4")  # 0.88 ± 0.05 overlaps 0.9 ± 0.05
    assert sanity.first_departure(frame, "accuracy", "cyborg") == (1, "fc")
    assert sanity.first_departure(frame, "(a) entropy", "xent") is None
    with pytest.raises(ValueError, match="no rows"):
        sanity.first_departure(frame, "accuracy", "other")


def test_map_similarity_frame_and_plot(generator):
    values = {recipe: {"SSIM": torch.rand(3, 5, generator=generator)} for recipe in ("xent", "cyborg")}
    layers = {recipe: ["trained", "fc", "block4"] for recipe in values}
    frame = sanity.map_similarity_frame(values, layers)
    assert len(frame) == 6
    first = frame.iloc[0]
    assert first["mean"] == pytest.approx(float(values["xent"]["SSIM"][0].double().mean()))
    assert first["ci_low"] <= first["mean"] <= first["ci_high"]
    with pytest.raises(ValueError, match="layer labels"):
        sanity.map_similarity_frame(values, {recipe: ["trained"] for recipe in values})
    frame = pd.concat([frame, frame.assign(measure="other")])
    fig, axes = sanity.plot_sanity(frame, ["SSIM", "other"], ncols=3, references={"SSIM": {"xent": 0.5}})
    assert len(axes) == 3 and not axes[2].axison
    assert len(axes[0].lines) == 3 and len(axes[1].lines) == 2  # two recipes, plus one reference line
    assert [tick.get_text() for tick in axes[0].get_xticklabels()] == ["0 trained", "1 fc", "2 block4"]
    plt.close(fig)
