"""Tests of salience_lib.data.synthetic.artifacts: masks, edits, the checkerboard signature, strength."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from salience_lib.data import synthetic
from salience_lib.data.synthetic import FAMILIES, GeneratorConfig
from salience_lib.data.synthetic.artifacts import _checkerboard

SIZE = 64


def _period2(img: np.ndarray) -> np.ndarray:
    """Per-pixel estimate of the ±a period-2 checkerboard amplitude (channel mean), via a Laplacian."""
    gray = img.mean(axis=2)
    lap = 4 * gray - sum(np.roll(gray, shift, axis) for shift in (-1, 1) for axis in (0, 1))
    return lap / 8 * _checkerboard(gray.shape[0])


@pytest.mark.parametrize("family", [None, *FAMILIES])
def test_artifact_mask_is_inside_the_image_and_nonempty_only_for_synthetic(family: str | None) -> None:
    for k in range(8):
        face = synthetic.render_face(np.random.default_rng([5, k]), SIZE, family)
        assert face.image.shape == (SIZE, SIZE, 3) and face.image.dtype == np.float32
        assert face.image.min() >= 0.0 and face.image.max() <= 1.0
        if family is None:
            assert not face.mask.any()
            assert len(face.regions) == 3  # both eyes and the mouth
            continue
        assert face.mask.any()
        ring = np.ones_like(face.mask)
        ring[1:-1, 1:-1] = False
        assert not (face.mask & ring).any()
        assert face.mask.mean() < 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_artifact_changes_the_pixels_inside_its_mask(family: str) -> None:
    rng_state = [9, FAMILIES.index(family)]
    config = GeneratorConfig(noise_sigma=0.0, checker_amplitude=0.0)
    face = synthetic.render_face(np.random.default_rng(rng_state), SIZE, family, config)
    clean = synthetic.render_face(np.random.default_rng(rng_state), SIZE, None, config)
    if family in ("iris", "earring"):  # these edit the face's parameters, so compare with a real twin
        assert np.abs(face.image - clean.image)[face.mask].max() > 0.2
    else:
        changed = np.abs(face.image - clean.image).max(axis=2) > 1e-6
        assert changed[face.mask].mean() > 0.3


@pytest.mark.parametrize("family", FAMILIES)
def test_checkerboard_signature_only_inside_artifact_regions(family: str) -> None:
    inside, outside, real = [], [], []
    for k in range(6):
        face = synthetic.render_face(np.random.default_rng([3, k]), SIZE, family)
        core = ndimage.binary_erosion(face.mask)
        signal = _period2(face.image)
        inside.append(signal[core].mean())
        outside.append(signal[~ndimage.binary_dilation(face.mask, iterations=2)].mean())
        real.append(_period2(synthetic.render_face(np.random.default_rng([3, k]), SIZE).image).mean())
    assert np.mean(inside) == pytest.approx(GeneratorConfig().checker_amplitude, abs=0.015)
    assert abs(np.mean(outside)) < 0.005 and abs(np.mean(real)) < 0.005


@pytest.mark.parametrize("family", ["mouth", "hair", "boundary", "droplet"])
def test_artifact_strength_scales_the_edit(family: str) -> None:
    def diff(strength: float) -> np.ndarray:
        config = GeneratorConfig(noise_sigma=0.0, checker_amplitude=0.0, artifact_strength=strength)
        face = synthetic.render_face(np.random.default_rng(4), SIZE, family, config)
        clean = synthetic.render_face(np.random.default_rng(4), SIZE, None, config)
        return face.image - clean.image

    np.testing.assert_array_equal(diff(0.0), 0.0)
    np.testing.assert_allclose(diff(0.5), 0.5 * diff(1.0), atol=1e-5)


def test_checker_amplitude_zero_removes_the_signature() -> None:
    config = GeneratorConfig(checker_amplitude=0.0)
    face = synthetic.render_face(np.random.default_rng(1), SIZE, "droplet", config)
    assert abs(_period2(face.image)[ndimage.binary_erosion(face.mask)].mean()) < 0.01
