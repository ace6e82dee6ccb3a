r"""Gaussian blurs on the device: uniform, and spatially varying as the salience-guided degradation needs.

Every blur is separable and computed as matrix products — dense "blur matrices" for a whole image
(:func:`blur_matrix`), small band matrices for tiles (:func:`band_matrix`) — batched over images and
channels, with no per-image or per-pixel Python loop. Two choices let the same code reproduce
``scipy.ndimage.gaussian_filter`` (``truncate=4``) as the authors of Crum et al. (2023, Explain2Me,
``Measures/Degradation/main.py``) call it:

* ``border`` — ``"replicate"`` (scipy ``mode="nearest"``: the edge sample repeated without end; this
  project's choice) or ``"reflect"`` (scipy's default ``mode="reflect"`` = numpy's ``"symmetric"``:
  ``d c b a | a b c d | d c b a``, the edge sample repeated once; the authors'). The border is folded
  into the blur matrix (row ``i`` adds each tap to the sample it reflects to) or into the gather of
  the tiles' padded patches (:func:`border_index`).
* ``bits=8`` — the values are 8-bit grey levels (images in [0, 1] are taken as ``round(255 x)``) and
  every 1-D pass is cast as scipy casts a pass written to a ``uint8`` output. ``gaussian_filter`` of a
  ``uint8`` array returns ``uint8``: it runs one 1-D correlation per axis (axis 0, then axis 1), each
  written to the ``uint8`` output that the next pass reads, and the C cast of the float64 sum
  *truncates*. So a 2-D blur is :math:`y = \lfloor \lfloor T_H x \rfloor\, T_W^\top \rfloor`, not the
  rounded float blur: on random 8-bit images one truncation agrees with ``floor`` of the float blur
  on only ~51% of pixels, two truncations on 100%. Where the exact sum is an integer (a constant
  neighbourhood, or one whose symmetric pairs sum alike) the float64 rounding of scipy's normalised
  kernel decides which side it falls: a flat region of 255 blurred with σ = 0.3 comes out 253 (one
  level lost per pass), 100 with σ = 10 comes out 99, 128 with σ = 10 stays 128; and a kernel whose
  outer taps weigh 1e-5 or less (radius just incremented) puts most outputs of a smooth region within
  1e-4 of an integer, on the side its tiny tail decides. Two ways to follow it:

  - ``exact=True``: float64 products and, within 1e-9 of an integer ``k``, :func:`uint8_constant_table`
    — what scipy writes for a constant line of ``k``, its kernel and its summation order (centre first,
    then the symmetric pairs from the outermost in) replayed in numpy float64. Bit-exact with scipy on
    every pixel tested (random, flat and smooth 8-bit images, every level σ), ~2× the float time.
  - ``exact=False`` (the default): float32 products, each pass ``floor(y + 5e-4)`` (an exact integer
    sum stays that integer) — about the speed of the float blur. Measured over every level σ at
    112 px: equal to scipy on 99.9% of the pixels of random 8-bit images (all within one level), on
    96.9% of smooth images with a saturated patch (99.86% within one level; a flat region can keep
    the one or two levels scipy's rounding takes off; the σ just above a radius step, whose outer
    taps weigh ~1e-5, are the worst: ~60% equal, all within one level).

  In both, radius-1 kernels (σ < 0.375; outer taps down to 1e-14) run scipy's own float64 loop on
  every pixel (:func:`_exact_uint8_blur`; with float32 products they would be wrong on about half
  the pixels), and the map smoothing of :func:`blur_levels` is always exact. Running radius 2 the
  same way would make smooth images 99.0% equal, at ~12% more time.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from salience_lib.maps import minmax_normalise, upsample_maps

__all__ = [
    "BLUR_TILES",
    "BORDERS",
    "EXACT_SLACK",
    "UINT8_SLACK",
    "band_matrix",
    "blur_levels",
    "blur_matrix",
    "border_index",
    "from_grey",
    "gaussian_blur",
    "gaussian_kernel1d",
    "spatially_varying_blur",
    "to_grey",
    "uint8_constant_table",
    "upsample_maps",
]

Border = Literal["replicate", "reflect"]
BORDERS: tuple[str, ...] = ("replicate", "reflect")
"""The two borders: ``"replicate"`` (scipy ``nearest``) and ``"reflect"`` (scipy's default, numpy ``symmetric``)."""

UINT8_SLACK = 5e-4
"""``exact=False``: a float32 pass is cast as ``floor(y + UINT8_SLACK)``, so an exact integer sum (a
flat region) stays that integer despite float32 rounding (≤ 1.4e-4 measured, 64–224 px, σ ≤ 10, values
≤ 255); a generic value that close below an integer (~0.05% of pixels per pass) comes out one level up."""

EXACT_SLACK = 1e-9
"""``exact=True``: within this of an integer ``k`` a float64 pass is cast to ``uint8_constant_table(σ)[k]``
(float64 products err by ~1e-13; a genuine non-integer sum differs from an integer by ≥ ~1e-7)."""


def _check_options(border: str, bits: int | None) -> None:
    if border not in BORDERS:
        raise ValueError(f"`border` must be one of {BORDERS}, got {border!r}")
    if bits not in (None, 8):
        raise ValueError(f"`bits` must be None or 8, got {bits!r}")


def _wide(dtype: torch.dtype) -> torch.dtype:
    """A dtype that holds 0–255 grey levels with fractions: float32 for half precision, else ``dtype``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as 8-bit grey levels ``round(255 x)`` (float, at least float32): what ``bits=8`` blurs."""
    return torch.round(images.to(_wide(images.dtype)) * 255).clamp_(0, 255)


def from_grey(grey: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Grey levels back to [0, 1] (``k / 255``) in ``dtype``."""
    return (grey / 255).to(dtype)


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


def border_index(index: torch.Tensor, n: int, border: Border = "replicate") -> torch.Tensor:
    """The sample of ``[0, n)`` that position ``index`` (any integer) reads under ``border``.

    ``"replicate"``: ``clamp(index, 0, n − 1)``. ``"reflect"`` (scipy's): period ``2n``, the second half
    mirrored — ``−1 → 0``, ``−2 → 1``, ``n → n − 1`` — for any distance, as scipy extends a line.
    """
    if border == "replicate":
        return index.clamp(0, n - 1)
    folded = torch.remainder(index, 2 * n)
    return torch.where(folded < n, folded, 2 * n - 1 - folded)


def blur_matrix(n: int, sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None, border: Border = "replicate") -> torch.Tensor:
    """``(n, n)`` matrix ``T`` with ``T @ x`` = 1-D Gaussian blur of ``x`` with the given border.

    Row ``i`` holds the kernel centred on ``i``; a tap that falls outside ``[0, n)`` is added to the
    sample :func:`border_index` maps it to — exactly what padding with that border does.
    """
    kernel = gaussian_kernel1d(sigma, truncate, torch.float64, device)
    radius = kernel.numel() // 2
    rows = torch.arange(n, device=device)[:, None]
    cols = border_index(rows + torch.arange(-radius, radius + 1, device=device)[None, :], n, border)
    matrix = torch.zeros(n, n, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, cols, kernel.expand(n, -1).contiguous())
    return matrix.to(dtype)


@functools.lru_cache(maxsize=1024)
def _scipy_weights(sigma: float, truncate: float) -> tuple[float, ...]:
    """scipy's ``_gaussian_kernel1d(σ, 0, radius)``, the same numpy operations (float64)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return tuple((phi / phi.sum()).tolist())


@functools.lru_cache(maxsize=1024)
def _constant_table(sigma: float, truncate: float) -> np.ndarray:
    weights = _scipy_weights(sigma, truncate)
    radius = len(weights) // 2
    v = np.arange(256, dtype=np.float64)
    total = v * weights[radius]
    for offset in range(radius, 0, -1):  # NI_Correlate1D, symmetric kernel: centre, then pairs from outside in
        total = total + (v + v) * weights[radius - offset]
    return np.floor(total)


def uint8_constant_table(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    r"""``(256,)`` float64: what one scipy Gaussian pass writes to ``uint8`` for a constant line of value ``v``.

    :math:`\lfloor v w_0 + \sum_{j=r}^{1} 2v\, w_j \rfloor` in float64, summed in scipy's order, with
    scipy's kernel :math:`w = \phi / \sum\phi`, :math:`\phi_x = e^{(-0.5/\sigma^2) x^2}` — equal to
    ``scipy.ndimage.gaussian_filter1d`` of a constant ``uint8`` line. It is ``v`` or ``v − 1``.
    """
    return torch.from_numpy(_constant_table(float(sigma), float(truncate)).copy())


def _uint8_cast(values: torch.Tensor, table: torch.Tensor, slack: float) -> torch.Tensor:
    """One scipy pass's cast to ``uint8`` (overwrites ``values``): ``floor``, but ``table[k]`` within ``slack``
    of an integer ``k`` (there scipy's own float64 rounding decides; module docstring)."""
    shifted = values.add_(slack)
    cast = torch.floor(shifted)
    where = (shifted.sub_(cast) <= 2 * slack).nonzero(as_tuple=True)  # within the slack of `cast`
    if where[0].numel():
        cast.index_put_(where, table[cast[where].clamp_(0, 255).long()])
    return cast


def _cast(values: torch.Tensor, sigma: float, exact: bool, truncate: float = 4.0) -> torch.Tensor:
    """One pass's ``uint8`` cast (overwrites ``values``): table-exact in float64, or ``floor(y + slack)``."""
    if not exact:
        return values.add_(UINT8_SLACK).floor_()
    table = uint8_constant_table(sigma, truncate).to(device=values.device, dtype=values.dtype)
    return _uint8_cast(values, table, EXACT_SLACK)


#: Kernels of at most this radius are applied in ``bits=8`` with scipy's own float64 arithmetic.
EXACT_RADIUS = 1


def _exact_uint8_blur(padded: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    r"""scipy's 2-D ``uint8`` blur of ``padded`` (already padded by the radius ``r``): the inner ``(H − 2r, W − 2r)``.

    Each pass is scipy's loop itself — float64, :math:`x_0 w_0`, then :math:`+ (x_{-j} + x_j) w_j` for
    :math:`j = r … 1` — truncated to an integer. Used for kernels of radius ≤ :data:`EXACT_RADIUS`
    (1: σ < 0.375): their outer taps weigh as little as 1e-14, so nearly every output lies within
    float32 noise of an integer and only scipy's own rounding says on which side. A few elementwise
    passes: cheap at this radius.
    """
    weights = _scipy_weights(float(sigma), truncate)
    radius = len(weights) // 2
    x = padded.double()
    for axis in (-2, -1):  # axis 0 of the channel first, as scipy
        n = x.shape[axis] - 2 * radius
        total = x.narrow(axis, radius, n) * weights[radius]
        for offset in range(radius, 0, -1):  # separate IEEE operations (no fused multiply-add), as scipy's C
            pair = x.narrow(axis, radius - offset, n) + x.narrow(axis, radius + offset, n)
            total.add_(pair.mul_(weights[radius - offset]))
        x = total.floor_()  # in [0, 255]: the weights sum to 1 within float64 rounding
    return x.to(padded.dtype)


def gaussian_blur(
    images: torch.Tensor,
    sigma: float,
    truncate: float = 4.0,
    *,
    border: Border = "replicate",
    bits: int | None = None,
    exact: bool = False,
) -> torch.Tensor:
    """Separable Gaussian blur of every channel; images in [0, 1].

    Equal to ``scipy.ndimage.gaussian_filter(x, (0, 0, σ, σ), mode=…, truncate=truncate)`` with
    ``mode="nearest"`` for ``border="replicate"`` and ``mode="reflect"`` for ``"reflect"``; with
    ``bits=8``, to scipy's filter of the ``uint8`` image ``round(255 x)``, divided by 255 (module
    docstring; bit for bit with ``exact=True``, otherwise within one grey level nearly everywhere).
    Computed as two matrix products with :func:`blur_matrix` (``T_H · X · T_Wᵀ``): a dense GEMM does
    more multiply-adds than a ``2r+1``-tap convolution, but runs them far faster than a single-channel
    ``conv2d`` does, on CPU and GPU alike. ``σ = 0`` returns the input unchanged (``bits=8``: its
    8-bit levels).

    Raises:
        ValueError: images outside [0, 1] or not finite, a bad ``sigma``, ``border`` or ``bits``.
    """
    from salience_lib.imaging import check_unit_images  # imaging re-exports this module's names

    images = check_unit_images(images)
    _check_options(border, bits)
    if bits is None:
        return _gaussian_blur(images, sigma, truncate, border)
    return from_grey(_gaussian_blur(to_grey(images), sigma, truncate, border, bits, exact), images.dtype)


def _gaussian_blur(values: torch.Tensor, sigma: float, truncate: float = 4.0, border: Border = "replicate",
                   bits: int | None = None, exact: bool = False) -> torch.Tensor:  # fmt: skip
    """:func:`gaussian_blur` of any ``(…, H, W)`` values (maps, checked images; ``bits=8``: grey levels)."""
    if int(truncate * float(sigma) + 0.5) == 0:
        gaussian_kernel1d(float(sigma), truncate)  # validates sigma
        return values
    height, width = values.shape[-2:]
    if bits is not None and int(truncate * float(sigma) + 0.5) <= EXACT_RADIUS:
        radius = int(truncate * float(sigma) + 0.5)
        return _exact_uint8_blur(_pad(values, radius, radius, radius, radius, border), float(sigma), truncate)
    work = values.double() if bits is not None and exact else values
    rows = blur_matrix(height, float(sigma), truncate, work.dtype, values.device, border)
    cols = blur_matrix(width, float(sigma), truncate, work.dtype, values.device, border)
    if bits is None:
        return rows @ (values @ cols.T)
    first = _cast(rows @ work, float(sigma), exact, truncate)  # axis 0 first, as scipy
    return _cast(first @ cols.T, float(sigma), exact, truncate).to(values.dtype)


def blur_levels(
    maps: torch.Tensor,
    size: tuple[int, int],
    smoothing_sigma: float,
    n_levels: int = 101,
    *,
    upsample: Literal["pil_bicubic", "bilinear"] = "bilinear",
    rescale: Literal["max", "minmax"] = "minmax",
    border: Border = "replicate",
    bits: int | None = None,
    invert: bool = False,
) -> torch.Tensor:
    r"""Quantised salience levels ``(B, H, W)`` in ``{0, …, n_levels − 1}`` for the guided blur.

    The authors' recipe (Crum et al. 2023, Explain2Me ``blur_image``): bring the map to the image size,
    smooth it with a Gaussian of ``smoothing_sigma`` px, rescale to :math:`s \in [0, 10]` and round to
    0.1 — level ``i`` means :math:`s = i/10` (for the default 101 levels). The pieces:

    * ``upsample``: ``"bilinear"`` (torch, float; ours) or ``"pil_bicubic"`` (the min–max map
      truncated to 8 bits, then PIL's 8-bit bicubic: their "upscaled" cam; :func:`upsample_maps`).
    * ``bits=8``: the map is smoothed as scipy smooths their ``uint8`` cam — 8-bit levels, each pass
      truncated to ``uint8``, bit for bit (always the exact cast of the module docstring: one channel,
      cheap); a bilinear map is first truncated to 8 bits.
    * ``invert``: smooth ``1 − map`` (``255 − cam`` in 8 bits; the min–max map for float maps) — the
      authors' mode "object", inverted *before* smoothing.
    * ``rescale``: ``"minmax"`` (ours): :math:`s = 10 (S - \min S)/(\max S - \min S)`, a flat map gives
      level 0; ``"max"`` (theirs): :math:`s = S / (\max S / 10)`, ``np.around(s, 1)``
      (round half to even), in float64 as numpy computes it. Their code divides by zero for an
      all-zero smoothed map (NaN levels match no pixel: nothing is blurred); here such a map gives
      the top level (s = 10: nothing blurred) — the same image, without the NaN.
    * ``border``: of the smoothing (``"reflect"`` is scipy's default, theirs).
    """
    _check_options(border, bits)
    if rescale not in ("max", "minmax"):
        raise ValueError(f"`rescale` must be 'max' or 'minmax', got {rescale!r}")
    size = (int(size[0]), int(size[1]))
    maps = maps.float()
    top: float | None = None  # the value of a full map, once the map is in [0, 1] or in grey levels
    if upsample == "pil_bicubic" or bits == 8:
        guide = upsample_maps(minmax_normalise(maps), size, upsample, 8)
        top = 1.0
        if bits == 8:
            guide, top = torch.round(guide * 255), 255.0
    else:
        guide = upsample_maps(maps, size, upsample)
    if invert:
        if top is None:
            guide, top = minmax_normalise(guide), 1.0
        guide = top - guide
    if smoothing_sigma > 0:
        guide = _gaussian_blur(guide[:, None], smoothing_sigma, border=border, bits=bits, exact=True)[:, 0]
    if rescale == "minmax":
        return torch.round(minmax_normalise(guide) * (n_levels - 1)).long()
    guide = guide.double()
    peak = guide.flatten(1).amax(dim=1)[:, None, None]
    scaled = guide / (peak / 10) * ((n_levels - 1) / 10)  # their stacked_img / (max / 10), then × 10
    levels = torch.where(peak > 0, torch.round(scaled), torch.full_like(scaled, n_levels - 1))
    return levels.clamp_(0, n_levels - 1).long()


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


def _pad(values: torch.Tensor, top: int, bottom: int, left: int, right: int, border: Border,
         dims: tuple[int, int] = (-2, -1)) -> torch.Tensor:  # fmt: skip
    """Pad dimensions ``dims`` (rows, columns) by gathering :func:`border_index` rows and columns (any width)."""
    height, width = values.shape[dims[0]], values.shape[dims[1]]
    rows = border_index(torch.arange(-top, height + bottom, device=values.device), height, border)
    cols = border_index(torch.arange(-left, width + right, device=values.device), width, border)
    return values.index_select(dims[0], rows).index_select(dims[1], cols)


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


def spatially_varying_blur(
    images: torch.Tensor,
    sigma_per_level: torch.Tensor,
    levels: torch.Tensor,
    *,
    border: Border = "replicate",
    bits: int | None = None,
    exact: bool = False,
) -> torch.Tensor:
    r"""Blur pixel ``p`` with Gaussian σ = ``sigma_per_level[levels[p]]``.

    Exactly what a per-pixel loop does — each output pixel is the pixel of the whole image blurred
    with that pixel's σ, :math:`y_p = (G_{\sigma(p)} * x)_p` — and what the authors' per-level loop
    does (Crum et al. 2023, Explain2Me ``blur_image``: one ``gaussian_filter`` of the whole image per
    level, its pixels of that level kept), but only where it is needed: for each level present, the
    image is cut into square tiles, and only tiles that contain the level are blurred, each from
    its padded patch by two small band-matrix products (:func:`band_matrix`); the tile side (8 to
    64 px) is chosen per level to balance halo against unused pixels, and a level spread over
    most of a small image is blurred whole (:func:`gaussian_blur`) instead. Levels whose kernel has
    radius 0 keep the pixel unchanged. Work is a few batched products per level, no per-image loop.

    Args:
        images: ``(B, C, H, W)`` in [0, 1].
        sigma_per_level: ``(L,)`` σ in pixels for each level.
        levels: ``(B, H, W)`` integer tensor with values in ``[0, L)``.
        border: ``"replicate"`` or ``"reflect"`` (scipy's default; module docstring).
        bits: ``8``: blur the 8-bit image ``round(255 x)`` with every pass truncated as scipy's
            ``uint8`` output is (module docstring), and return ``k / 255``; ``None``: float.
        exact: with ``bits=8``, scipy's casts bit for bit (float64, ~2× the time); otherwise within
            one grey level nearly everywhere (module docstring).

    Raises:
        ValueError: images outside [0, 1] or not finite, bad ``levels``, ``border`` or ``bits``.
    """
    from salience_lib.imaging import check_unit_images  # imaging re-exports this module's names

    images = check_unit_images(images)
    _check_options(border, bits)
    if bits is None:
        return _spatially_varying_blur(images, sigma_per_level, levels, border)
    grey = _spatially_varying_blur(to_grey(images), sigma_per_level, levels, border, bits, exact)
    return from_grey(grey, images.dtype)


def _spatially_varying_blur(values: torch.Tensor, sigma_per_level: torch.Tensor, levels: torch.Tensor,
                            border: Border = "replicate", bits: int | None = None,
                            exact: bool = False) -> torch.Tensor:  # fmt: skip
    """:func:`spatially_varying_blur` of values already checked by the caller (``bits=8``: grey levels)."""
    if bits is not None and exact and values.dtype != torch.float64:
        return _spatially_varying_blur(values.double(), sigma_per_level, levels, border, bits, exact).to(values.dtype)
    batch, channels, height, width = values.shape
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
        return values.clone()
    halo = max(radii[level] for level in blurred_levels)
    step = BLUR_TILES[-1]
    pad_h, pad_w = -height % step, -width % step
    # channels last: gathering a tile's (C, span, span) patch from it is ~3× faster than from (B, C, H, W)
    padded = _pad(values.permute(0, 2, 3, 1), halo, halo + pad_h, halo, halo + pad_w, border, dims=(1, 2))
    levels = F.pad(levels.long(), (0, pad_w, 0, pad_h), value=-1)
    height_p, width_p = height + pad_h, width + pad_w
    presence = _tile_presence(levels, len(sigmas), BLUR_TILES[0])
    out = F.pad(values, (0, pad_w, 0, pad_h))
    whole_image_cost = _DENSE_COST * batch * height * width * (height + width)
    for level in blurred_levels:
        radius = radii[level]
        cost, tile, active = _cheapest_tiling(presence[level], radius)
        if cost > whole_image_cost:  # the level is everywhere: blur the whole image (two GEMMs)
            inside = (levels[:, :height, :width] == level)[:, None]
            visible = out[:, :, :height, :width]
            torch.where(inside, _gaussian_blur(values, sigmas[level], 4.0, border, bits, exact), visible, out=visible)
            continue
        b, ty, tx = active.nonzero(as_tuple=True)
        span = tile + 2 * radius
        window = padded[:, halo - radius: halo + height_p + radius, halo - radius: halo + width_p + radius]
        patches = window.unfold(1, span, tile).unfold(2, span, tile)[b, ty, tx]  # (N, C, span, span)
        if bits is not None and radius <= EXACT_RADIUS:
            blurred = _exact_uint8_blur(patches, sigmas[level])
        elif bits is None:
            band = band_matrix(tile, sigmas[level], dtype=values.dtype, device=values.device)
            blurred = band @ patches @ band.T
        else:  # axis 0 (rows) first, each pass cast to uint8 as scipy's
            band = band_matrix(tile, sigmas[level], dtype=values.dtype, device=values.device)
            blurred = _cast(_cast(band @ patches, sigmas[level], exact) @ band.T, sigmas[level], exact)
        out_tiles = out.view(batch, channels, height_p // tile, tile, width_p // tile, tile).permute(0, 2, 4, 1, 3, 5)
        level_tiles = levels.view(batch, height_p // tile, tile, width_p // tile, tile).permute(0, 1, 3, 2, 4)
        inside = (level_tiles[b, ty, tx] == level)[:, None]
        out_tiles[b, ty, tx] = torch.where(inside, blurred, out_tiles[b, ty, tx])
    return out[:, :, :height, :width]
