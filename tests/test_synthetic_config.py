"""Tests of salience_lib.data.synthetic.config: validation of GeneratorConfig, SampleSpec's file names."""

from __future__ import annotations

import pytest

from salience_lib.data import synthetic
from salience_lib.data.synthetic import GeneratorConfig, SampleSpec


def test_package_exports_every_public_name() -> None:
    for name in synthetic.__all__:
        assert hasattr(synthetic, name), name


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown families"):
        GeneratorConfig(seen_families=("iris", "teeth"))
    with pytest.raises(ValueError, match="disjoint"):
        GeneratorConfig(unseen_families=("iris",))
    with pytest.raises(ValueError, match="shortcut_rate_real"):
        GeneratorConfig(shortcut_rate_real=1.5)


def test_sample_spec_names_its_files() -> None:
    spec = SampleSpec(42, "train", "Synthetic", "iris", shortcut=True)
    assert (spec.name, spec.path) == ("000042.png", "train/iris/000042.png")
    assert spec.has_heatmap and spec.has_mask
    real = SampleSpec(7, "test", "Real", "real")
    assert (real.path, real.has_heatmap, real.has_mask) == ("test/real/000007.png", False, False)
