"""Batched image operations on the device: Gaussian blur, noise, and the spatially varying blur.

Images are ``(B, C, H, W)`` floating tensors with values in [0, 1]; models normalise internally.
Every function here that perturbs images refuses others (:func:`check_unit_images`): salt and pepper
are 0 and 1, noise is clipped to [0, 1], and a 0–255 or ImageNet-normalised batch would be measured
as nonsense with saturated probabilities. Geometric transforms with validity masks live in
:mod:`salience_lib.transforms`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from salience_lib.maps import check_finite, minmax_normalise, resize_maps

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


def gaussian_kernel1d(
    sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Normalised 1-D Gaussian :math:`\propto e^{-x^2 / 2\sigma^2}`, radius ``int(truncate·σ + 0.5)``.

    The same kernel as ``scipy.ndimage.gaussian_filter`` (``truncate=4``); ``σ = 0`` gives ``[1]``.
    """
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError(f"`sigma` must be a finite number >= 0, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    if radius == 0:
        return torch.ones(1, dtype=dtype, device=device)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def blur_matrix(n: int, sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``(n, n)`` matrix ``T`` with ``T @ x`` = 1-D Gaussian blur of ``x`` with edge-replicate borders.

    Row ``i`` holds the kernel centred on ``i``; taps that fall outside ``[0, n)`` are added to the
    edge sample, which is exactly what replicate padding does.
    """
    kernel = gaussian_kernel1d(sigma, truncate, torch.float64, device)
    radius = kernel.numel() // 2
    rows = torch.arange(n, device=device)[:, None]
    cols = (rows + torch.arange(-radius, radius + 1, device=device)[None, :]).clamp(0, n - 1)
    matrix = torch.zeros(n, n, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, cols, kernel.expand(n, -1).contiguous())
    return matrix.to(dtype)


def gaussian_blur(images: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of every channel with edge-replicate borders; images in [0, 1].

    Equal to ``scipy.ndimage.gaussian_filter(x, (0, 0, σ, σ), mode="nearest", truncate=truncate)``.
    Computed as two matrix products with :func:`blur_matrix` (``T_H · X · T_Wᵀ``): a dense GEMM does
    more multiply-adds than a ``2r+1``-tap convolution, but runs them far faster than a
    single-channel ``conv2d`` does, on CPU and GPU alike. ``σ = 0`` returns the input unchanged.

    Raises:
        ValueError: images outside [0, 1] or not finite (:func:`check_unit_images`), a bad ``sigma``.
    """
    return _gaussian_blur(check_unit_images(images), sigma, truncate)


def _gaussian_blur(images: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """:func:`gaussian_blur` of any ``(B, C, H, W)`` values (maps, already checked images)."""
    if int(truncate * float(sigma) + 0.5) == 0:
        gaussian_kernel1d(float(sigma), truncate)  # validates sigma
        return images
    height, width = images.shape[-2:]
    rows = blur_matrix(height, float(sigma), truncate, images.dtype, images.device)
    cols = blur_matrix(width, float(sigma), truncate, images.dtype, images.device)
    return rows @ (images @ cols.T)


def salt_and_pepper(
    images: torch.Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """Replace exactly ``round(fraction·H·W)`` pixel positions per image by ``low`` or ``high`` (50/50).

    All channels of a chosen pixel get the same value (black or white), as in the paper's protocol
    (Crum et al. 2023, §IV-B): fractions 0 … 1 of the pixels.

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
        fraction: share of pixels replaced, in [0, 1].
        generator: optional ``torch.Generator`` on the images' device, for reproducibility.
        low, high: the "pepper" and "salt" values.

    Raises:
        ValueError: images outside [0, 1] or not finite (:func:`check_unit_images`), a bad ``fraction``.
    """
    images = check_unit_images(images)
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"`fraction` must lie in [0, 1], got {fraction}")
    batch, _, height, width = images.shape
    n_pixels = height * width
    count = round(float(fraction) * n_pixels)
    if count == 0:
        return images.clone()
    scores = torch.rand(batch, n_pixels, generator=generator, device=images.device)
    rank = scores.argsort(dim=1).argsort(dim=1)
    chosen = (rank < count).view(batch, 1, height, width)
    salt = torch.rand(batch, 1, height, width, generator=generator, device=images.device) < 0.5
    values = torch.where(
        salt,
        torch.tensor(high, dtype=images.dtype, device=images.device),
        torch.tensor(low, dtype=images.dtype, device=images.device),
    )
    return torch.where(chosen, values, images)


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


def blur_levels(
    maps: torch.Tensor,
    size: tuple[int, int],
    smoothing_sigma: float,
    n_levels: int = 101,
) -> torch.Tensor:
    """Quantised salience levels ``(B, H, W)`` in ``{0, …, n_levels − 1}`` for the guided blur.

    The authors' recipe (Explain2Me): upsample the map to the image size, smooth it with a Gaussian
    of ``smoothing_sigma`` px, rescale to [0, 10] and round to 0.1 — level ``i`` means ``s = i/10``.
    """
    upsampled = resize_maps(maps.float(), size)
    if smoothing_sigma > 0:
        upsampled = _gaussian_blur(upsampled[:, None], smoothing_sigma)[:, 0]
    scaled = minmax_normalise(upsampled)
    return torch.round(scaled * (n_levels - 1)).long()


#: Square tile sides the spatially varying blur chooses from (each a multiple of the first).
BLUR_TILES: tuple[int, ...] = (8, 16, 32, 64)
#: Relative cost of gathering one patch element versus one multiply-add, for choosing a tile size.
_GATHER_COST = 64.0
#: Relative cost of one multiply-add in a whole-image blur (two large GEMMs) versus one in the tiles.
_DENSE_COST = 0.4


def band_matrix(tile: int, sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``(tile, tile + 2r)`` matrix whose row ``i`` holds the Gaussian kernel at columns ``i … i + 2r``.

    ``band @ p`` blurs a padded strip ``p`` of ``tile + 2r`` samples into its ``tile`` inner samples
    (a "valid" 1-D convolution with the :func:`gaussian_kernel1d` of radius ``r``).
    """
    kernel = gaussian_kernel1d(sigma, truncate, torch.float64, device)
    taps = kernel.numel()
    columns = torch.arange(tile, device=device)[:, None] + torch.arange(taps, device=device)[None, :]
    matrix = torch.zeros(tile, tile + taps - 1, dtype=torch.float64, device=device)
    matrix.scatter_(1, columns, kernel.expand(tile, -1).contiguous())
    return matrix.to(dtype)


def _tile_presence(levels: torch.Tensor, n_levels: int, base: int) -> torch.Tensor:
    """``(n_levels, B, H/base, W/base)`` bool: which ``base × base`` tiles contain each level.

    ``levels`` is padded to a multiple of ``base``, padding marked ``-1`` (never present).
    """
    batch, height, width = levels.shape
    tiles = levels.view(batch, height // base, base, width // base, base).permute(0, 1, 3, 2, 4)
    tiles = tiles.reshape(batch, height // base, width // base, base * base) + 1
    present = torch.zeros(batch, height // base, width // base, n_levels + 1, dtype=torch.bool, device=levels.device)
    present.scatter_(3, tiles, True)
    return present[..., 1:].permute(3, 0, 1, 2)


def _cheapest_tiling(present: torch.Tensor, radius: int) -> tuple[float, int, torch.Tensor]:
    """Estimated work, tile side and ``(B, H/T, W/T)`` active-tile mask of the cheapest tiling of one level.

    A tile of side ``T`` costs a gather of ``(T + 2r)²`` padded samples and two band products
    (``T·(T + 2r)² + T²·(T + 2r)`` multiply-adds): small tiles waste work on the halo when ``r`` is
    large, large tiles waste it on pixels of other levels.
    """
    base = BLUR_TILES[0]
    batch, rows, cols = present.shape
    best: tuple[float, int, torch.Tensor] | None = None
    for tile in BLUR_TILES:
        factor = tile // base
        if rows % factor or cols % factor:
            break
        active = present.view(batch, rows // factor, factor, cols // factor, factor).any(4).any(2)
        span = tile + 2 * radius
        cost = float(active.sum()) * (span * span * (tile + _GATHER_COST) + tile * tile * span)
        if best is None or cost < best[0]:
            best = (cost, tile, active)
    assert best is not None
    return best


def spatially_varying_blur(images: torch.Tensor, sigma_per_level: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    r"""Blur pixel ``p`` with Gaussian σ = ``sigma_per_level[levels[p]]`` (edge-replicate borders).

    Exactly what a per-pixel loop does — each output pixel is the pixel of the whole image blurred
    with that pixel's σ, :math:`y_p = (G_{\sigma(p)} * x)_p` — and what the authors' per-level loop
    does (Crum et al. 2023, Explain2Me), but only where it is needed: for each level present, the
    image is cut into square tiles, and only tiles that contain the level are blurred, each from
    its padded patch by two small band-matrix products (:func:`band_matrix`); the tile side (8 to
    64 px) is chosen per level to balance halo against unused pixels, and a level spread over
    most of a small image is blurred whole (:func:`gaussian_blur`) instead. Levels whose kernel has
    radius 0 keep the pixel unchanged. Work is a few batched products per level, no per-image loop.

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
        sigma_per_level: ``(L,)`` σ in pixels for each level.
        levels: ``(B, H, W)`` integer tensor with values in ``[0, L)``.

    Raises:
        ValueError: images outside [0, 1] or not finite (:func:`check_unit_images`), bad ``levels``.
    """
    return _spatially_varying_blur(check_unit_images(images), sigma_per_level, levels)


def _spatially_varying_blur(images: torch.Tensor, sigma_per_level: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """:func:`spatially_varying_blur` of images already checked by the caller (one range check per call chain)."""
    batch, channels, height, width = images.shape
    if levels.shape != (batch, height, width):
        raise ValueError(f"`levels` must have shape (B, H, W) = {(batch, height, width)}, got {tuple(levels.shape)}")
    sigmas = sigma_per_level.double().cpu().tolist()
    present_levels = torch.unique(levels).tolist()
    if present_levels[0] < 0 or present_levels[-1] >= len(sigmas):
        raise ValueError(
            f"`levels` must lie in [0, {len(sigmas)}), got values from {present_levels[0]} to {present_levels[-1]}"
        )
    radii = {level: int(4.0 * sigmas[level] + 0.5) for level in present_levels}
    blurred_levels = [level for level in present_levels if radii[level] > 0]
    if not blurred_levels:
        return images.clone()
    halo = max(radii[level] for level in blurred_levels)
    step = BLUR_TILES[-1]
    pad_h, pad_w = -height % step, -width % step
    padded = F.pad(images, (halo, halo + pad_w, halo, halo + pad_h), mode="replicate")
    levels = F.pad(levels.long(), (0, pad_w, 0, pad_h), value=-1)
    height_p, width_p = height + pad_h, width + pad_w
    presence = _tile_presence(levels, len(sigmas), BLUR_TILES[0])
    out = F.pad(images, (0, pad_w, 0, pad_h))
    whole_image_cost = _DENSE_COST * batch * height * width * (height + width)
    for level in blurred_levels:
        radius = radii[level]
        cost, tile, active = _cheapest_tiling(presence[level], radius)
        if cost > whole_image_cost:  # the level is everywhere: blur the whole image (two GEMMs)
            inside = (levels[:, :height, :width] == level)[:, None]
            visible = out[:, :, :height, :width]
            torch.where(inside, _gaussian_blur(images, sigmas[level]), visible, out=visible)
            continue
        b, ty, tx = active.nonzero(as_tuple=True)
        span = tile + 2 * radius
        window = padded[:, :, halo - radius: halo + height_p + radius, halo - radius: halo + width_p + radius]
        patches = window.unfold(2, span, tile).unfold(3, span, tile).permute(0, 2, 3, 1, 4, 5)[b, ty, tx]
        band = band_matrix(tile, sigmas[level], dtype=images.dtype, device=images.device)
        blurred = band @ patches @ band.T
        out_tiles = out.view(batch, channels, height_p // tile, tile, width_p // tile, tile).permute(0, 2, 4, 1, 3, 5)
        level_tiles = levels.view(batch, height_p // tile, tile, width_p // tile, tile).permute(0, 1, 3, 2, 4)
        inside = (level_tiles[b, ty, tx] == level)[:, None]
        out_tiles[b, ty, tx] = torch.where(inside, blurred, out_tiles[b, ty, tx])
    return out[:, :, :height, :width]
