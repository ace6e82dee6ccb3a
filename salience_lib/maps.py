"""Salience-map conventions shared by every module: validation, min–max normalisation, resizing.

A batch of maps is a floating tensor of shape ``(B, H, W)``. Normalised maps lie in [0, 1] per map;
a map without spatial variation (all zero, or constant) normalises to all zero, never NaN. A map
that contains NaN or inf stays non-finite when normalised (never zeros that would score as "perfect"),
and :func:`check_maps` / :func:`check_finite` turn it into an error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["check_finite", "check_maps", "check_pair", "from_uint8", "match_size", "minmax_normalise", "pixel_ranks",
           "quantise", "resize_maps", "to_uint8", "top_fraction_mask", "upsample_maps"]


def _bad_rows(tensor: torch.Tensor) -> str:
    """The batch positions whose entries are not all finite, for an error message (error path only)."""
    rows = (~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(dim=1).nonzero()[:, 0].tolist()
    shown = ", ".join(str(r) for r in rows[:8]) + (", ..." if len(rows) > 8 else "")
    return f"{len(rows)} of {tensor.shape[0]} images (batch positions {shown})"


def check_finite(*named: tuple[str, torch.Tensor]) -> None:
    """Raise a ValueError naming the first of ``(what, tensor)`` pairs that holds NaN or inf.

    All tensors are checked with one host synchronisation; the message says which batch positions
    (first dimension) are affected, e.g. "the model's logits contain NaN or inf for 1 of 4 images".

    Raises:
        ValueError: a tensor with a NaN or infinite entry.
    """
    if not named:
        return
    flags = torch.stack([torch.isfinite(t).all().to(named[0][1].device) for _, t in named]).tolist()
    for (what, tensor), ok in zip(named, flags, strict=True):
        if not ok:
            where = f" for {_bad_rows(tensor)}" if tensor.ndim > 0 and tensor.shape[0] > 0 else ""
            raise ValueError(f"{what} contain NaN or inf values{where}")


def check_maps(maps: object, name: str = "maps", *, finite: bool = True) -> torch.Tensor:
    """Check that ``maps`` is a floating ``(B, H, W)`` tensor (finite, unless told otherwise).

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong rank, empty, or containing NaN/inf.
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, H, W), got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {maps.dtype}")
    if maps.ndim != 3:
        raise ValueError(f"`{name}` must have shape (B, H, W), got shape {tuple(maps.shape)}")
    if maps.numel() == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(maps.shape)}")
    if finite:
        check_finite((f"`{name}`", maps))
    return maps


def check_pair(a: object, b: object, names: tuple[str, str] = ("a", "b")) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two map batches of identical shape (see :func:`check_maps`)."""
    a = check_maps(a, names[0])
    b = check_maps(b, names[1])
    if a.shape != b.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return a, b


def minmax_normalise(maps: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Per-map min–max normalisation, :math:`(S - \min S) / (\max S - \min S)`.

    Differentiable (used inside the CYBORG loss). A map whose range is zero becomes all zero.
    With a boolean ``mask`` of shape ``(B, H, W)`` (or broadcastable), min and max are taken over the
    valid pixels only and invalid pixels are set to zero; a map with no valid pixel becomes all zero.
    A map with a NaN or inf (valid) pixel comes out NaN — never zeros, which every measure would
    score as "perfect"; :func:`check_maps` then names it. No host synchronisation.

    Args:
        maps: ``(B, H, W)`` tensor (any float dtype; computed in float32 or wider).
        mask: optional boolean validity mask.
    """
    flat = maps.flatten(1)
    if mask is None:
        lo = flat.amin(dim=1)
        hi = flat.amax(dim=1)
    else:
        valid = mask.expand_as(maps).flatten(1)
        lo = torch.where(valid, flat, torch.full_like(flat, float("inf"))).amin(dim=1)
        hi = torch.where(valid, flat, torch.full_like(flat, float("-inf"))).amax(dim=1)
        any_valid = valid.any(dim=1)
        lo = torch.where(any_valid, lo, torch.zeros_like(lo))
        hi = torch.where(any_valid, hi, torch.zeros_like(hi))
    span = (hi - lo)[:, None, None]
    safe = torch.where(span > 0, span, torch.ones_like(span))
    # `span <= 0` (a flat map) gives zeros; a NaN span (NaN or inf in the map) is not <= 0 and
    # propagates NaN through `(maps - lo) / safe`, as does an inf span through inf / inf.
    out = torch.where(span <= 0, torch.zeros_like(maps), (maps - lo[:, None, None]) / safe)
    if mask is not None:
        out = torch.where(mask.expand_as(maps), out, torch.zeros_like(out))
    return out


def to_uint8(maps: torch.Tensor) -> torch.Tensor:
    """8-bit maps as the authors saved them: :math:`\\lfloor 255\\,S \rfloor`, ``(B, H, W)`` float in [0, 1] → uint8.

    Truncation, as torchvision's ``to_pil_image`` does (``pic.mul(255).byte()``; Crum et al. 2023,
    ``generate-cams.py``), so only a value of exactly 1 reaches 255 — not rounding. Values are
    clamped to [0, 1] first; NaN is an error (it has no grey level).

    Raises:
        ValueError: maps that are not ``(B, H, W)`` or hold NaN/inf.
    """
    maps = check_maps(maps)
    return (maps.float().clamp(0.0, 1.0) * 255).to(torch.uint8)


def from_uint8(maps: torch.Tensor) -> torch.Tensor:
    """8-bit maps back to float32 in [0, 1] (``k / 255``), on their device."""
    return maps.float() / 255


def quantise(maps: torch.Tensor, bits: int | None) -> torch.Tensor:
    """``maps`` as their 8-bit files hold them, ``from_uint8(to_uint8(maps))``, for ``bits=8``; unchanged for ``None``.

    NaN stays NaN (never a grey level), so the measures' finiteness checks still name it.

    (The measures of the "paper" protocol read maps this way: :attr:`salience_lib.protocol.Protocol.map_bits`.)
    """
    if bits is None:
        return maps
    if bits != 8:
        raise ValueError(f"`bits` must be 8 or None, got {bits!r}")
    # floor(255·S)/255 = to_uint8 then from_uint8, but a NaN stays NaN for the checks that name it
    return (maps.float().clamp(0.0, 1.0) * 255).floor() / 255


def resize_maps(maps: torch.Tensor, size: tuple[int, int] | int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(B, H, W)`` maps to ``size`` on their device (bilinear, ``align_corners=False``)."""
    if isinstance(size, int):
        size = (size, size)
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(maps[:, None], size=size, mode=mode, **kwargs)[:, 0]


def upsample_maps(
    maps: torch.Tensor, size: tuple[int, int], how: str = "bilinear", bits: int | None = None
) -> torch.Tensor:
    """``(B, h, w)`` maps in [0, 1] brought to ``size`` the way a protocol's ``upsample`` names.

    ``"pil_bicubic"``: the authors' "upscaled" file — the map truncated to 8 bits (:func:`quantise`),
    resized by PIL's 8-bit bicubic (:func:`salience_lib.resize.pil_resize`, equal to Pillow), as
    ``k / 255`` floats; a map already at ``size`` is not resampled (PIL's resize to the same size is a
    copy). ``"bilinear"``: torch's bilinear resize (:func:`resize_maps`), then truncated to 8 bits when
    ``bits=8``. NaN stays NaN for the checks that name it.

    (:attr:`salience_lib.protocol.Protocol.upsample`.)
    """
    size = (int(size[0]), int(size[1]))
    if how == "pil_bicubic":
        levels = quantise(maps, 8)
        if tuple(maps.shape[-2:]) == size:
            return levels
        from salience_lib.resize import pil_resize

        return pil_resize(levels, size, "bicubic", bits=8).float()
    if how != "bilinear":
        raise ValueError(f"`upsample` must be 'pil_bicubic' or 'bilinear', got {how!r}")
    return quantise(resize_maps(maps.float(), size), bits)


def pixel_ranks(maps: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's rank in its map, 0 = largest (ties: lower pixel index first; invalid pixels last).

    Returns ``(rank (B, N) long, valid (B, N) bool)`` over the flattened pixels — what
    :func:`top_fraction_mask` thresholds; rank once to take several fractions of the same maps.
    """
    flat = maps.flatten(1)
    valid_flat = torch.ones_like(flat, dtype=torch.bool) if valid is None else valid.expand_as(maps).flatten(1)
    keyed = torch.where(valid_flat, flat, torch.full_like(flat, float("-inf")))
    order = torch.argsort(keyed, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return rank, valid_flat


def top_fraction_mask(
    maps: torch.Tensor,
    q: float | torch.Tensor,
    valid: torch.Tensor | None = None,
    minimum: int = 1,
    ranks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Boolean ``(B, H, W)`` mask of the ``ceil(q·N)`` largest (valid) pixels of each map.

    Exactly that many pixels are selected (ties broken by the lower pixel index), at least ``minimum``;
    ``q`` may be a scalar or a ``(B,)`` tensor; ``N`` counts the valid pixels. ``ranks``: the
    :func:`pixel_ranks` of ``maps`` (and ``valid``), if already computed.
    """
    rank, valid_flat = pixel_ranks(maps, valid) if ranks is None else ranks
    fraction = torch.as_tensor(q, dtype=torch.float64, device=rank.device).reshape(-1, 1)
    k = torch.ceil(valid_flat.sum(dim=1, keepdim=True).double() * fraction - 1e-9).long().clamp_min(minimum)
    return ((rank < k) & valid_flat).view_as(maps)


def match_size(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(B, h, w)`` maps to ``size``: area averaging where both sides shrink, else bilinear.

    The one rule for bringing a reference map (a human annotation, a mask) to a salience map's grid:
    bilinear downsampling by a large factor samples a few pixels and aliases; area averaging keeps
    each cell's mass. Already the right size: returned unchanged.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(maps.shape[-2:]) == size:
        return maps
    shrink = maps.shape[-2] >= size[0] and maps.shape[-1] >= size[1]
    return resize_maps(maps, size, mode="area" if shrink else "bilinear")
