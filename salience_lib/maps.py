"""Salience-map conventions shared by every module: validation, min–max normalisation, resizing.

A batch of maps is a floating tensor of shape ``(B, H, W)``. Normalised maps lie in [0, 1] per map;
a map without spatial variation (all zero, or constant) normalises to all zero, never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["check_maps", "check_pair", "match_size", "minmax_normalise", "pixel_ranks", "resize_maps",
           "top_fraction_mask"]


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
    # One vectorised pass: NaN propagates into min and max, +inf is the max, -inf the min.
    if finite and not bool(torch.isfinite(torch.stack(torch.aminmax(maps))).all()):
        raise ValueError(f"`{name}` contains NaN or inf values")
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
    valid pixels only and invalid pixels are set to zero.

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
        lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))
        hi = torch.where(torch.isfinite(hi), hi, torch.zeros_like(hi))
    span = (hi - lo)[:, None, None]
    safe = torch.where(span > 0, span, torch.ones_like(span))
    out = torch.where(span > 0, (maps - lo[:, None, None]) / safe, torch.zeros_like(maps))
    if mask is not None:
        out = out * mask.expand_as(maps).to(out.dtype)
    return out


def resize_maps(maps: torch.Tensor, size: tuple[int, int] | int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(B, H, W)`` maps to ``size`` on their device (bilinear, ``align_corners=False``)."""
    if isinstance(size, int):
        size = (size, size)
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(maps[:, None], size=size, mode=mode, **kwargs)[:, 0]


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
