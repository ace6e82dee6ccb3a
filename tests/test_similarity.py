import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from salience_lib.similarity import SIMILARITIES, cosine, pearson, ssim, topk_iou

ALL = [ssim, pearson, cosine, topk_iou]


def _pair(shape, seed=0, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    b = (a + noise * torch.rand(shape, generator=g)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("shape", [(64, 7, 7), (16, 8, 8), (4, 9, 13), (2, 112, 112)])
def test_ssim_equals_skimage(shape):
    a, b = _pair(shape, seed=shape[1])
    ours = ssim(a, b).double().numpy()
    reference = np.array(
        [
            structural_similarity(x.double().numpy(), y.double().numpy(), data_range=1.0)
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert np.abs(ours - reference).max() < 1e-5


def test_ssim_of_constant_maps_matches_skimage():
    a = torch.zeros(1, 7, 7)
    b = torch.full((1, 7, 7), 0.5)
    expected = structural_similarity(a[0].numpy(), b[0].numpy(), data_range=1.0)
    assert abs(float(ssim(a, b)) - expected) < 1e-5


def test_ssim_too_small_maps_raise_with_advice():
    with pytest.raises(ValueError, match=r"side >= win_size=7.*upsample"):
        ssim(torch.rand(2, 6, 6), torch.rand(2, 6, 6))
    assert ssim(torch.rand(2, 5, 5), torch.rand(2, 5, 5), win_size=5).shape == (2,)
    with pytest.raises(ValueError, match="odd integer"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8), win_size=4)


def test_ssim_mask_counts_only_fully_valid_windows():
    a, b = _pair((2, 16, 16))
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, :8, :8] = True
    masked = ssim(a, b, mask=mask)
    crop = ssim(a[:, :8, :8].contiguous(), b[:, :8, :8].contiguous())
    assert torch.allclose(masked, crop, atol=1e-6)
    b2 = b.clone()
    b2[:, 10:, 10:] = torch.rand(2, 6, 6)  # changes outside the mask do not matter
    assert torch.allclose(ssim(a, b2, mask=mask), masked)
    with pytest.raises(ValueError, match="no 7×7 window"):
        ssim(a, b, mask=torch.zeros(2, 16, 16, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        ssim(a, b, mask=mask.float())


@pytest.mark.parametrize("fn", ALL)
def test_identical_maps_score_one(fn):
    a, _ = _pair((5, 8, 8))
    assert torch.allclose(fn(a, a), torch.ones(5), atol=1e-6)


@pytest.mark.parametrize("fn", ALL)
def test_degenerate_maps_never_nan(fn):
    zero = torch.zeros(3, 8, 8)
    assert torch.isfinite(fn(zero, zero)).all()
    assert torch.isfinite(fn(zero, torch.rand(3, 8, 8))).all()


def test_degenerate_conventions():
    zero = torch.zeros(2, 8, 8)
    rand = torch.rand(2, 8, 8)
    assert torch.equal(cosine(zero, zero), torch.ones(2))
    assert torch.equal(cosine(zero, rand), torch.zeros(2))
    assert torch.equal(pearson(zero + 0.3, zero + 0.7), torch.ones(2))
    assert torch.equal(pearson(zero, rand), torch.zeros(2))


def test_pearson_and_cosine_match_numpy():
    a, b = _pair((4, 8, 8), noise=1.0)
    for x, y, p, c in zip(a, b, pearson(a, b), cosine(a, b), strict=True):
        xf, yf = x.double().flatten().numpy(), y.double().flatten().numpy()
        assert abs(float(p) - np.corrcoef(xf, yf)[0, 1]) < 1e-6
        assert abs(float(c) - xf @ yf / np.linalg.norm(xf) / np.linalg.norm(yf)) < 1e-6
    assert torch.allclose(pearson(a, 1 - a), -torch.ones(4), atol=1e-6)


def test_topk_iou_known_case():
    a = torch.zeros(1, 10, 10)
    b = torch.zeros(1, 10, 10)
    a[0, 0, :] = torch.arange(10, 20).float()  # top 10% = row 0
    b[0, 0, :5] = 5.0  # shares 5 of its top-10 pixels with a
    b[0, 1, :5] = 4.0
    assert float(topk_iou(a, b, q=0.1)) == pytest.approx(5 / 15)
    with pytest.raises(ValueError, match="fraction"):
        topk_iou(a, b, q=0)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ALL), st.integers(7, 12), st.integers(0, 10_000))
def test_bounds_symmetry_and_batch_order(fn, side, seed):
    a, b = _pair((4, side, side), seed=seed, noise=1.0)
    forward = fn(a, b)
    assert torch.allclose(forward, fn(b, a), atol=1e-6)
    low = -1 if fn in (pearson, cosine) else (-1 if fn is ssim else 0)
    assert (forward >= low - 1e-6).all() and (forward <= 1 + 1e-6).all()
    perm = torch.tensor([3, 1, 0, 2])
    assert torch.allclose(fn(a[perm], b[perm]), forward[perm], atol=1e-6)


def test_batch_size_mismatch_names_arguments():
    with pytest.raises(ValueError, match="`a` and `b`"):
        ssim(torch.rand(2, 8, 8), torch.rand(3, 8, 8))


def test_registry_names():
    assert set(SIMILARITIES) == {"ssim", "pearson", "cosine", "topk_iou"}
