"""Batched similarity of salience maps: SSIM, Pearson, cosine and top-k IoU.

Each function maps two ``(B, H, W)`` batches to ``(B,)`` on their device, and takes an optional
boolean ``mask`` (``(B, H, W)`` or broadcastable) restricting the comparison to valid pixels (used by
geometric consistency, where a transform brings pixels in from outside the image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from salience_lib.maps import check_pair, top_fraction_mask

__all__ = ["SIMILARITIES", "cosine", "pearson", "ssim", "topk_iou"]


def _check_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"`mask` must be a boolean tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    try:
        return mask.expand_as(like)
    except RuntimeError as err:
        raise ValueError(
            f"`mask` of shape {tuple(mask.shape)} does not broadcast to the maps' shape {tuple(like.shape)}"
        ) from err


def _box_sum(x: torch.Tensor, win: int) -> torch.Tensor:
    """Sum over every ``win × win`` window fully inside ``(..., H, W)`` (separable running sums)."""
    c = x.cumsum(-1)
    c = c[..., win - 1 :] - F.pad(c, (1, 0))[..., :-win]
    c = c.cumsum(-2)
    return c[..., win - 1 :, :] - F.pad(c, (0, 0, 1, 0))[..., :-win, :]


def _ssim_map(a: torch.Tensor, b: torch.Tensor, win: int, data_range: float) -> torch.Tensor:
    """SSIM at every valid window position, ``(B, H − win + 1, W − win + 1)`` in float64.

    Uses u = a + b and v = a − b, so four window statistics suffice instead of five:
    2μaμb = (μu² − μv²)/2, μa² + μb² = (μu² + μv²)/2, 2σab = (σu² − σv²)/2, σa² + σb² = (σu² + σv²)/2.
    """
    x = a.double()
    y = b.double()
    u = x + y
    v = x - y
    n = win * win
    stats = torch.stack([u, v, u * u, v * v], dim=1)
    if stats.shape[-2:] == (win, win):  # the paper's case: a 7×7 map is exactly one window
        means = stats.mean(dim=(-2, -1), keepdim=True)
    else:
        means = _box_sum(stats, win).mul_(1.0 / n)
    mu, mv, muu, mvv = means.unbind(dim=1)
    cov_norm = n / (n - 1)  # sample covariance, as skimage's default
    mu2 = mu * mu
    mv2 = mv * mv
    var_u = muu - mu2
    var_v = mvv - mv2
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    numerator = (0.5 * (mu2 - mv2) + c1) * (0.5 * cov_norm * (var_u - var_v) + c2)
    denominator = (0.5 * (mu2 + mv2) + c1) * (0.5 * cov_norm * (var_u + var_v) + c2)
    return numerator / denominator


def _chunk_size(a: torch.Tensor) -> int:
    """Maps per chunk: on CPU keep each chunk's working set cache-sized (the op is memory-bound)."""
    if a.device.type != "cpu":
        return a.shape[0]
    return max(1, (1 << 15) // (a.shape[-2] * a.shape[-1]))


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    win_size: int = 7,
    data_range: float = 1.0,
) -> torch.Tensor:
    r"""Mean structural similarity (Wang et al., IEEE TIP 2004), equal to scikit-image's defaults.

    For every ``win × win`` window position fully inside the map (uniform weights),

    .. math::
        \mathrm{SSIM} = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
                             {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)},
        \quad C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2,

    with sample (co)variances (normalised by :math:`N - 1`, :math:`N = \mathrm{win}^2`), then the
    mean over window positions — ``skimage.metrics.structural_similarity(a, b, data_range=1.0)``
    to within 1e-5 (it crops the same border). Window sums are separable running sums in float64
    (the variance is a difference of nearly equal numbers); on the CPU the batch is processed in
    cache-sized chunks, because the computation is memory-bound.

    Maps smaller than the window have no valid position: a :class:`ValueError` is raised (upsample
    them first; the paper's 7×7 maps have exactly one position). With ``mask``, only windows that
    lie entirely on valid pixels count; if none does, a :class:`ValueError` is raised.

    Args:
        a, b: ``(B, H, W)`` maps, ``H, W >= win_size``.
        mask: optional boolean validity mask.
        win_size: odd window side, default 7.
        data_range: ``L``, the value range of the maps (1 for normalised maps).
    """
    a, b = check_pair(a, b)
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"`win_size` must be an odd integer >= 3, got {win_size}")
    height, width = a.shape[-2:]
    if min(height, width) < win_size:
        raise ValueError(
            f"ssim needs maps of side >= win_size={win_size}, got maps of shape {tuple(a.shape)}; "
            "upsample them (salience_lib.maps.resize_maps) or pass a smaller odd `win_size`"
        )
    valid = _check_mask(mask, a)
    step = _chunk_size(a)
    results = []
    for start in range(0, a.shape[0], step):
        s_map = _ssim_map(a[start : start + step], b[start : start + step], win_size, data_range)
        if valid is None:
            results.append(s_map.mean(dim=(-2, -1)))
            continue
        full = _box_sum(valid[start : start + step].double(), win_size) > win_size * win_size - 0.5
        count = full.sum(dim=(-2, -1))
        if bool((count == 0).any()):
            raise ValueError(f"`mask` leaves no {win_size}×{win_size} window fully valid for some maps")
        results.append((s_map * full).sum(dim=(-2, -1)) / count)
    return torch.cat(results).float()


def _centred_cosine(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, centre: bool) -> torch.Tensor:
    """Weighted (optionally centred) cosine of flattened maps; degenerate cases per :func:`cosine`."""
    count = weights.sum(dim=1).clamp_min(1)
    if centre:
        x = x - (x * weights).sum(dim=1, keepdim=True) / count[:, None]
        y = y - (y * weights).sum(dim=1, keepdim=True) / count[:, None]
    x = x * weights
    y = y * weights
    dot = (x * y).sum(dim=1)
    nx = x.pow(2).sum(dim=1).sqrt()
    ny = y.pow(2).sum(dim=1).sqrt()
    denominator = nx * ny
    both_flat = (nx == 0) & (ny == 0)
    value = dot / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    value = torch.where(denominator > 0, value, torch.zeros_like(value))
    return torch.where(both_flat, torch.ones_like(value), value).clamp(-1, 1)


def _flatten_pair(
    a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = check_pair(a, b)
    valid = _check_mask(mask, a)
    weights = torch.ones_like(a, dtype=torch.float64) if valid is None else valid.double()
    return a.double().flatten(1), b.double().flatten(1), weights.flatten(1)


def pearson(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Pearson correlation of the pixel values, :math:`\mathrm{cov}(a,b)/(\sigma_a\sigma_b)`, in [-1, 1].

    Degenerate cases (never NaN): two constant maps → 1 (nothing differs in pattern); exactly one
    constant map → 0.
    """
    x, y, w = _flatten_pair(a, b, mask)
    return _centred_cosine(x, y, w, centre=True).float()


def cosine(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Cosine similarity of the flattened maps, :math:`\langle a,b\rangle / (\|a\|\|b\|)`.

    Degenerate cases (never NaN): two all-zero maps → 1; exactly one all-zero map → 0.
    """
    x, y, w = _flatten_pair(a, b, mask)
    return _centred_cosine(x, y, w, centre=False).float()


def topk_iou(a: torch.Tensor, b: torch.Tensor, q: float = 0.2, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Intersection over union of the top-``q`` fraction of pixels of each map, in [0, 1].

    Each map selects exactly :math:`k = \lceil q N \rceil` pixels (ties broken by pixel index), so
    the score of two unrelated maps is about :math:`q / (2 - q)`, not 0. Beware when comparing to a
    small ground-truth region: if the region covers less than ``q`` of the image the IoU is capped
    far below 1 — choose ``q`` = the region's area (SPEC §5, metric pitfalls).
    """
    if not (isinstance(q, float | int) and 0 < q <= 1) or isinstance(q, bool):
        raise ValueError(f"`q` must be a fraction in (0, 1], got {q!r}")
    a, b = check_pair(a, b)
    valid = _check_mask(mask, a)
    top_a = top_fraction_mask(a, q, valid)
    top_b = top_fraction_mask(b, q, valid)
    intersection = (top_a & top_b).flatten(1).sum(dim=1)
    union = (top_a | top_b).flatten(1).sum(dim=1)
    return (intersection.double() / union.clamp_min(1)).float()


SIMILARITIES = {"ssim": ssim, "pearson": pearson, "cosine": cosine, "topk_iou": topk_iou}
"""Similarity functions by name (for the command line and reports)."""
