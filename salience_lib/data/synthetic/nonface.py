"""Out-of-set (non-face) images: shapes, stripes and colour clouds."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from salience_lib.data.synthetic.config import NONFACE_KINDS, Array

__all__ = ["render_nonface"]


def render_nonface(rng: np.random.Generator, size: int, kind: str, noise_sigma: float = 0.02) -> Array:
    """A non-face image (float32 ``(size, size, 3)`` in [0, 1]) of ``kind`` in :data:`NONFACE_KINDS`.

    ``shapes``: circles, rectangles and triangles on a plain background; ``stripes``: a grating or a
    plaid; ``clouds``: smooth colour noise.
    """
    if kind not in NONFACE_KINDS:
        raise ValueError(f"`kind` must be one of {list(NONFACE_KINDS)}, got {kind!r}")
    rows, cols = np.indices((size, size), dtype=np.float32) / np.float32(size)
    if kind == "shapes":
        img = np.empty((size, size, 3), np.float32)
        img[:] = rng.uniform(0.1, 0.9, 3)
        for _ in range(rng.integers(3, 8)):
            img[_random_shape(rng, rows, cols)] = rng.uniform(0.0, 1.0, 3)
    elif kind == "stripes":
        img = _grating(rng, rows, cols)
        if rng.random() < 0.5:
            img = 0.5 * (img + _grating(rng, rows, cols))
    else:
        grid = rng.uniform(0, 255, (int(rng.integers(3, 9)),) * 2 + (3,)).astype(np.uint8)
        img = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32) / 255.0
    img = img + rng.normal(0.0, noise_sigma, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def _random_shape(rng: np.random.Generator, rows: Array, cols: Array) -> Array:
    kind = rng.integers(3)
    cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.06, 0.3)
    if kind == 0:
        return (rows - cy) ** 2 + (cols - cx) ** 2 < r**2
    if kind == 1:
        return (np.abs(rows - cy) < r * rng.uniform(0.3, 1.0)) & (np.abs(cols - cx) < r * rng.uniform(0.3, 1.0))
    pts = rng.uniform(0.0, 1.0, (3, 2))
    sides = [
        (cols - pts[i, 0]) * (pts[(i + 1) % 3, 1] - pts[i, 1]) - (rows - pts[i, 1]) * (pts[(i + 1) % 3, 0] - pts[i, 0])
        for i in range(3)
    ]
    return ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | ((sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0))


def _grating(rng: np.random.Generator, rows: Array, cols: Array) -> Array:
    theta, period = rng.uniform(0, math.pi), rng.uniform(0.06, 0.25)
    wave = 0.5 + 0.5 * np.sin((cols * math.cos(theta) + rows * math.sin(theta)) * (2 * math.pi / period))
    a, b = rng.uniform(0, 1, 3).astype(np.float32), rng.uniform(0, 1, 3).astype(np.float32)
    return a + wave[..., None].astype(np.float32) * (b - a)
