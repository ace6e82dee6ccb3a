"""(d) Is salience stable across training runs?

For K models of one recipe that differ only in their seed, per image the mean similarity over all
K(K−1)/2 pairs of their maps:

.. math:: \\mathrm{stab}(x) = \\binom{K}{2}^{-1} \\sum_{i<j} \\mathrm{sim}\\big(S_i(x), S_j(x)\\big)

Also the K×K matrix of pair means (:func:`pairwise_similarity`), a between-recipe baseline
(:func:`cross_set_similarity`: every run of one recipe against every run of the other) and agreement
with a reference such as human annotation maps (:func:`agreement_with_reference`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from salience_lib.maps import check_maps, match_size
from salience_lib.measures.accumulator import Accumulator
from salience_lib.measures.probe import Explainer, Similarity
from salience_lib.similarity import ssim

__all__ = [
    "StabilityAccumulator",
    "agreement_with_reference",
    "cross_run_stability",
    "cross_set_similarity",
    "mean_over_pairs",
    "pairwise_similarity",
    "set_similarity",
    "stability_per_run",
]


def _all_maps(explainers: Sequence[Explainer], images: torch.Tensor, name: str, minimum: int) -> torch.Tensor:
    if not isinstance(explainers, Sequence) or len(explainers) < minimum:
        count = len(explainers) if isinstance(explainers, Sequence) else type(explainers).__name__
        raise ValueError(f"`{name}` must be a sequence of at least {minimum} explainers, got {count}")
    maps = [check_maps(explainer(images), f"{name}[{i}] output") for i, explainer in enumerate(explainers)]
    shapes = {tuple(m.shape) for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"every explainer in `{name}` must return maps of one shape, got {sorted(shapes)}")
    return torch.stack(maps)


def pairwise_similarity(maps: torch.Tensor, similarity: Similarity = ssim) -> torch.Tensor:
    """``(K, B, H, W)`` maps of K models → ``(K, K, B)`` similarities (diagonal: each map with itself).

    All pairs are computed in one batched call of ``similarity``.
    """
    if maps.ndim != 4 or maps.shape[0] < 1:
        raise ValueError(f"`maps` must have shape (K, B, H, W), got {tuple(maps.shape)}")
    k, batch = maps.shape[:2]
    rows, cols = torch.triu_indices(k, k, offset=0)
    values = similarity(maps[rows].flatten(0, 1), maps[cols].flatten(0, 1)).view(-1, batch)
    matrix = torch.empty(k, k, batch, dtype=values.dtype, device=values.device)
    matrix[rows, cols] = values
    matrix[cols, rows] = values
    return matrix


def mean_over_pairs(matrix: torch.Tensor) -> torch.Tensor:
    r"""Per-image mean over the K(K−1)/2 pairs of a ``(K, K, B)`` similarity matrix (:func:`pairwise_similarity`).

    :math:`\binom{K}{2}^{-1} \sum_{i<j} M_{ij}(x)` — the per-image cross-run stability, ``(B,)``.
    """
    if matrix.ndim != 3 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"`matrix` must have shape (K, K, B) with K >= 2, got {tuple(matrix.shape)}")
    k = matrix.shape[0]
    rows, cols = torch.triu_indices(k, k, offset=1)
    return matrix[rows, cols].mean(dim=0)


def cross_run_stability(
    explainers: Sequence[Explainer], images: torch.Tensor, similarity: Similarity = ssim
) -> torch.Tensor:
    """Per-image mean similarity over all pairs of at least 2 explainers, ``(B,)``."""
    maps = _all_maps(explainers, images, "explainers", 2)
    return mean_over_pairs(pairwise_similarity(maps, similarity))


def cross_set_similarity(
    explainers_a: Sequence[Explainer],
    explainers_b: Sequence[Explainer],
    images: torch.Tensor,
    similarity: Similarity = ssim,
) -> torch.Tensor:
    """Per-image mean similarity of every map of set A with every map of set B, ``(B,)``.

    The between-recipe baseline: how similar are an XENT run and a CYBORG run?
    """
    maps_a = _all_maps(explainers_a, images, "explainers_a", 1)
    maps_b = _all_maps(explainers_b, images, "explainers_b", 1)
    return set_similarity(maps_a, maps_b, similarity)


def set_similarity(maps_a: torch.Tensor, maps_b: torch.Tensor, similarity: Similarity = ssim) -> torch.Tensor:
    """``(Ka, B, H, W)`` and ``(Kb, B, H, W)`` maps → ``(B,)`` mean similarity over all Ka·Kb cross pairs."""
    if maps_a.ndim != 4 or maps_b.ndim != 4 or maps_a.shape[1:] != maps_b.shape[1:]:
        shapes = f"{tuple(maps_a.shape)}, {tuple(maps_b.shape)}"
        raise ValueError(f"maps must be (K, B, H, W) with equal (B, H, W), got {shapes}")
    ka, kb = maps_a.shape[0], maps_b.shape[0]
    ia = torch.arange(ka).repeat_interleave(kb)
    ib = torch.arange(kb).repeat(ka)
    values = similarity(maps_a[ia].flatten(0, 1), maps_b[ib].flatten(0, 1))
    return values.view(ka * kb, -1).mean(dim=0)


def stability_per_run(matrix: torch.Tensor | list[list[float]]) -> torch.Tensor:
    r"""Each run's mean similarity to the other runs of its recipe, from the ``(K, K)`` matrix of pair means.

    :math:`s_i = \frac{1}{K-1} \sum_{j \ne i} M_{ij}` — the off-diagonal row mean (``(K,)``, float64).
    The mean of :math:`s` equals the mean of the per-image stability over the same images.
    """
    m = torch.as_tensor(matrix, dtype=torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"`matrix` must be a K×K matrix with K >= 2, got shape {tuple(m.shape)}")
    return (m.sum(dim=1) - m.diagonal()) / (m.shape[0] - 1)


def agreement_with_reference(
    maps: torch.Tensor, reference: torch.Tensor, similarity: Similarity = ssim
) -> torch.Tensor:
    """Similarity of each map to a reference map of the same image (e.g. a human annotation), ``(B,)``.

    The reference is resized to the maps' resolution by :func:`salience_lib.maps.match_size` (area
    averaging when it is larger — a 64 px annotation pooled to an 8×8 map — bilinear otherwise).
    """
    maps = check_maps(maps)
    reference = check_maps(reference, "reference")
    if reference.shape[0] != maps.shape[0]:
        raise ValueError(f"`reference` has {reference.shape[0]} maps but `maps` has {maps.shape[0]}")
    return similarity(maps, match_size(reference.to(maps), tuple(maps.shape[-2:])))


class StabilityAccumulator(Accumulator):
    """Streams cross-run stability of K models: per-image values and the K×K matrix of means."""

    def __init__(self, k: int) -> None:
        super().__init__()
        if k < 2:
            raise ValueError(f"stability needs at least 2 models, got k={k}")
        self.k = k
        self.add_sum_state("matrix_sum", (k, k))
        self.add_cat_state("stability")

    def config(self) -> dict[str, int]:
        return {"k": self.k}

    def update(self, maps: torch.Tensor, similarity: Similarity = ssim) -> torch.Tensor:
        """Add a ``(K, B, H, W)`` stack of the K models' maps for one batch; returns the ``(B,)`` values."""
        if maps.ndim != 4 or maps.shape[0] != self.k:
            raise ValueError(f"`maps` must have shape ({self.k}, B, H, W), got {tuple(maps.shape)}")
        matrix = pairwise_similarity(maps, similarity)
        values = mean_over_pairs(matrix)
        self._add("matrix_sum", matrix.sum(dim=-1))
        self._cat("stability", values)
        return values

    def compute(self) -> dict[str, object]:
        """Summary of per-image stability and the ``(K, K)`` matrix of mean pair similarities."""
        return {
            "stability": self.summary("stability"),
            "matrix": (self.matrix_sum / self.count).float(),
            "n": self.count,
        }
