"""Rendering one image: a face with its artifact, stamp and noise, or a non-face, with its mask and heatmap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from salience_lib.data.synthetic.annotation import human_annotation
from salience_lib.data.synthetic.artifacts import (
    _add_shortcut,
    _apply_artifact,
    _checkerboard,
    _earring_params,
    _iris_params,
    _mask_regions,
)
from salience_lib.data.synthetic.config import FAMILIES, Array, GeneratorConfig, Region, SampleSpec
from salience_lib.data.synthetic.faces import (
    _background,
    _Canvas,
    _draw_earrings,
    _draw_features,
    _draw_head,
    _eye_mouth_regions,
    _Face,
)
from salience_lib.data.synthetic.nonface import render_nonface

__all__ = ["Face", "Sample", "render_face", "render_sample"]


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
