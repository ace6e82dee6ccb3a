import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from salience_lib.maps import check_maps, check_pair, minmax_normalise, resize_maps, top_fraction_mask


def test_minmax_range_and_zero_maps():
    maps = torch.stack([torch.rand(5, 5), torch.zeros(5, 5), torch.full((5, 5), 3.0)])
    out = minmax_normalise(maps)
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.equal(out[1], torch.zeros(5, 5))
    assert torch.equal(out[2], torch.zeros(5, 5))
    assert torch.isfinite(out).all()


def test_minmax_with_mask_ignores_invalid_pixels():
    maps = torch.rand(2, 6, 6)
    maps[:, 0, :] = 100.0
    mask = torch.ones(2, 6, 6, dtype=torch.bool)
    mask[:, 0, :] = False
    out = minmax_normalise(maps, mask)
    assert out[:, 1:].max() == 1 and out[:, 1:].min() == 0
    assert (out[:, 0] == 0).all()


def test_minmax_is_differentiable():
    maps = torch.rand(2, 4, 4, requires_grad=True)
    minmax_normalise(maps).pow(2).sum().backward()
    assert maps.grad is not None and torch.isfinite(maps.grad).all()


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ([[1.0]], TypeError, "torch.Tensor"),
        (torch.zeros(3, 3, dtype=torch.long), TypeError, "floating-point"),
        (torch.zeros(3, 3), ValueError, r"\(B, H, W\)"),
        (torch.zeros(0, 3, 3), ValueError, "empty"),
        (torch.tensor([[[float("nan")]]]), ValueError, "NaN"),
        (torch.tensor([[[float("inf")]]]), ValueError, "inf"),
    ],
)
def test_check_maps_rejects_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        check_maps(bad, "maps")


def test_check_pair_names_both_arguments():
    with pytest.raises(ValueError, match="`a` and `b` must have the same shape"):
        check_pair(torch.zeros(2, 3, 3), torch.zeros(3, 3, 3))


def test_resize_is_identity_at_same_size_and_bilinear_otherwise():
    maps = torch.rand(2, 4, 4)
    assert resize_maps(maps, 4) is maps
    up = resize_maps(maps, (8, 8))
    assert up.shape == (2, 8, 8)
    assert up.min() >= maps.min() - 1e-6 and up.max() <= maps.max() + 1e-6


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.integers(2, 8), st.floats(0.01, 1.0))
def test_top_fraction_selects_exactly_ceil_q_n(height, width, q):
    maps = torch.rand(3, height, width, generator=torch.Generator().manual_seed(height * width))
    chosen = top_fraction_mask(maps, q)
    expected = max(1, int(torch.ceil(torch.tensor(q * height * width) - 1e-9)))
    assert (chosen.flatten(1).sum(dim=1) == expected).all()
    # every chosen pixel is at least as salient as every unchosen one
    for m, c in zip(maps, chosen, strict=True):
        if (~c).any():
            assert m[c].min() >= m[~c].max()


def test_top_fraction_mask_with_precomputed_ranks_is_the_same():
    from salience_lib.maps import pixel_ranks

    maps = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    ranks = pixel_ranks(maps)
    for q in (0.0, 0.1, 0.5, 1.0):
        assert torch.equal(top_fraction_mask(maps, q, minimum=0, ranks=ranks), top_fraction_mask(maps, q, minimum=0))
    assert int(ranks[0].min()) == 0 and int(ranks[0].max()) == 34


# -- NaN / inf never become zeros (SPEC §9) ------------------------------------------------------------


def test_minmax_keeps_a_nan_map_nan_never_zeros():
    """A NaN pixel used to give an all-zero map (span NaN → "flat"), which every measure scores as perfect."""
    maps = torch.rand(3, 5, 5)
    maps[0, 2, 2] = float("nan")
    maps[1, 0, 0] = float("inf")
    out = minmax_normalise(maps)
    assert torch.isnan(out[0]).all() and not torch.isfinite(out[1]).all()
    assert torch.isfinite(out[2]).all() and out[2].max() == 1
    with pytest.raises(ValueError, match=r"NaN or inf values for 2 of 3 images \(batch positions 0, 1\)"):
        check_maps(out)


def test_minmax_with_mask_propagates_nan_of_valid_pixels_only():
    maps = torch.rand(3, 4, 4)
    mask = torch.ones(3, 4, 4, dtype=torch.bool)
    maps[0, 1, 1] = float("nan")  # valid: the map is broken
    maps[1, 0, 0] = float("nan")  # invalid (masked out): ignored
    mask[1, 0, 0] = False
    mask[2] = False  # no valid pixel at all: zeros, as before
    out = minmax_normalise(maps, mask)
    assert torch.isnan(out[0]).any()
    assert torch.isfinite(out[1]).all() and out[1].max() == 1 and out[1, 0, 0] == 0
    assert torch.equal(out[2], torch.zeros(4, 4))


def test_check_finite_names_what_and_which_images():
    from salience_lib.maps import check_finite

    logits = torch.zeros(4, 2)
    logits[3, 1] = float("nan")
    check_finite(("the maps", torch.zeros(4, 3, 3)))
    with pytest.raises(ValueError, match=r"^the model's logits contain NaN or inf values for 1 of 4 images \(batch "
                                         r"positions 3\)$"):
        check_finite(("the maps", torch.zeros(4, 3, 3)), ("the model's logits", logits))
