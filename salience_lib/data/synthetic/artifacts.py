"""The generator families' artifacts, their exact masks, the shared checkerboard and the shortcut stamp."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from salience_lib.data.synthetic.config import _REFERENCE_SIZE, Array, GeneratorConfig, Region
from salience_lib.data.synthetic.faces import _IRIS, _METAL, _Canvas, _Face, _pick

__all__ = ["shortcut_box"]


# ---------------------------------------------------------------------------------------------
# Artifact families. Each edits the face (parameters or pixels) and returns the exact binary mask.


def _iris_params(f: _Face, rng: np.random.Generator, strength: float) -> int:
    k = int(rng.integers(2))
    others = _IRIS[np.abs(_IRIS - f.iris[1 - k]).sum(axis=1) > 0.25]
    f.iris[k] = f.iris[k] + np.float32(strength) * (_pick(rng, others, 0.03) - f.iris[k])
    factor = float(rng.choice([rng.uniform(0.65, 0.8), rng.uniform(1.2, 1.35)]))
    f.iris_r[k] *= 1.0 + strength * (factor - 1.0)
    f.pupil_ratio[k] = 1.0 - strength * float(rng.uniform(0.3, 0.5))
    return k


def _earring_params(f: _Face, rng: np.random.Generator) -> int:
    k = int(rng.integers(2))
    f.earrings[1 - k] = _pick(rng, _METAL, 0.02)
    f.earrings[k] = None
    return k


def _draw_bad_earring(c: _Canvas, f: _Face, rng: np.random.Generator, k: int) -> Array:
    side = -1 if k == 0 else 1
    u, v = side * f.ear_u + rng.uniform(-0.01, 0.01), f.ear_v + f.ear_b * rng.uniform(0.9, 1.2)
    a, b = f.earring_r * rng.uniform(1.6, 2.4), f.earring_r * rng.uniform(0.8, 1.1)
    angle = rng.uniform(0, math.pi)
    colour = rng.uniform(0.1, 0.95, 3)
    win = c.window(u, v, a)
    c.paint(c.ellipse(u, v, a, b, angle, win), colour, win)
    c.paint(c.ellipse(u - 0.3 * a, v - 0.3 * b, 0.4 * a, 0.4 * b, angle, win) * np.float32(0.6), colour[::-1], win)
    return c.ellipse(u, v, a * 1.3 + c.px, b * 1.3 + c.px, angle) > 0.5


def _iris_mask(c: _Canvas, f: _Face, k: int) -> Array:
    side = -1 if k == 0 else 1
    return c.ellipse(side * f.eye_dx, f.eye_v, f.eye_a * 1.2 + c.px, f.eye_b * 1.3 + c.px) > 0.5


def _mouth_artifact(c: _Canvas, f: _Face, rng: np.random.Generator) -> Array:
    mask = c.ellipse(0.0, f.mouth_v, f.mouth_w * rng.uniform(1.2, 1.45), f.mouth_h * rng.uniform(2.0, 2.5)) > 0.5
    k = max(3, round(5 * c.size / _REFERENCE_SIZE))
    smeared = ndimage.uniform_filter1d(c.img, size=k, axis=1, mode="nearest")
    period, phase = rng.uniform(0.012, 0.02), rng.uniform(0, 2 * math.pi)
    gaps = np.cos(c.u * np.float32(2 * math.pi / period) + np.float32(0.9) * np.sin(c.u * 37 + phase)) > 0.3
    band = c.ellipse(0.0, f.mouth_v + rng.uniform(-0.005, 0.005), f.mouth_w * 1.1, f.mouth_h * 0.8)
    teeth = np.where(gaps[..., None], np.float32(0.45), np.float32(0.92)) * np.float32([1.0, 0.97, 0.9])
    edited = smeared + (band * np.float32(0.8))[..., None] * (teeth - smeared)
    c.img[mask] = edited[mask]
    return mask


def _hair_artifact(c: _Canvas, f: _Face, rng: np.random.Generator, hair_alpha: Array) -> Array:
    candidates = np.flatnonzero((hair_alpha > 0.5) & (c.v < f.eye_v - 0.05))
    if candidates.size == 0:
        candidates = np.flatnonzero(hair_alpha > 0.5)
    centre = candidates[rng.integers(candidates.size)]
    cu, cv = float(c.u.flat[centre]), float(c.v.flat[centre])
    r = rng.uniform(0.07, 0.11)
    mask = (c.ellipse(cu, cv, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, math.pi)) > 0.5) & (hair_alpha > 0.5)
    cell = max(2, round(2 * c.size / _REFERENCE_SIZE))
    rows, cols = np.indices(mask.shape)
    coarse = np.where(((rows // cell + cols // cell) % 2) == 0, 1.0, -1.0).astype(np.float32)
    tint = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    edited = c.img + np.float32(0.2) * (tint - c.img) + np.float32(0.12) * coarse[..., None]
    c.img[mask] = edited[mask]
    return mask


def _boundary_artifact(c: _Canvas, f: _Face, rng: np.random.Generator, layers: dict[str, Array]) -> Array:
    rn, phi = layers["rn"], np.arctan2(c.v / f.head_b, c.u / f.head_a)
    phi0 = rng.uniform(0.55, 1.0)
    phi0 = phi0 if rng.random() < 0.5 else math.pi - phi0
    half_span = rng.uniform(0.25, 0.4)
    dphi = np.abs(np.angle(np.exp(1j * (phi - phi0))))
    width = max(0.1, 2.5 * c.px / f.head_a)
    mask = (np.abs(rn - 1.0) < width) & (dphi < half_span)
    jag = 1.0 + 0.7 * width * np.sin(phi * rng.uniform(18, 30) + rng.uniform(0, 2 * math.pi))
    alpha = np.clip(0.5 - (rn - jag) * np.float32(f.head_a / c.px), 0, 1)[..., None]
    mixed = layers["under"] + alpha * (layers["skin"] - layers["under"])
    bleed = ndimage.uniform_filter(mixed, size=(3, 3, 1), mode="nearest")
    edited = 0.5 * mixed + 0.5 * bleed + np.float32(0.08) * (rng.uniform(0, 1, 3).astype(np.float32) - 0.5)
    c.img[mask] = edited[mask]
    return mask


def _droplet_artifact(c: _Canvas, f: _Face, rng: np.random.Generator) -> Array:
    cu, cv = rng.uniform(-1.05, 1.05) * f.head_a, rng.uniform(-0.95, 0.6) * f.head_b
    r = rng.uniform(0.045, 0.07)
    d = np.sqrt((c.u - np.float32(cu)) ** 2 + (c.v - np.float32(cv)) ** 2) / np.float32(r)
    inside = np.clip(0.5 - (d - 1.0) * np.float32(r / c.px), 0, 1)
    tint = rng.uniform(0.2, 0.9, 3).astype(np.float32)
    body = (0.5 * c.img + 0.5 * tint) * (0.75 + 0.45 * np.minimum(d, 1.0) ** 2)[..., None]
    c.paint(inside, body)
    win = c.window(cu, cv, r)
    c.paint(c.ellipse(cu - 0.35 * r, cv - 0.35 * r, 0.3 * r, 0.3 * r, win=win), (1.0, 1.0, 1.0), win)
    return d < 1.0 + 1.5 * c.px / r


def _mask_regions(mask: Array) -> list[Region]:
    """One ellipse (row, col, r_row, r_col) per connected component of a binary mask."""
    labels, count = ndimage.label(mask)
    regions = []
    for k in range(1, count + 1):
        rows, cols = np.nonzero(labels == k)
        regions.append(
            (
                float(rows.mean()),
                float(cols.mean()),
                max(2.0 * float(rows.std()), 1.0),
                max(2.0 * float(cols.std()), 1.0),
            )
        )
    return regions


def shortcut_box(size: int, config: GeneratorConfig | None = None) -> tuple[int, int, int, int]:
    """Pixel box ``(row0, col0, row1, col1)`` (end-exclusive) of the shortcut stamp, top-left corner."""
    config = config or GeneratorConfig()
    side = max(2, round(config.shortcut_size * size / _REFERENCE_SIZE))
    margin = round(2 * size / _REFERENCE_SIZE)
    return margin, margin, margin + side, margin + side


def _add_shortcut(img: Array, config: GeneratorConfig) -> None:
    r0, c0, r1, c1 = shortcut_box(img.shape[0], config)
    period = max(2, round(config.shortcut_period * img.shape[0] / _REFERENCE_SIZE))
    cols = np.arange(c1 - c0)
    stripes = np.where((cols % period) < period / 2, 1.0, -1.0).astype(np.float32)
    img[r0:r1, c0:c1] += np.float32(config.shortcut_amplitude) * stripes[None, :, None]


def _checkerboard(size: int) -> Array:
    rows, cols = np.indices((size, size))
    return np.where((rows + cols) % 2 == 0, 1.0, -1.0).astype(np.float32)


def _apply_artifact(
    c: _Canvas,
    f: _Face,
    rng: np.random.Generator,
    family: str | None,
    side: int,
    layers: dict[str, Array],
    strength: float,
) -> Array:
    if family is None:
        return np.zeros((c.size, c.size), bool)
    artifacts: dict[str, Callable[[], Array]] = {
        "iris": lambda: _iris_mask(c, f, side),
        "earring": lambda: _draw_bad_earring(c, f, rng, side),
        "mouth": lambda: _mouth_artifact(c, f, rng),
        "hair": lambda: _hair_artifact(c, f, rng, layers["hair_alpha"]),
        "boundary": lambda: _boundary_artifact(c, f, rng, layers),
        "droplet": lambda: _droplet_artifact(c, f, rng),
    }
    clean = c.img.copy()
    mask = artifacts[family]()
    c.img = clean + np.float32(strength) * (c.img - clean)
    valid = np.zeros_like(mask)
    valid[1:-1, 1:-1] = True  # keep the artifact inside the frame (off the outermost pixel ring)
    return mask & valid
