import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import shannon_entropy

from salience_lib.measures.entropy import EntropyAccumulator, salience_entropy


def test_analytic_spatial_cases():
    uniform = torch.ones(1, 8, 8)
    hot = torch.zeros(1, 8, 8)
    hot[0, 3, 4] = 1
    half = torch.zeros(1, 8, 8)
    half[0, :4] = 1
    assert salience_entropy(uniform, "spatial").item() == pytest.approx(1.0)
    assert salience_entropy(hot, "spatial").item() == pytest.approx(0.0, abs=1e-7)
    assert salience_entropy(half, "spatial").item() == pytest.approx(math.log(32) / math.log(64))
    assert salience_entropy(torch.zeros(1, 8, 8), "spatial").item() == 1.0


def test_analytic_histogram_cases():
    assert salience_entropy(torch.full((1, 8, 8), 0.3)).item() == 0.0
    half = torch.zeros(1, 8, 8)
    half[0, :4] = 1
    assert salience_entropy(half).item() == pytest.approx(1 / 6)  # 1 bit / log2(64)
    ramp = (torch.arange(256).float() / 255).view(1, 16, 16)
    assert salience_entropy(ramp).item() == pytest.approx(1.0)


def test_histogram_equals_skimage_up_to_normalisation():
    maps = torch.rand(5, 14, 14, generator=torch.Generator().manual_seed(0))
    ours = salience_entropy(maps)
    for m, value in zip(maps, ours, strict=True):
        eight_bit = torch.round(m * 255).to(torch.uint8).numpy()
        assert value.item() == pytest.approx(shannon_entropy(eight_bit) / math.log2(196), abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["histogram", "spatial"]), st.integers(2, 16), st.integers(0, 10_000))
def test_bounds_and_batch_order(kind, side, seed):
    maps = torch.rand(4, side, side, generator=torch.Generator().manual_seed(seed))
    maps[seed % 4] = 0
    values = salience_entropy(maps, kind)
    assert torch.isfinite(values).all()
    assert (values >= -1e-6).all() and (values <= 1 + 1e-6).all()
    perm = torch.tensor([1, 3, 0, 2])
    assert torch.allclose(salience_entropy(maps[perm], kind), values[perm])


def test_bad_input():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        salience_entropy(torch.rand(1, 4, 4), "shannon")
    with pytest.raises(ValueError, match="non-negative"):
        salience_entropy(-torch.rand(1, 4, 4), "spatial")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        salience_entropy(torch.rand(1, 4, 4) + 1)
    with pytest.raises(ValueError, match="NaN"):
        salience_entropy(torch.full((1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="at least 2 pixels"):
        salience_entropy(torch.rand(1, 1, 1))


def test_accumulator_merge_equals_one_pass_and_counts_zero_maps():
    maps = torch.rand(10, 6, 6, generator=torch.Generator().manual_seed(0))
    maps[2] = 0
    whole = EntropyAccumulator("spatial")
    whole.update(maps)
    first, second = EntropyAccumulator("spatial"), EntropyAccumulator("spatial")
    first.update(maps[:4])
    second.update(maps[4:])
    merged = first.merge(second).compute()
    assert merged["entropy"] == whole.compute()["entropy"]
    assert merged["all_zero"] == 1 and merged["n"] == 10
    with pytest.raises(ValueError, match="different settings"):
        EntropyAccumulator("spatial").merge(EntropyAccumulator("histogram"))
    whole.reset()
    assert whole.count == 0
    with pytest.raises(ValueError, match="nothing to summarise"):
        whole.compute()


# -- NaN never becomes a score (SPEC §9) ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["histogram", "spatial"])
def test_nan_pixel_is_an_error_not_zero_entropy(kind):
    """A NaN pixel used to give an all-zero Grad-CAM map: entropy −0.0 (histogram) or 1 (spatial), no error."""
    from salience_lib.salience import GradCAM
    from tests.helpers import TinyCNN

    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    images[0, 1, 5, 5] = float("nan")
    maps = GradCAM(TinyCNN())(images)
    with pytest.raises(ValueError, match=r"`maps` contain NaN or inf values for 1 of 2 images \(batch positions 0\)"):
        salience_entropy(maps, kind)


def test_nan_weights_are_an_error_not_a_perfect_score():
    from salience_lib.salience import GradCAM
    from tests.helpers import TinyCNN

    model = TinyCNN()
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    maps = GradCAM(model)(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="NaN"):
        EntropyAccumulator("histogram").update(maps)
