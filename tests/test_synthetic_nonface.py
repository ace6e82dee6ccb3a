"""Tests of salience_lib.data.synthetic.nonface: every kind of out-of-set image, and unknown kinds."""

from __future__ import annotations

import numpy as np
import pytest

from salience_lib.data import synthetic


@pytest.mark.parametrize("kind", synthetic.NONFACE_KINDS)
def test_nonface_images_are_unit_range_rgb_and_seeded(kind: str) -> None:
    image = synthetic.render_nonface(np.random.default_rng(0), 40, kind)
    assert image.shape == (40, 40, 3) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.01
    np.testing.assert_array_equal(image, synthetic.render_nonface(np.random.default_rng(0), 40, kind))


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        synthetic.render_nonface(np.random.default_rng(0), 40, "faces")
