"""Tests for salience_lib.resize: ``pil_resize`` against Pillow's own ``Image.resize`` (modes L and F)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from salience_lib.resize import pil_resize

FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

# (input (h, w), output (h, w), filter): the paper protocol's map upsampling, the CYBORG loss's human
# map downsampling, and non-square sizes in both pass orders (module docstring of salience_lib.resize).
CASES = [
    ((7, 7), (224, 224), "bicubic"),
    ((7, 7), (64, 64), "bicubic"),
    ((8, 8), (64, 64), "bicubic"),
    ((16, 16), (112, 112), "bicubic"),
    ((224, 224), (7, 7), "bilinear"),
    ((64, 64), (8, 8), "bilinear"),
    ((32, 32), (7, 7), "bilinear"),
    ((30, 17), (9, 41), "bicubic"),  # Pillow 13 runs the vertical pass first here
    ((17, 30), (41, 9), "bilinear"),
    ((40, 40), (16, 30), "bilinear"),  # both down, vertical first
    ((40, 40), (23, 30), "bicubic"),  # both down, horizontal first
]


def _pillow(maps: np.ndarray, size: tuple[int, int], filter: str) -> np.ndarray:
    """Pillow, one image at a time: uint8 maps in mode L, float32 maps in mode F."""
    mode = "L" if maps.dtype == np.uint8 else "F"
    out = [np.asarray(Image.fromarray(m, mode).resize(size[::-1], FILTERS[filter])) for m in maps]
    return np.stack(out)


def _levels(x: torch.Tensor) -> np.ndarray:
    return torch.round(x.double() * 255).long().numpy()


@pytest.mark.parametrize(("src", "dst", "filter"), CASES)
def test_8bit_equals_pillow_mode_l(src, dst, filter) -> None:
    rng = np.random.default_rng(sum(src) + sum(dst))
    maps = rng.integers(0, 256, (16, *src), dtype=np.uint8)
    ours = pil_resize(torch.from_numpy(maps).float() / 255, dst, filter, bits=8)
    assert ours.shape == (16, *dst) and ours.dtype == torch.float32
    np.testing.assert_array_equal(_levels(ours), _pillow(maps, dst, filter).astype(np.int64))


@pytest.mark.parametrize(("src", "dst", "filter"), CASES)
def test_float_equals_pillow_mode_f(src, dst, filter) -> None:
    rng = np.random.default_rng(sum(src) * sum(dst))
    maps = rng.random((8, *src), dtype=np.float32)
    ours = pil_resize(torch.from_numpy(maps), dst, filter)
    np.testing.assert_allclose(ours.numpy(), _pillow(maps, dst, filter), rtol=0, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    src=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    dst=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    filter=st.sampled_from(sorted(FILTERS)),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_sizes_match_pillow(src, dst, filter, seed) -> None:
    rng = np.random.default_rng(seed)
    maps = rng.integers(0, 256, (3, *src), dtype=np.uint8)
    ours = pil_resize(torch.from_numpy(maps).double() / 255, dst, filter, bits=8)
    np.testing.assert_array_equal(_levels(ours), _pillow(maps, dst, filter).astype(np.int64))
    floats = maps.astype(np.float32) / 255
    close = pil_resize(torch.from_numpy(floats), dst, filter)
    np.testing.assert_allclose(close.numpy(), _pillow(floats, dst, filter), rtol=0, atol=1e-5)


@pytest.mark.parametrize("filter", sorted(FILTERS))
def test_constant_map_stays_constant(filter) -> None:
    for src, dst in [((7, 7), (64, 64)), ((64, 64), (7, 7)), ((9, 20), (31, 5))]:
        level = torch.full((2, *src), 173 / 255)
        np.testing.assert_array_equal(_levels(pil_resize(level, dst, filter, bits=8)), 173)
        torch.testing.assert_close(pil_resize(level.double(), dst, filter), torch.full((2, *dst), 173 / 255.0).double())
        maps = np.full((1, *src), 173, dtype=np.uint8)
        np.testing.assert_array_equal(_pillow(maps, dst, filter), 173)  # Pillow agrees


def test_batch_equals_per_image_and_channels() -> None:
    x = torch.rand(3, 2, 12, 10, generator=torch.Generator().manual_seed(0))
    for bits in (None, 8):
        batch = pil_resize(x, (31, 7), "bicubic", bits=bits)
        assert batch.shape == (3, 2, 31, 7)
        single = torch.stack([pil_resize(x[i], (31, 7), "bicubic", bits=bits) for i in range(3)])
        assert torch.equal(batch, single)
        flat = pil_resize(x.flatten(0, 1), (31, 7), "bicubic", bits=bits)
        assert torch.equal(batch.flatten(0, 1), flat)


def test_same_size_is_identity_and_float_path_is_differentiable() -> None:
    x = torch.rand(2, 9, 9, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(pil_resize(x, (9, 9), "bicubic"), x)
    pil_resize(x, (4, 13), "bilinear").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_arguments_are_named() -> None:
    x = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="`x`"):
        pil_resize(torch.rand(8, 8), (4, 4))
    with pytest.raises(ValueError, match="`x`"):
        pil_resize(torch.zeros(2, 8, 8, dtype=torch.uint8), (4, 4))
    with pytest.raises(ValueError, match="`size`"):
        pil_resize(x, (0, 4))
    with pytest.raises(ValueError, match="`filter`"):
        pil_resize(x, (4, 4), "lanczos")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`bits`"):
        pil_resize(x, (4, 4), bits=16)
