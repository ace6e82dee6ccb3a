"""Tests of salience_lib.data.synthetic.render: faces at any size, one sample from its spec, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from salience_lib.data import synthetic
from salience_lib.data.synthetic import SampleSpec

SIZE = 64


def test_render_sample_gives_mask_and_heatmap_where_the_spec_says() -> None:
    train = synthetic.render_sample(SampleSpec(3, "train", "Synthetic", "hair"), 0, SIZE)
    assert train.image.shape == (SIZE, SIZE, 3) and train.image.dtype == np.uint8
    assert train.mask is not None and train.mask.any() and train.heatmap is not None
    test_real = synthetic.render_sample(SampleSpec(3, "test", "Real", "real"), 0, SIZE)
    assert test_real.mask is None and test_real.heatmap is None
    nonface = synthetic.render_sample(SampleSpec(9, "nonface", "", "stripes"), 0, SIZE)
    assert nonface.image.shape == (SIZE, SIZE, 3) and nonface.mask is None and nonface.heatmap is None
    again = synthetic.render_sample(SampleSpec(3, "train", "Synthetic", "hair"), 0, SIZE)
    np.testing.assert_array_equal(again.image, train.image)  # the stream depends on (seed, index) only


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="family"):
        synthetic.render_face(np.random.default_rng(0), SIZE, "teeth")


def test_large_images_work() -> None:
    for family in (None, "boundary", "mouth"):
        face = synthetic.render_face(np.random.default_rng(0), 224, family)
        assert face.image.shape == (224, 224, 3)
        assert family is None or face.mask.sum() > 100
