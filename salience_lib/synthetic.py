"""Procedural synthetic-face data set in CYBORG's layout (SPEC §5).

No face data set can be downloaded here, so this module draws stylised faces (head, skin, eyes,
brows, nose, mouth, ears, hair, neck, clothes, background) with random pose, shape and colours.
"Real" faces are clean. "Synthetic" faces come from generator *families*, each leaving one
localised artifact where GAN artifacts are known to appear (:data:`FAMILIES`). Every artifact
region also carries a faint period-2 checkerboard (the shared low-level signature of GAN
upsampling), and a faint striped corner stamp (the *shortcut cue*) is correlated with the label in
train/val and decorrelated in test. Each image is drawn from its own random stream derived from
``(seed, index)``, so files are byte-identical for a given seed and independent of the order (or
the number of processes) in which they are generated.

Layout written by :func:`generate_dataset` (``<out>/``)::

    dataset.csv      header-less CYBORG CSV, lines ``split,label,path`` (split: train/val/test,
                     label: Real/Synthetic, path relative to <out>)
    metadata.csv     with header: index,path,split,label,family,group,shortcut,mask_path,heatmap_path
    nonface.csv      with header: index,path,kind (out-of-set images; not part of dataset.csv)
    info.json        generator version, config, size, seed, counts, families, shortcut box
    <split>/<family>/<index>.png         images (family "real" for Real images)
    nonface/<kind>/<index>.png           non-face images (textures, shapes)
    heatmaps/<index>.png                 human-like annotation, 8-bit, every train/val image
    masks/<index>.png                    exact artifact mask (0/255), every Synthetic image

File names (``<index>.png``) are unique across the data set, so ``heatmaps/`` and ``masks/``
are flat folders keyed by the image's file name, as in CYBORG's training code.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

__all__ = [
    "FAMILIES",
    "GENERATOR_VERSION",
    "NONFACE_KINDS",
    "Face",
    "GeneratorConfig",
    "Sample",
    "SampleSpec",
    "generate_dataset",
    "human_annotation",
    "main_make_data",
    "plan_dataset",
    "render_face",
    "render_nonface",
    "render_sample",
    "shortcut_box",
]

GENERATOR_VERSION = "1.0"
FAMILIES = ("iris", "mouth", "hair", "boundary", "earring", "droplet")
NONFACE_KINDS = ("shapes", "stripes", "clouds")
SPLITS = ("train", "val", "test")
CSV_NAME, METADATA_NAME, NONFACE_NAME, INFO_NAME = "dataset.csv", "metadata.csv", "nonface.csv", "info.json"
METADATA_FIELDS = ("index", "path", "split", "label", "family", "group", "shortcut", "mask_path", "heatmap_path")
_REFERENCE_SIZE = 64  # sizes given "at 64 px" scale linearly with the image side
_UNIT_INTERVAL = ("real_fraction", "artifact_strength")  # with every *rate* field: must lie in [0, 1]

Array = np.ndarray
Window = tuple[slice, slice]


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that sets the difficulty of the task; defaults follow SPEC §5's measured lessons.

    The shortcut must sit in a narrow window (SPEC §5): XENT should take it in part, so that human
    guidance has something to fix. Measured on this generator (64 px, n = 3600, SPEC's small CNN,
    16 epochs, two seeds), balanced accuracy on cue-conflict test images (seen-family Synthetic
    without the stamp vs Real with it): checker 0.035 -> XENT 0.44, 0.61 and, with the CAM term at
    weight 0.5, 0.71, 0.77; checker 0.04 -> XENT 0.87, 0.87, CAM 0.93, 0.92; with an earlier
    version of the drawing code, 0.05 -> XENT 0.94-0.97 (stamp ignored), 0.03 -> 0.16 (stamp
    wins). With the library's own training (salience_lib.training, 5 seeds per recipe, real-image
    annotations included), checker 0.035 put *both* recipes below chance on cue-conflict images
    (seen families: XENT 0.32, CYBORG 0.48; mean over seeds): outside the window, since SPEC §5
    wants XENT to take the cue only in part. Hence 0.04, not the prototype's 0.05 (its images
    differed). The book reports what this setting gives; these numbers choose the trap, not the result.

    Attributes:
        seen_families: artifact families in train, val and test.
        unseen_families: families only in test.
        artifact_strength: visibility of each family's own edit in [0, 1]: the edited pixels are
            ``clean + strength * (edited - clean)``. For ``iris`` the colour and size change scale
            instead; for ``earring`` the malformed earring fades while the plain one on the other
            ear stays. 0 leaves only the shared checkerboard (and a lone earring).
        checker_amplitude: the shared period-2 checkerboard added inside every artifact region,
            ``± amplitude`` on [0, 1] intensities. 0 removes the shared signature (unseen families
            then sit at chance and the stamp wins); from about 0.05 the task is easy enough that
            the stamp is ignored.
        shortcut_amplitude: the striped corner stamp, ``± amplitude`` square wave.
        shortcut_size: side of the stamp at 64 px (scaled with the image side).
        shortcut_period: stripe period in pixels at 64 px (scaled, at least 2).
        shortcut_rate_synthetic: fraction of train/val Synthetic images with the stamp.
        shortcut_rate_real: fraction of train/val Real images with the stamp.
        shortcut_rate_test: fraction of test images (either label) with the stamp.
        noise_sigma: Gaussian sensor noise on every image (faces and non-faces).
        annotators: simulated annotators per human-like salience map.
        real_fraction: fraction of Real images in train, val and test.
        val_fraction, test_fraction, nonface_fraction: sizes of those sets relative to ``n`` (train).
    """

    seen_families: tuple[str, ...] = ("iris", "mouth", "hair")
    unseen_families: tuple[str, ...] = ("boundary", "earring", "droplet")
    artifact_strength: float = 1.0
    checker_amplitude: float = 0.04
    shortcut_amplitude: float = 0.10
    shortcut_size: int = 12
    shortcut_period: int = 4
    shortcut_rate_synthetic: float = 0.9
    shortcut_rate_real: float = 0.1
    shortcut_rate_test: float = 0.5
    noise_sigma: float = 0.02
    annotators: int = 4
    real_fraction: float = 0.5
    val_fraction: float = 1 / 6
    test_fraction: float = 1 / 3
    nonface_fraction: float = 1 / 12

    def __post_init__(self) -> None:
        object.__setattr__(self, "seen_families", tuple(self.seen_families))
        object.__setattr__(self, "unseen_families", tuple(self.unseen_families))
        families = self.seen_families + self.unseen_families
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {list(FAMILIES)}")
        if not self.seen_families or len(set(families)) != len(families):
            raise ValueError(
                f"seen_families must be non-empty and disjoint from unseen_families, got "
                f"{list(self.seen_families)} and {list(self.unseen_families)}"
            )
        for item in fields(self):
            value, bounded = getattr(self, item.name), "rate" in item.name or item.name in _UNIT_INTERVAL
            if item.type in ("float", "int") and not 0 <= value <= (1 if bounded else math.inf):
                raise ValueError(f"`{item.name}` must lie in {'[0, 1]' if bounded else '[0, inf)'}, got {value}")
        if self.annotators < 1 or self.shortcut_size < 1 or self.shortcut_period < 2:
            raise ValueError("`annotators` and `shortcut_size` must be >= 1 and `shortcut_period` >= 2")


@dataclass(frozen=True)
class SampleSpec:
    """One planned image: its global index (file name), split, label, family and cue flag.

    ``split`` is ``"nonface"`` and ``label`` is empty for non-face images, whose ``family`` is the
    kind (:data:`NONFACE_KINDS`). Real faces have family ``"real"``.
    """

    index: int
    split: str
    label: str
    family: str
    shortcut: bool = False

    @property
    def name(self) -> str:
        """File name shared by the image, its heatmap and its mask."""
        return f"{self.index:06d}.png"

    @property
    def path(self) -> str:
        """Image path relative to the data-set root (forward slashes)."""
        return f"{self.split}/{self.family}/{self.name}"

    @property
    def has_heatmap(self) -> bool:
        """Human-like annotations exist for every train/val face image."""
        return self.split in ("train", "val")

    @property
    def has_mask(self) -> bool:
        """An exact artifact mask exists for every Synthetic image."""
        return self.label == "Synthetic"


Region = tuple[float, float, float, float]  # pixel ellipse (row, col, radius along rows, radius along cols)


@dataclass
class Sample:
    """A rendered sample: uint8 image ``(H, W, 3)``, bool mask or None, uint8 heatmap or None."""

    image: Array
    mask: Array | None = None
    heatmap: Array | None = None


class Face(NamedTuple):
    """Output of :func:`render_face`."""

    image: Array  # float32 (H, W, 3) in [0, 1]
    mask: Array  # bool (H, W): the exact artifact region, all False for a Real face
    regions: list[Region]  # what annotators mark: artifact components, or eyes and mouth if Real
    landmarks: list[Region]  # both eyes and the mouth


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


def render_face(
    rng: np.random.Generator,
    size: int,
    family: str | None = None,
    config: GeneratorConfig | None = None,
    shortcut: bool = False,
) -> Face:
    """Draw one face: a Real face (``family=None``) or a Synthetic one with ``family``'s artifact.

    Order: background, hair, head and features; the family's artifact; the period-2 checkerboard
    (``± config.checker_amplitude``) on the artifact mask; the shortcut stamp; sensor noise.

    Args:
        rng: the image's own random stream.
        size: image side in pixels (>= 16; features are small below 64).
        family: one of :data:`FAMILIES`, or None for a clean Real face.
        config: difficulty settings (:class:`GeneratorConfig`).
        shortcut: add the striped corner stamp (:func:`shortcut_box`).

    Returns:
        A :class:`Face`; the mask is non-empty for every family and lies off the outermost pixels.

    Raises:
        ValueError: unknown ``family`` or ``size`` < 16.
    """
    config = config or GeneratorConfig()
    if family is not None and family not in FAMILIES:
        raise ValueError(f"`family` must be None or one of {list(FAMILIES)}, got {family!r}")
    if size < 16:
        raise ValueError(f"`size` must be >= 16, got {size}")
    c = _Canvas(
        size, (rng.uniform(0.46, 0.54), rng.uniform(0.48, 0.56)), rng.uniform(0.9, 1.08), rng.uniform(-0.12, 0.12)
    )
    f = _Face(rng)
    strength = config.artifact_strength
    side = _iris_params(f, rng, strength) if family == "iris" else -1
    side = _earring_params(f, rng) if family == "earring" else side
    _background(c, rng)
    layers = _draw_head(c, f, rng)
    _draw_features(c, f)
    _draw_earrings(c, f)
    mask = _apply_artifact(c, f, rng, family, side, layers, strength)
    img = c.img
    img += np.float32(config.checker_amplitude) * (_checkerboard(size) * mask)[..., None]
    if shortcut:
        _add_shortcut(img, config)
    img += rng.normal(0.0, config.noise_sigma, img.shape).astype(np.float32)
    landmarks = _eye_mouth_regions(c, f)
    regions = _mask_regions(mask) if family is not None else landmarks
    return Face(np.clip(img, 0.0, 1.0), mask, regions, landmarks)


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


# ---------------------------------------------------------------------------------------------
# Human-like annotations and non-face images


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


# ---------------------------------------------------------------------------------------------
# Planning and rendering of a whole data set


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


def render_sample(spec: SampleSpec, seed: int, size: int, config: GeneratorConfig | None = None) -> Sample:
    """Render one planned sample from its own stream ``(seed, index)``; independent of any other sample."""
    config = config or GeneratorConfig()
    image_rng, note_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0, spec.index]).spawn(2))
    if spec.split == "nonface":
        return Sample(_to_uint8(render_nonface(image_rng, size, spec.family, config.noise_sigma)))
    family = None if spec.label == "Real" else spec.family
    face = render_face(image_rng, size, family, config, spec.shortcut)
    sample = Sample(_to_uint8(face.image), face.mask if spec.has_mask else None)
    if spec.has_heatmap:
        extra = face.landmarks if family is not None else ()
        sample.heatmap = _to_uint8(human_annotation(note_rng, face.regions, size, config.annotators, extra))
    return sample


def _to_uint8(x: Array) -> Array:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _save_png(array: Array, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _write_chunk(specs: Sequence[SampleSpec], root: str, seed: int, size: int, config: GeneratorConfig) -> int:
    base = Path(root)
    for spec in specs:
        sample = render_sample(spec, seed, size, config)
        _save_png(sample.image, base / spec.path)
        if sample.heatmap is not None:
            _save_png(sample.heatmap, base / "heatmaps" / spec.name)
        if sample.mask is not None:
            _save_png(sample.mask.astype(np.uint8) * 255, base / "masks" / spec.name)
    return len(specs)


def _write_all(
    plan: Sequence[SampleSpec], root: Path, seed: int, size: int, config: GeneratorConfig, workers: int, progress: bool
) -> None:
    bar = tqdm(total=len(plan), desc="make-data", unit="img", disable=not progress)
    try:
        if workers <= 1:
            for start in range(0, len(plan), 32):
                bar.update(_write_chunk(plan[start : start + 32], str(root), seed, size, config))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunks = [plan[start : start + 64] for start in range(0, len(plan), 64)]
            futures = [pool.submit(_write_chunk, chunk, str(root), seed, size, config) for chunk in chunks]
            for future in futures:
                bar.update(future.result())
    finally:
        bar.close()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _metadata_row(spec: SampleSpec, config: GeneratorConfig) -> list[object]:
    group = "real" if spec.label == "Real" else "seen" if spec.family in config.seen_families else "unseen"
    mask, heatmap = (
        (f"masks/{spec.name}" if spec.has_mask else ""),
        (f"heatmaps/{spec.name}" if spec.has_heatmap else ""),
    )
    return [spec.index, spec.path, spec.split, spec.label, spec.family, group, int(spec.shortcut), mask, heatmap]


def _info(plan: Sequence[SampleSpec], n: int, seed: int, size: int, config: GeneratorConfig) -> dict:
    counts: dict[str, dict] = {}
    for spec in plan:
        split = counts.setdefault(spec.split, {"total": 0, "shortcut": 0, "labels": {}, "families": {}})
        split["total"] += 1
        split["shortcut"] += int(spec.shortcut)
        if spec.label:
            split["labels"][spec.label] = split["labels"].get(spec.label, 0) + 1
        split["families"][spec.family] = split["families"].get(spec.family, 0) + 1
    return {
        "generator": "salience_lib.synthetic",
        "version": GENERATOR_VERSION,
        "n": n,
        "seed": seed,
        "size": size,
        "config": asdict(config),
        "seen_families": list(config.seen_families),
        "unseen_families": list(config.unseen_families),
        "counts": counts,
        "shortcut_box": list(shortcut_box(size, config)),
        "files": {
            "csv": CSV_NAME,
            "metadata": METADATA_NAME,
            "nonface": NONFACE_NAME,
            "heatmaps": "heatmaps/<image file name>",
            "masks": "masks/<image file name>",
        },
    }


def _write_tables(
    plan: Sequence[SampleSpec], root: Path, n: int, seed: int, size: int, config: GeneratorConfig
) -> None:
    faces = [s for s in plan if s.split != "nonface"]
    _write_text_atomic(root / CSV_NAME, _csv_text([(s.split, s.label, s.path) for s in faces]))
    _write_text_atomic(root / METADATA_NAME, _csv_text([METADATA_FIELDS] + [_metadata_row(s, config) for s in faces]))
    nonface = [(s.index, s.path, s.family) for s in plan if s.split == "nonface"]
    _write_text_atomic(root / NONFACE_NAME, _csv_text([("index", "path", "kind"), *nonface]))
    _write_text_atomic(root / INFO_NAME, json.dumps(_info(plan, n, seed, size, config), indent=2) + "\n")


def generate_dataset(
    out: str | os.PathLike[str],
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    config: GeneratorConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a complete data set with ``n`` training images to ``out`` (layout: module docstring).

    Everything is written into a hidden sibling folder that is renamed to ``out`` only when complete,
    so a folder named ``out`` is never half-written. Same ``seed`` -> byte-identical files, whatever
    ``workers`` is.

    Raises:
        ValueError: bad ``n``, ``size``, ``seed`` or ``workers``.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    config = config or GeneratorConfig()
    if size < 16 or seed < 0 or workers < 1:
        raise ValueError(
            f"need size >= 16, seed >= 0 and workers >= 1, got size={size}, seed={seed}, workers={workers}"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    plan = plan_dataset(n, seed, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        _write_all(plan, tmp, seed, size, config, workers, progress)
        _write_tables(plan, tmp, n, seed, size, config)
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_dir(new: Path, out: Path, overwrite: bool) -> None:
    if not out.exists():
        os.replace(new, out)
        return
    if not overwrite:  # another process finished the same folder meanwhile
        raise FileExistsError(f"{out} appeared while it was being generated; not replacing it")
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def main_make_data(args: argparse.Namespace) -> Path:
    """Entry point of ``python -m salience_lib make-data`` (see :mod:`salience_lib.cli`).

    Optional attributes of ``args`` (None or absent = the :class:`GeneratorConfig` default):
    ``checker_amplitude``, ``shortcut_amplitude``, ``artifact_strength``; also ``workers``,
    ``overwrite`` and ``quiet``.
    """
    names = ("checker_amplitude", "shortcut_amplitude", "artifact_strength")
    config = GeneratorConfig(**{k: getattr(args, k) for k in names if getattr(args, k, None) is not None})
    options = {"workers": getattr(args, "workers", 1), "overwrite": getattr(args, "overwrite", False)}
    progress = not getattr(args, "quiet", False)
    out = generate_dataset(
        args.out, args.n, size=args.size, seed=args.seed, config=config, progress=progress, **options
    )
    info = json.loads((out / INFO_NAME).read_text(encoding="utf-8"))
    totals = {split: counts["total"] for split, counts in info["counts"].items()}
    print(f"wrote {out}: {totals}")
    return out
