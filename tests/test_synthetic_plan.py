"""Tests of salience_lib.data.synthetic.plan: split sizes, cue rates, and too small a data set."""

from __future__ import annotations

import numpy as np
import pytest

from salience_lib.data import synthetic
from salience_lib.data.synthetic import GeneratorConfig


def test_shortcut_rates_follow_config() -> None:
    plan = synthetic.plan_dataset(1200, seed=0)
    for split, label, expected in [
        ("train", "Synthetic", 0.9),
        ("train", "Real", 0.1),
        ("val", "Synthetic", 0.9),
        ("val", "Real", 0.1),
        ("test", "Synthetic", 0.5),
        ("test", "Real", 0.5),
    ]:
        group = [s.shortcut for s in plan if s.split == split and s.label == label]
        assert np.mean(group) == pytest.approx(expected, abs=0.02), (split, label)
    custom = GeneratorConfig(shortcut_rate_synthetic=0.6, shortcut_rate_real=0.3)
    train = [s for s in synthetic.plan_dataset(1200, 0, custom) if s.split == "train"]
    assert np.mean([s.shortcut for s in train if s.label == "Synthetic"]) == pytest.approx(0.6, abs=0.02)
    assert np.mean([s.shortcut for s in train if s.label == "Real"]) == pytest.approx(0.3, abs=0.02)


def test_too_small_n_is_rejected() -> None:
    with pytest.raises(ValueError, match="n` = 3"):
        synthetic.plan_dataset(3, 0)
