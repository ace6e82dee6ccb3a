"""Summaries with uncertainty: bootstrap confidence intervals and two-sample tests over seeds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats as scipy_stats

__all__ = ["Summary", "bootstrap_ci", "mann_whitney", "roc_auc", "summarise", "summarise_recipes"]


@dataclass
class Summary:
    """Mean of per-image (or per-model) values with a percentile-bootstrap confidence interval.

    (Not frozen: TorchMetrics copies what ``compute()`` returns field by field.)
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float]:
        """Plain dict, for JSON reports."""
        return asdict(self)


def _as_float64(values: torch.Tensor | np.ndarray | list[float], name: str = "values") -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values.detach().to("cpu", torch.float64).reshape(-1)
    else:
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1)
    if tensor.numel() == 0:
        raise ValueError(f"`{name}` is empty: nothing to summarise")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"`{name}` contains NaN or inf")
    return tensor


def bootstrap_ci(
    values: torch.Tensor | np.ndarray | list[float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    chunk_elements: int = 2**20,
) -> tuple[float, float]:
    r"""Percentile bootstrap CI of the mean (Efron & Tibshirani, 1993, ch. 13).

    Draws ``n_resamples`` resamples of size :math:`n` with replacement, takes each mean, and returns
    the :math:`(1-c)/2` and :math:`(1+c)/2` quantiles. Vectorised in chunks of at most
    ``chunk_elements`` indices, so memory stays bounded for large :math:`n`. A single value gives
    the degenerate interval ``(v, v)``. The values are sorted first, so the interval depends only on
    the multiset of values (not on batch order or on how a distributed run sharded them).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must lie in (0, 1), got {confidence}")
    data = _as_float64(values).sort().values
    n = data.numel()
    if n == 1:
        value = float(data[0])
        return value, value
    generator = torch.Generator().manual_seed(seed)
    per_chunk = max(1, chunk_elements // n)
    means = []
    for start in range(0, n_resamples, per_chunk):
        rows = min(per_chunk, n_resamples - start)
        index = torch.randint(0, n, (rows, n), generator=generator)
        means.append(data[index].mean(dim=1))
    all_means = torch.cat(means)
    alpha = (1 - confidence) / 2
    low, high = torch.quantile(all_means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(low), float(high)


def summarise(values: torch.Tensor | np.ndarray | list[float], confidence: float = 0.95, seed: int = 0) -> Summary:
    """Mean and bootstrap CI of ``values`` (see :func:`bootstrap_ci`)."""
    data = _as_float64(values)
    low, high = bootstrap_ci(data, confidence=confidence, seed=seed)
    return Summary(float(data.mean()), low, high, int(data.numel()), confidence)


def mann_whitney(
    a: torch.Tensor | np.ndarray | list[float], b: torch.Tensor | np.ndarray | list[float]
) -> dict[str, float]:
    """Two-sided Mann–Whitney U test (exact for small samples) via :func:`scipy.stats.mannwhitneyu`.

    With 5 vs 5 seeds the smallest possible two-sided p-value is 2/252 ≈ 0.008.
    Returns ``{"u": U statistic of a, "p": p-value, "effect": common-language effect size U/(n_a·n_b)}``.
    """
    x = _as_float64(a, "a").numpy()
    y = _as_float64(b, "b").numpy()
    result = scipy_stats.mannwhitneyu(x, y, alternative="two-sided")
    return {
        "u": float(result.statistic),
        "p": float(result.pvalue),
        "effect": float(result.statistic) / (len(x) * len(y)),
    }


def roc_auc(
    positives: torch.Tensor | np.ndarray | list[float], negatives: torch.Tensor | np.ndarray | list[float]
) -> float:
    """Area under the ROC curve of scores: P(positive > negative) + ½ P(tie) = U / (n_pos · n_neg).

    Hanley & McNeil (1982); the Mann–Whitney U statistic of the positives, via scipy's ranks.
    """
    x = _as_float64(positives, "positives").numpy()
    y = _as_float64(negatives, "negatives").numpy()
    statistic = scipy_stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(statistic) / (len(x) * len(y))


def summarise_recipes(models: dict[str, dict], a: str = "xent", b: str = "cyborg") -> dict:
    """Per metric: per-recipe values, mean and 95% bootstrap CI over seeds, and Mann–Whitney of a vs b.

    Args:
        models: model name -> ``{"loss": recipe, <metric>: float, ...}``. Only ``float`` values are
            metrics (a ``seed`` or a count stored as ``int`` is not summarised).
        a, b: the two recipes that the Mann–Whitney test compares.

    Returns:
        metric -> ``{recipe: {"values", "mean", "ci_low", "ci_high", "n", "confidence"}, ...,
        "mann_whitney": {"u", "p", "effect"}}``; the test is present only when both recipes have at
        least two values of the metric.
    """
    metrics = sorted({k for m in models.values() for k, v in m.items() if isinstance(v, float)})
    out: dict[str, dict] = {}
    for metric in metrics:
        entry: dict[str, object] = {}
        values = {}
        for recipe in sorted({m["loss"] for m in models.values()}):
            vals = [m[metric] for m in models.values() if m["loss"] == recipe and metric in m]
            if vals:
                values[recipe] = vals
                entry[recipe] = {"values": vals, **summarise(vals).as_dict()}
        if a in values and b in values and len(values[a]) > 1 and len(values[b]) > 1:
            entry["mann_whitney"] = mann_whitney(values[a], values[b])
        out[metric] = entry
    return out
