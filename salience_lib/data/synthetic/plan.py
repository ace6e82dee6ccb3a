"""Planning a data set: which images each split holds, their labels, families and shortcut flags."""

from __future__ import annotations

import math

import numpy as np

from salience_lib.data.layout import SPLITS
from salience_lib.data.synthetic.config import NONFACE_KINDS, GeneratorConfig, SampleSpec

__all__ = ["plan_dataset"]


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def plan_dataset(n: int, seed: int, config: GeneratorConfig | None = None) -> list[SampleSpec]:
    """Every image of a data set with ``n`` training images, in CSV order (shuffled within splits).

    Sizes: train ``n``; val ``n * val_fraction`` (default n/6); test ``n * test_fraction`` (n/3);
    non-face ``n * nonface_fraction`` (n/12). In each face split a fraction ``real_fraction`` (1/2)
    is Real; Synthetic images are spread evenly over the seen families (train, val) or over seen +
    unseen families (test). The shortcut stamp goes on exactly ``round(rate * count)`` images of
    each (label, family) group, chosen at random. Indices (file names) are unique across splits.

    Raises:
        ValueError: ``n`` too small for every split to hold at least one Real and one Synthetic image.
    """
    config = config or GeneratorConfig()
    fractions = {"train": 1.0, "val": config.val_fraction, "test": config.test_fraction}
    sizes = {split: _round(n * fraction) for split, fraction in fractions.items()}
    plan: list[SampleSpec] = []
    for split_id, split in enumerate(SPLITS):
        total = sizes[split]
        n_real = _round(total * config.real_fraction)
        if n_real < 1 or total - n_real < 1:
            raise ValueError(
                f"`n` = {n} gives {total} {split} images; need >= 1 Real and >= 1 Synthetic (use a larger n)"
            )
        families = config.seen_families + (config.unseen_families if split == "test" else ())
        rng = np.random.default_rng([seed, 1, split_id])
        entries = _split_entries(rng, split, n_real, total - n_real, families, config)
        order = rng.permutation(len(entries))
        start = len(plan)
        plan.extend(SampleSpec(start + i, split, *entries[j]) for i, j in enumerate(order))
    kinds = [NONFACE_KINDS[i % len(NONFACE_KINDS)] for i in range(_round(n * config.nonface_fraction))]
    start = len(plan)
    plan.extend(SampleSpec(start + i, "nonface", "", kind) for i, kind in enumerate(kinds))
    return plan


def _split_entries(
    rng: np.random.Generator,
    split: str,
    n_real: int,
    n_syn: int,
    families: tuple[str, ...],
    config: GeneratorConfig,
) -> list[tuple[str, str, bool]]:
    groups = [("Real", "real", n_real)] + [
        ("Synthetic", fam, n_syn // len(families) + (i < n_syn % len(families))) for i, fam in enumerate(families)
    ]
    entries = []
    for label, family, count in groups:
        if split == "test":
            rate = config.shortcut_rate_test
        else:
            rate = config.shortcut_rate_real if label == "Real" else config.shortcut_rate_synthetic
        cue = np.zeros(count, bool)
        cue[rng.permutation(count)[: _round(rate * count)]] = True
        entries.extend((label, family, bool(flag)) for flag in cue)
    return entries
