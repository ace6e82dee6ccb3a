"""Tests for salience_lib.training.config: validation, the recipe hash, seeds, command-line options."""

from __future__ import annotations

import dataclasses

import pytest

from salience_lib import cli
from salience_lib.training.config import TrainConfig, config_from_args, derive_seed, recipe_hash


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="focal")
    with pytest.raises(ValueError, match="alpha"):
        TrainConfig(alpha=-0.1)
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


def test_recipe_hash_covers_what_is_learned() -> None:
    base = TrainConfig(loss="cyborg")
    h = recipe_hash(base, "d")
    assert recipe_hash(dataclasses.replace(base, seed=3, device="cpu", num_workers=2), "d") == h
    assert recipe_hash(dataclasses.replace(base, lr=2e-3), "d") != h
    assert recipe_hash(dataclasses.replace(base, alpha=0.2), "d") != h
    assert recipe_hash(base, "other data") != h
    xent = TrainConfig(loss="xent")
    assert recipe_hash(dataclasses.replace(xent, alpha=0.2), "d") == recipe_hash(xent, "d")


def test_recipe_hash_is_stable() -> None:
    """Cached runs are found by this hash: a refactor must not change it (retrains every run)."""
    assert recipe_hash(TrainConfig(loss="cyborg"), "d")[:8] == "2c905742"


def test_recipe_hash_uses_weights_file_content(tmp_path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    assert recipe_hash(TrainConfig(weights_path=a), "d") == recipe_hash(TrainConfig(weights_path=b), "d")
    b.write_bytes(b"other weights")
    assert recipe_hash(TrainConfig(weights_path=a), "d") != recipe_hash(TrainConfig(weights_path=b), "d")


def test_derive_seed_independent_streams() -> None:
    seeds = {derive_seed(s, stream, e) for s in (0, 1) for stream in ("order", "hflip") for e in (0, 1)}
    assert len(seeds) == 8
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, "order", 3) == derive_seed(0, "order", 3)


def test_config_from_cli_args() -> None:
    args = cli.build_parser().parse_args(
        [
            "train",
            "--data",
            "d",
            "--loss",
            "cyborg",
            "--epochs",
            "3",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--alpha",
            "0.2",
            "--amp",
            "bf16",
            "--image-size",
            "96",
            "--no-channels-last",
        ]
    )
    config = config_from_args(args)
    assert (config.loss, config.epochs, config.batch_size, config.lr) == ("cyborg", 3, 8, 0.01)
    assert (config.alpha, config.amp, config.image_size, config.channels_last) == (0.2, "bf16", 96, False)
    default = config_from_args(cli.build_parser().parse_args(["train", "--data", "d", "--loss", "xent"]))
    assert default == TrainConfig(loss="xent")
