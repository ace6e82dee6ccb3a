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
