"""Drawing a clean face: a canvas with face-local coordinates, palettes, random face parameters, features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from salience_lib.data.synthetic.config import Array, Region

__all__: list[str] = []  # building blocks of salience_lib.data.synthetic.render; nothing public

Window = tuple[slice, slice]


# ---------------------------------------------------------------------------------------------
# Drawing primitives: a canvas with pixel and face-local coordinates, soft (anti-aliased) shapes.


class _Canvas:
    """Pixel grid plus face-local coordinates ``(u, v)`` (unit = image side, origin = head centre)."""

    def __init__(self, size: int, centre: tuple[float, float], scale: float, angle: float) -> None:
        self.size, self.centre, self.scale, self.angle = size, centre, scale, angle
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.x, self.y = np.meshgrid(coords, coords)
        dx, dy = self.x - np.float32(centre[0]), self.y - np.float32(centre[1])
        cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        self.u = (cos * dx + sin * dy) / np.float32(scale)
        self.v = (-sin * dx + cos * dy) / np.float32(scale)
        self.px = 1.0 / (size * scale)  # one pixel in local units
        self.img = np.zeros((size, size, 3), np.float32)

    def to_pixels(self, u: float, v: float) -> tuple[float, float]:
        """Local point -> (row, column) in pixels."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        x = self.centre[0] + self.scale * (cos * u - sin * v)
        y = self.centre[1] + self.scale * (sin * u + cos * v)
        return y * self.size - 0.5, x * self.size - 0.5

    def window(self, cu: float, cv: float, radius: float) -> Window:
        """Pixel slices covering the disc of ``radius`` (local units) around a local point."""
        row, col = self.to_pixels(cu, cv)
        r = radius * self.size * self.scale + 2.0
        rows = slice(max(0, math.floor(row - r)), max(0, min(self.size, math.ceil(row + r) + 1)))
        cols = slice(max(0, math.floor(col - r)), max(0, min(self.size, math.ceil(col + r) + 1)))
        return rows, cols

    def ellipse(self, cu: float, cv: float, a: float, b: float, angle: float = 0.0, win: Window | None = None) -> Array:
        """Soft coverage in [0, 1] of an ellipse with semi-axes ``a``, ``b`` (local units), on ``win``."""
        u, v = (self.u, self.v) if win is None else (self.u[win], self.v[win])
        du, dv = u - np.float32(cu), v - np.float32(cv)
        if angle:
            cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
            du, dv = cos * du + sin * dv, -sin * du + cos * dv
        r = np.sqrt((du / np.float32(a)) ** 2 + (dv / np.float32(b)) ** 2)
        return np.clip(0.5 - (r - 1.0) * np.float32(min(a, b) / self.px), 0.0, 1.0)

    def paint(self, alpha: Array, colour: Array | Sequence[float], win: Window | None = None) -> None:
        """Alpha-blend ``colour`` (``(3,)``, or ``(H, W, 3)`` without ``win``) over the canvas."""
        img = self.img if win is None else self.img[win]
        img += alpha[..., None] * (np.asarray(colour, np.float32) - img)


def _skin_tone(rng: np.random.Generator) -> Array:
    """A tone on the piecewise-linear path through :data:`_SKIN`, lightly jittered."""
    t = rng.uniform(0, len(_SKIN) - 1)
    i = min(int(t), len(_SKIN) - 2)
    tone = _SKIN[i] + np.float32(t - i) * (_SKIN[i + 1] - _SKIN[i])
    return np.clip(tone + rng.normal(0.0, 0.015, 3).astype(np.float32), 0.0, 1.0)


def _pick(rng: np.random.Generator, palette: Array, jitter: float = 0.04) -> Array:
    colour = palette[rng.integers(len(palette))]
    return np.clip(colour + rng.normal(0.0, jitter, 3).astype(np.float32), 0.0, 1.0)


# Palettes, one RGB colour per row.
_SKIN = np.float32([0.96, 0.8, 0.69, 0.9, 0.7, 0.56, 0.78, 0.56, 0.42, 0.58, 0.4, 0.28, 0.38, 0.25, 0.18]).reshape(
    -1, 3
)
_HAIR = np.float32(
    [0.08, 0.06, 0.05, 0.25, 0.15, 0.08, 0.45, 0.3, 0.15, 0.85, 0.72, 0.45, 0.6, 0.25, 0.1, 0.7, 0.7, 0.7]
)
_IRIS = np.float32(
    [0.4, 0.25, 0.1, 0.2, 0.12, 0.06, 0.3, 0.5, 0.78, 0.32, 0.56, 0.34, 0.52, 0.56, 0.62, 0.58, 0.46, 0.18]
)
_METAL = np.float32([[0.88, 0.72, 0.25], [0.82, 0.82, 0.88]])
_CLOTHES = np.float32([[0.2, 0.3, 0.6], [0.6, 0.2, 0.2], [0.2, 0.5, 0.3], [0.8, 0.8, 0.8]])
_HAIR, _IRIS = _HAIR.reshape(-1, 3), _IRIS.reshape(-1, 3)


# ---------------------------------------------------------------------------------------------
# Faces


class _Face:
    """Random face parameters in local units (1 = image side at scale 1, origin = head centre)."""

    def __init__(self, rng: np.random.Generator) -> None:
        def uniform(low: float, high: float) -> float:
            return float(rng.uniform(low, high))

        self.head_a, self.head_b, self.jaw = uniform(0.25, 0.29), uniform(0.33, 0.37), uniform(0.1, 0.25)
        self.skin, self.hair = _skin_tone(rng), _pick(rng, _HAIR)
        self.long_hair, self.hairline = bool(rng.random() < 0.45), uniform(0.35, 0.55)
        self.eye_dx, self.eye_v = uniform(0.1, 0.12), uniform(-0.06, -0.02)
        self.eye_a, self.eye_b, self.gaze = uniform(0.05, 0.06), uniform(0.026, 0.032), uniform(-0.008, 0.008)
        iris, iris_r = _pick(rng, _IRIS, 0.03), uniform(0.021, 0.026)
        self.iris, self.iris_r, self.pupil_ratio = [iris, iris.copy()], [iris_r, iris_r], [1.0, 1.0]
        self.brow_gap, self.brow_tilt, self.nose_v = uniform(0.055, 0.07), uniform(-0.15, 0.2), uniform(0.07, 0.1)
        self.mouth_v, self.mouth_w, self.mouth_h = uniform(0.18, 0.22), uniform(0.07, 0.1), uniform(0.018, 0.026)
        self.open_mouth = bool(rng.random() < 0.4)
        self.ear_a, self.ear_b = uniform(0.035, 0.045), uniform(0.06, 0.075)
        self.ear_u, self.ear_v = self.head_a * 0.97, self.eye_v + 0.03
        earring = _pick(rng, _METAL, 0.02) if rng.random() < 0.3 else None
        self.earrings: list[Array | None] = [earring, earring]
        self.earring_r = uniform(0.015, 0.02)


def _background(c: _Canvas, rng: np.random.Generator) -> None:
    top, bottom = rng.uniform(0.12, 0.92, 3).astype(np.float32), rng.uniform(0.12, 0.92, 3).astype(np.float32)
    t = np.float32(rng.uniform(-1, 1)) * (c.x - 0.5) + c.y
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c.img[:] = top + t[..., None] * (bottom - top)


def _hair_layer(c: _Canvas, f: _Face, rng: np.random.Generator) -> Array:
    theta, phase = rng.uniform(1.2, 1.9), rng.uniform(0, 2 * math.pi)
    strands = np.sin((c.u * math.cos(theta) + c.v * math.sin(theta)) * np.float32(2 * math.pi / 0.06) + phase)
    return f.hair * (1.0 + np.float32(0.07) * strands)[..., None]


def _draw_head(c: _Canvas, f: _Face, rng: np.random.Generator) -> dict[str, Array]:
    """Background to hair: returns the layers artifacts need (``under``, ``skin``, ``hair_alpha``)."""
    hair_tex = _hair_layer(c, f, rng)
    back = np.zeros_like(c.u)
    if f.long_hair:
        back = c.ellipse(0.0, 0.08, f.head_a * 1.25, f.head_b * 1.12) * (c.v < 0.36)
        c.paint(back, hair_tex * np.float32(0.85))
    c.paint(c.ellipse(0.0, f.head_b * 0.85, f.head_a * 0.42, 0.16), f.skin * np.float32(0.8))
    c.paint(c.ellipse(0.0, f.head_b + 0.33, 0.5, 0.25), _pick(rng, _CLOTHES, 0.1))
    for side in (-1, 1):
        win = c.window(side * f.ear_u, f.ear_v, f.ear_b)
        c.paint(c.ellipse(side * f.ear_u, f.ear_v, f.ear_a, f.ear_b, win=win), f.skin * np.float32(0.88), win)
    under = c.img.copy()
    a_eff = np.float32(f.head_a) * (1.0 - np.float32(f.jaw) * np.clip(c.v / np.float32(f.head_b), 0, 1) ** 2)
    rn = np.sqrt((c.u / a_eff) ** 2 + (c.v / np.float32(f.head_b)) ** 2)
    shade = 1.0 - np.float32(0.18) * np.minimum(rn, 1.2) ** 2 + np.float32(rng.uniform(-0.06, 0.06)) * c.u / a_eff
    skin = f.skin * shade[..., None]
    c.paint(np.clip(0.5 - (rn - 1.0) * a_eff / np.float32(c.px), 0, 1), skin)
    wave = np.float32(0.02) * np.sin(c.u * np.float32(rng.uniform(10, 20)) + np.float32(rng.uniform(0, 6.3)))
    above = (c.v < -f.head_b * f.hairline + wave) | ((np.abs(c.u) > f.head_a * 0.85) & (c.v < f.eye_v - 0.03))
    top = c.ellipse(0.0, -0.03, f.head_a * 1.1, f.head_b * 1.05) * above
    c.paint(top, hair_tex)
    return {"under": under, "skin": skin, "hair_alpha": np.maximum(top, back), "rn": rn}


def _draw_eye(c: _Canvas, f: _Face, side: int) -> None:
    k = 0 if side < 0 else 1
    cu, r = side * f.eye_dx, f.iris_r[k]
    win = c.window(cu, f.eye_v, f.eye_a)
    sclera = c.ellipse(cu, f.eye_v, f.eye_a, f.eye_b, win=win)
    c.paint(sclera, (0.95, 0.94, 0.92), win)
    c.paint(c.ellipse(cu + f.gaze, f.eye_v, r, r, win=win) * sclera, f.iris[k], win)
    pupil = c.ellipse(cu + f.gaze, f.eye_v, 0.45 * r, 0.45 * r * f.pupil_ratio[k], win=win)
    c.paint(pupil * sclera, (0.03, 0.03, 0.03), win)
    c.paint(c.ellipse(cu + f.gaze - 0.3 * r, f.eye_v - 0.3 * r, 0.22 * r, 0.22 * r, win=win) * sclera, (1, 1, 1), win)
    bu, bv = side * (f.eye_dx + 0.005), f.eye_v - f.brow_gap
    win = c.window(bu, bv, f.eye_a * 1.15)
    c.paint(c.ellipse(bu, bv, f.eye_a * 1.15, 0.014, side * f.brow_tilt, win), f.hair * np.float32(0.7), win)


def _draw_features(c: _Canvas, f: _Face) -> None:
    for side in (-1, 1):
        _draw_eye(c, f, side)
    win = c.window(0.0, f.nose_v - 0.03, 0.08)
    c.paint(c.ellipse(0.0, f.nose_v - 0.045, 0.018, 0.06, win=win) * np.float32(0.3), f.skin * np.float32(0.75), win)
    for side in (-1, 1):
        nostril = c.ellipse(side * 0.022, f.nose_v, 0.012, 0.008, win=win)
        c.paint(nostril * np.float32(0.8), f.skin * np.float32(0.4), win)
    lips = np.clip(f.skin * np.float32(0.8) + np.float32([0.12, -0.05, -0.03]), 0, 1)
    h = f.mouth_h * (1.3 if f.open_mouth else 1.0)
    win = c.window(0.0, f.mouth_v, f.mouth_w)
    c.paint(c.ellipse(0.0, f.mouth_v, f.mouth_w, h, win=win), lips, win)
    if f.open_mouth:
        inner = c.ellipse(0.0, f.mouth_v, f.mouth_w * 0.8, h * 0.6, win=win)
        c.paint(inner, (0.25, 0.08, 0.08), win)
        teeth = c.ellipse(0.0, f.mouth_v - 0.35 * h, f.mouth_w * 0.7, h * 0.35, win=win)
        c.paint(inner * teeth, (0.93, 0.91, 0.86), win)


def _draw_earrings(c: _Canvas, f: _Face) -> None:
    for k, side in enumerate((-1, 1)):
        if f.earrings[k] is not None:
            u, v = side * f.ear_u, f.ear_v + f.ear_b * 0.95
            win = c.window(u, v, f.earring_r)
            c.paint(c.ellipse(u, v, f.earring_r, f.earring_r, win=win), f.earrings[k], win)


def _eye_mouth_regions(c: _Canvas, f: _Face) -> list[Region]:
    """Regions a human looks at on a face: both eyes and the mouth, as (row, col, r_row, r_col)."""
    unit = c.size * c.scale
    regions = []
    for side in (-1, 1):
        row, col = c.to_pixels(side * f.eye_dx, f.eye_v)
        regions.append((row, col, 1.6 * f.eye_b * unit, 1.3 * f.eye_a * unit))
    row, col = c.to_pixels(0.0, f.mouth_v)
    regions.append((row, col, 2.0 * f.mouth_h * unit, 1.3 * f.mouth_w * unit))
    return regions
