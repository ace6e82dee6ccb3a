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


def _window_means(a: torch.Tensor, b: torch.Tensor, win: int) -> torch.Tensor:
    """``(4, B, H − win + 1, W − win + 1)`` float64 window means of u, v, u², v² (u = a + b, v = a − b).

    Running sums with a leading zero row/column, written into preallocated buffers so that each
    step is one pass over memory (the op is memory-bound and this runs on cache-sized chunks).
    """
    batch, height, width = a.shape
    x, y = a.double(), b.double()
    if (height, width) == (win, win):  # the paper's case: a 7×7 map is exactly one window
        u, v = x + y, x - y
        return torch.stack([u, v, u * u, v * v]).mean(dim=(-2, -1), keepdim=True)
    stats = torch.empty(4, batch, height, width + 1, dtype=torch.float64, device=a.device)
    stats[..., 0] = 0
    u, v, uu, vv = stats[..., 1:].unbind(0)
    torch.add(x, y, out=u)
    torch.sub(x, y, out=v)
    torch.mul(u, u, out=uu)
    torch.mul(v, v, out=vv)
    stats.cumsum_(-1)
    rows = torch.empty(4, batch, height + 1, width + 1 - win, dtype=torch.float64, device=a.device)
    rows[..., 0, :] = 0
    torch.sub(stats[..., win:], stats[..., :-win], out=rows[..., 1:, :])
    rows.cumsum_(-2)
    return (rows[..., win:, :] - rows[..., :-win, :]).mul_(1.0 / (win * win))


def _ssim_map(a: torch.Tensor, b: torch.Tensor, win: int, data_range: float) -> torch.Tensor:
    """SSIM at every valid window position, ``(B, H − win + 1, W − win + 1)`` in float64.

    With u = a + b and v = a − b four window statistics suffice instead of five:
    2μaμb = (μu² − μv²)/2, μa² + μb² = (μu² + μv²)/2, 2σab = (σu² − σv²)/2, σa² + σb² = (σu² + σv²)/2.
    Numerator and denominator are both scaled by 4·(N − 1)/N, which leaves
    ((P + 2C1)(Σuu − Σvv − P + 2C2')) / ((Q + 2C1)(Σuu + Σvv − Q + 2C2')), P = μu² − μv²,
    Q = μu² + μv², C2' = C2·(N − 1)/N (sample covariance, as skimage's default).
    """
    mu, mv, muu, mvv = _window_means(a, b, win).unbind(0)
    n = win * win
    c1 = 2 * (0.01 * data_range) ** 2
    c2 = 2 * (0.03 * data_range) ** 2 * (n - 1) / n
    mu2 = mu * mu
    mv2 = mv * mv
    p = mu2 - mv2
    q = mu2.add_(mv2)
    spread_difference = (muu - mvv).sub_(p).add_(c2)
    spread_sum = muu.add_(mvv).sub_(q).add_(c2)
    return p.add_(c1).mul_(spread_difference).div_(q.add_(c1).mul_(spread_sum))


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
