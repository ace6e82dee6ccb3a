"""Human-like annotation maps: several simulated annotators circling regions, blurred and averaged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from salience_lib.data.synthetic.config import _REFERENCE_SIZE, Array, Region

__all__ = ["human_annotation"]


def human_annotation(
    rng: np.random.Generator,
    regions: Sequence[Region],
    size: int,
    annotators: int = 4,
    extra_regions: Sequence[Region] = (),
) -> Array:
    """Simulate several annotators circling ``regions``; returns a float32 ``(size, size)`` map in [0, 1].

    Each annotator draws, around every region, an irregular ellipse with a jittered centre, a
    generous radius and a wobbly outline; with probability 0.15 a region is skipped (never all of
    them) and with probability 0.1 the annotator also marks one of ``extra_regions`` (e.g. an eye).
    The map is the blurred mean of the annotators' binary drawings, scaled to a maximum of 1; it is
    all zero when ``regions`` is empty.
    """
    if not regions:
        return np.zeros((size, size), np.float32)
    rows, cols = np.indices((size, size), dtype=np.float32)
    scale = size / _REFERENCE_SIZE
    total = np.zeros((size, size), np.float32)
    for _ in range(annotators):
        keep = rng.random(len(regions)) >= 0.15
        if not keep.any():
            keep[rng.integers(len(regions))] = True
        chosen = [r for r, k in zip(regions, keep, strict=True) if k]
        if extra_regions and rng.random() < 0.1:
            chosen.append(extra_regions[rng.integers(len(extra_regions))])
        drawing = np.zeros((size, size), bool)
        for row, col, r_row, r_col in chosen:
            drawing |= _annotator_blob(rng, rows, cols, row, col, max(r_row, 1.5 * scale), max(r_col, 1.5 * scale))
        total += drawing
    blurred = ndimage.gaussian_filter(total / annotators, sigma=1.5 * scale, mode="constant")
    peak = float(blurred.max())
    return blurred / peak if peak > 0 else blurred


def _annotator_blob(
    rng: np.random.Generator, rows: Array, cols: Array, row: float, col: float, r_row: float, r_col: float
) -> Array:
    row, col = row + rng.normal(0, 0.25 * r_row), col + rng.normal(0, 0.25 * r_col)
    grow = rng.uniform(1.0, 1.7)
    dr, dc = (rows - np.float32(row)) / np.float32(r_row * grow), (cols - np.float32(col)) / np.float32(r_col * grow)
    phi = np.arctan2(dr, dc)
    wobble = 1.0 + 0.12 * np.sin(2 * phi + rng.uniform(0, 6.3)) + 0.08 * np.sin(3 * phi + rng.uniform(0, 6.3))
    return dr**2 + dc**2 < wobble**2
