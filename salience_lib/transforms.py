"""Geometric transforms of image (or map) batches that also say which output pixels are valid.

A transform maps ``(B, C, H, W) -> ((B, C, H', W'), valid (B, H', W') bool)``; ``valid`` is False
where the transform brought a pixel in from outside the image (shift padding, rotation corners,
zoom-out borders). Applying the same transform to images and to salience maps is what geometric
consistency compares (:mod:`salience_lib.measures.geometric`). The transforms take any values (they
move pixels, with border replication or bilinear resampling, and never create values outside the
input's range), so maps pass through them too; the measure checks that its images lie in [0, 1]
(:func:`salience_lib.imaging.check_unit_images`).

Names accepted by :func:`get_transform`: ``hflip``, ``vflip``, ``rot90`` (counter-clockwise),
``rot-90``, ``shift_n``, ``shift_ne``, ``shift_e``, ``shift_se``, ``shift_s``, ``shift_sw``,
``shift_w``, ``shift_nw`` (by ``round(side/14)`` px, edge-replicate padding), and parametrised
``rotate:<degrees>``, ``scale:<factor>``, ``shift:<dy>,<dx>``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_TRANSFORMS",
    "Flip",
    "Rotate",
    "Rotate90",
    "Scale",
    "Shift",
    "Transform",
    "get_transform",
    "transform_maps",
]


class Transform(abc.ABC):
    """Base class: subclasses define ``name`` and :meth:`apply`."""

    name: str = "transform"

    @abc.abstractmethod
    def apply(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the transformed batch and its ``(B, H', W')`` boolean validity mask."""

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(f"`images` must be a (B, C, H, W) tensor, got {getattr(images, 'shape', images)!r}")
        return self.apply(images)

    def __repr__(self) -> str:
        return f"<Transform {self.name}>"


def _all_valid(x: torch.Tensor) -> torch.Tensor:
    return torch.ones((x.shape[0], *x.shape[-2:]), dtype=torch.bool, device=x.device)


@dataclass(frozen=True, repr=False)
class Flip(Transform):
    """Mirror along the width (``horizontal=True``) or the height."""

    horizontal: bool = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return "hflip" if self.horizontal else "vflip"

    def apply(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = images.flip(-1 if self.horizontal else -2)
        return out, _all_valid(out)


@dataclass(frozen=True, repr=False)
class Rotate90(Transform):
    """Rotation by ``k`` quarter turns counter-clockwise (``k = -1``: clockwise), exact."""

    k: int = 1

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"rot{90 * self.k}"

    def apply(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.rot90(images, self.k, dims=(-2, -1))
        return out, _all_valid(out)


_COMPASS = {
    "n": (-1, 0),
    "ne": (-1, 1),
    "e": (0, 1),
    "se": (1, 1),
    "s": (1, 0),
    "sw": (1, -1),
    "w": (0, -1),
    "nw": (-1, -1),
}


@dataclass(frozen=True, repr=False)
class Shift(Transform):
    """Translate by ``(dy, dx)`` pixels with edge-replicate padding: ``out[y, x] = in[y − dy, x − dx]``.

    With ``direction`` (a compass point), the step is ``pixels`` or, if ``None``, ``round(side/14)``
    (at least 1) — the SPEC's default ``s``.
    """

    dy: int = 0
    dx: int = 0
    direction: str | None = None
    pixels: int | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        if self.direction is not None:
            return f"shift_{self.direction}"
        return f"shift:{self.dy},{self.dx}"

    def offsets(self, height: int, width: int) -> tuple[int, int]:
        """The ``(dy, dx)`` applied to an image of the given size."""
        if self.direction is None:
            return self.dy, self.dx
        uy, ux = _COMPASS[self.direction]
        step_y = self.pixels if self.pixels is not None else max(1, round(height / 14))
        step_x = self.pixels if self.pixels is not None else max(1, round(width / 14))
        return uy * step_y, ux * step_x

    def apply(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = images.shape[-2:]
        dy, dx = self.offsets(height, width)
        if abs(dy) >= height or abs(dx) >= width:
            raise ValueError(f"shift ({dy}, {dx}) is not smaller than the image ({height}×{width})")
        pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
        padded = F.pad(images, pad, mode="replicate")
        top, left = max(-dy, 0), max(-dx, 0)
        out = padded[..., top : top + height, left : left + width]
        rows = torch.arange(height, device=images.device) - dy
        cols = torch.arange(width, device=images.device) - dx
        valid = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
        return out, valid.expand(images.shape[0], height, width)


def _resample(images: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear resampling by a 2×3 affine ``theta`` (output → input, normalised coordinates)."""
    batch, channels, height, width = images.shape
    theta = theta.to(images.dtype).expand(batch, 2, 3)
    grid = F.affine_grid(theta, [batch, channels, height, width], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # Valid: the sample lies within the hull of input pixel centres (tolerance for round-off).
    eps = 1e-4
    gx, gy = grid[..., 0], grid[..., 1]
    valid = (gx.abs() <= 1 - 1 / width + eps) & (gy.abs() <= 1 - 1 / height + eps)
    return out, valid


@dataclass(frozen=True, repr=False)
class Rotate(Transform):
    """Rotation by ``degrees`` counter-clockwise about the centre, bilinear; corners are invalid."""

    degrees: float = 15.0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"rotate:{self.degrees:g}"

    def apply(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = images.shape[-2:]
        angle = math.radians(self.degrees)
        cos, sin = math.cos(angle), math.sin(angle)
        # Output pixel (x, y) samples the input at R(-angle)·(x, y); aspect ratio corrected.
        theta = torch.tensor(
            [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]], device=images.device
        )
        return _resample(images, theta[None])


@dataclass(frozen=True, repr=False)
class Scale(Transform):
    """Zoom by ``factor`` about the centre (> 1 enlarges), bilinear; zoom-out borders are invalid."""

    factor: float = 1.1

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"scale:{self.factor:g}"

    def apply(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.factor <= 0:
            raise ValueError(f"scale factor must be > 0, got {self.factor}")
        inverse = 1.0 / self.factor
        theta = torch.tensor([[inverse, 0.0, 0.0], [0.0, inverse, 0.0]], device=images.device)
        return _resample(images, theta[None])


DEFAULT_TRANSFORMS: tuple[str, ...] = (
    "hflip", "vflip", "rot90", "rot-90",
    "shift_n", "shift_ne", "shift_e", "shift_se", "shift_s", "shift_sw", "shift_w", "shift_nw",
    "rotate:30", "scale:1.25",
)  # fmt: skip
"""The SPEC's standard set (14): flips, ±90° rotations, the 8 compass shifts, an arbitrary rotation (30°)
and a zoom (×1.25)."""

_FIXED: dict[str, Transform] = {
    "hflip": Flip(True),
    "vflip": Flip(False),
    "rot90": Rotate90(1),
    "rot-90": Rotate90(-1),
    **{f"shift_{d}": Shift(direction=d) for d in _COMPASS},
}


def get_transform(spec: str | Transform) -> Transform:
    """A :class:`Transform` from its name (see the module docstring) or the transform itself."""
    if isinstance(spec, Transform):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a transform must be a name or a Transform, got {type(spec).__name__}")
    if spec in _FIXED:
        return _FIXED[spec]
    kind, _, value = spec.partition(":")
    try:
        if kind == "rotate" and value:
            return Rotate(float(value))
        if kind == "scale" and value:
            return Scale(float(value))
        if kind == "shift" and value:
            dy, dx = (int(v) for v in value.split(","))
            return Shift(dy, dx)
    except ValueError as err:
        raise ValueError(f"cannot parse transform {spec!r}: {err}") from err
    known = ", ".join([*_FIXED, "rotate:<deg>", "scale:<factor>", "shift:<dy>,<dx>"])
    raise ValueError(f"unknown transform {spec!r}; known: {known}")


def transform_maps(transform: Transform, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to ``(B, H, W)`` maps; returns ``(maps', valid)``."""
    out, valid = transform(maps[:, None])
    return out[:, 0], valid
