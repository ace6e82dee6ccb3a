"""Batched image operations on the device: range checks and noise; the blurs, re-exported from :mod:`salience_lib.blur`.

Images are ``(B, C, H, W)`` floating tensors with values in [0, 1]; models normalise internally.
Every function here that perturbs images refuses others (:func:`check_unit_images`): salt and pepper
are 0 and 1, noise is clipped to [0, 1], and a 0–255 or ImageNet-normalised batch would be measured
as nonsense with saturated probabilities. Geometric transforms with validity masks live in
:mod:`salience_lib.transforms`.
"""

from __future__ import annotations

import math

import torch

from salience_lib.blur import (
    BLUR_TILES,
    band_matrix,
    blur_levels,
    blur_matrix,
    gaussian_blur,
    gaussian_kernel1d,
    spatially_varying_blur,
)
from salience_lib.maps import check_finite

__all__ = [
    "BLUR_TILES",
    "UNIT_TOLERANCE",
    "band_matrix",
    "blur_levels",
    "blur_matrix",
    "check_images",
    "check_unit_images",
    "gaussian_blur",
    "gaussian_kernel1d",
    "gaussian_noise",
    "outside_unit_range",
    "salt_and_pepper",
    "spatially_varying_blur",
]


def check_images(images: object, name: str = "images") -> torch.Tensor:
    """Check that ``images`` is a non-empty floating ``(B, C, H, W)`` tensor; raise naming ``name``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"`{name}` must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"`{name}` must contain at least one image, got batch size 0")
    return images


#: How far outside [0, 1] an image value may lie (float rounding of a resize or a blur), at least.
UNIT_TOLERANCE = 1e-6


def _tolerance(dtype: torch.dtype) -> float:
    return max(UNIT_TOLERANCE, torch.finfo(dtype).eps)


def outside_unit_range(images: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: which images hold a NaN, an inf or a value outside [0, 1] (beyond float rounding)."""
    tolerance = _tolerance(images.dtype)
    flat = images.detach().flatten(1)
    return ~(torch.isfinite(flat) & (flat >= -tolerance) & (flat <= 1 + tolerance)).all(dim=1)


def check_unit_images(images: object, name: str = "images") -> torch.Tensor:
    """:func:`check_images`, and every value finite and in [0, 1] (to float rounding); raise naming ``name``.

    The one range check of the library: every function that perturbs images and the engine's input
    call it. One host synchronisation (the batch's min and max).

    Raises:
        TypeError, ValueError: see :func:`check_images`; NaN or inf values, or values outside
            [0, 1] such as 0–255 floats or an already normalised batch (the message says which images).
    """
    images = check_images(images, name)
    lo, hi = torch.stack(torch.aminmax(images.detach())).float().tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        check_finite((f"`{name}`", images))  # names the images; NaN reaches min and max
    tolerance = _tolerance(images.dtype)
    if lo < -tolerance or hi > 1 + tolerance:
        rows = outside_unit_range(images).nonzero()[:, 0].tolist()
        shown = ", ".join(str(r) for r in rows[:8]) + (", ..." if len(rows) > 8 else "")
        hint = " (0–255 values: divide by 255)" if hi > 2 and lo >= -tolerance else ""
        raise ValueError(
            f"`{name}` must hold values in [0, 1], got values from {lo:.4g} to {hi:.4g}{hint} in {len(rows)} of "
            f"{images.shape[0]} images (batch positions {shown}): pass images in [0, 1] and normalise inside "
            "the model (e.g. load_checkpoint(normalize=...))"
        )
    return images


def salt_and_pepper(
    images: torch.Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
    per_channel: bool = False,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """Salt-and-pepper noise: a ``fraction`` of the image replaced by ``low`` or ``high`` (50/50).

    * ``per_channel=True`` — the authors' noise (Crum et al. 2023, ``noise-varying-intensities.py``:
      skimage's ``random_noise(image, mode="s&p", amount=fraction)``): every *element* (each colour
      channel of each pixel) is replaced independently with probability ``fraction``, by salt or
      pepper with probability 1/2 each — coloured noise, and the number replaced is binomial.
      (Their 8-bit round trip, ``(noisy * 255).astype(uint8)``, can lower a kept value by one grey
      level where ``k/255·255`` falls just below ``k``; that 1/255 is not reproduced.)
    * ``per_channel=False`` — this project's variant: exactly ``round(fraction·H·W)`` pixel positions
      per image, all channels of a chosen pixel set to the same value (black or white).

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
        fraction: share of elements (or pixels) replaced, in [0, 1].
        generator: optional ``torch.Generator`` on the images' device, for reproducibility.
        per_channel: the authors' per-element noise (above).
        low, high: the "pepper" and "salt" values.

    Raises:
        ValueError: images outside [0, 1] or not finite (:func:`check_unit_images`), a bad ``fraction``.
    """
    images = check_unit_images(images)
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"`fraction` must lie in [0, 1], got {fraction}")
    batch, _, height, width = images.shape
    low_value = torch.tensor(low, dtype=images.dtype, device=images.device)
    high_value = torch.tensor(high, dtype=images.dtype, device=images.device)
    if per_channel:
        flipped = torch.rand(images.shape, generator=generator, device=images.device) < float(fraction)
        salt = torch.rand(images.shape, generator=generator, device=images.device) < 0.5
        return torch.where(flipped, torch.where(salt, high_value, low_value), images)
    n_pixels = height * width
    count = round(float(fraction) * n_pixels)
    if count == 0:
        return images.clone()
    scores = torch.rand(batch, n_pixels, generator=generator, device=images.device)
    rank = scores.argsort(dim=1).argsort(dim=1)
    chosen = (rank < count).view(batch, 1, height, width)
    salt = torch.rand(batch, 1, height, width, generator=generator, device=images.device) < 0.5
    return torch.where(chosen, torch.where(salt, high_value, low_value), images)


def gaussian_noise(
    images: torch.Tensor, sigma: float, generator: torch.Generator | None = None, clip: bool = True
) -> torch.Tensor:
    """Add i.i.d. Gaussian noise of standard deviation ``sigma`` (then clip to [0, 1] unless told not to).

    Raises:
        ValueError: images outside [0, 1] or not finite (:func:`check_unit_images`), ``sigma < 0``.
    """
    images = check_unit_images(images)
    if sigma < 0:
        raise ValueError(f"`sigma` must be >= 0, got {sigma}")
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    out = images + float(sigma) * noise
    return out.clamp(0.0, 1.0) if clip else out
