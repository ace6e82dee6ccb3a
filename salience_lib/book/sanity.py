"""The model-randomisation sanity check of the sanity chapter (Adebayo et al., NeurIPS 2018).

Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018, arXiv:1810.03292), §3: re-initialise
a trained network's layers one at a time from the head (logits) down, *cumulatively*, and see whether
the explanation changes. An explanation that looks the same for a network whose weights are random
explains nothing about what the network learned. Here the same cascade is put to the five measures:
does a measure's value move when the model it describes is destroyed?

- :func:`randomisation_layers` groups a model's parameterised modules into layers (a convolution or
  linear module with the normalisation that follows it), head first;
- :func:`cascading_randomisation` yields the trained model (depth 0) and one copy per depth, each
  with one more layer re-initialised; the caller's model is never changed;
- :func:`spearman` (rank correlation with average ranks for ties) and :func:`similarity_to_trained`
  compare every depth's maps with the trained model's;
- :func:`cascade_stability` is stability (d) of the cascade: the agreement of copies randomised
  with different seeds, depth by depth;
- :func:`sanity_frame`, :func:`map_similarity_frame` and :func:`first_departure` turn the numbers into
  one long table (recipe, depth, layer, measure, mean, CI), and :func:`plot_sanity` draws it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from salience_lib.book.chapters import explain_all
from salience_lib.book.results import HEADLINE, result_value
from salience_lib.book.style import RECIPE_LABELS, recipe_color
from salience_lib.maps import minmax_normalise, resize_maps
from salience_lib.measures.stability import mean_over_pairs, pairwise_similarity
from salience_lib.similarity import pearson, ssim
from salience_lib.stats import summarise

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "NORM_LAYERS",
    "cascade_stability",
    "cascading_randomisation",
    "first_departure",
    "map_similarity_frame",
    "plot_sanity",
    "randomisation_layers",
    "sanity_frame",
    "similarity_to_trained",
    "spearman",
    "upsample_maps",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
"""Normalisation modules: each is re-initialised together with the parameterised module before it."""

FRAME_COLUMNS = ["recipe", "depth", "layer", "measure", "mean", "ci_low", "ci_high", "n"]


def _label(names: Sequence[str]) -> str:
    """The dotted prefix the module names of one layer share (``features.block4``), else the first name."""
    if len(names) == 1:
        return names[0]
    parts = [name.split(".") for name in names]
    common = []
    for pieces in zip(*parts, strict=False):
        if len(set(pieces)) != 1:
            break
        common.append(pieces[0])
    return ".".join(common) or names[0]


def randomisation_layers(model: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """The layers of the cascade, head first: ``[(label, module names), ...]``.

    A layer is a module with parameters of its own (convolution, linear, ...), together with the
    normalisation modules (:data:`NORM_LAYERS`) registered right after it; its label is the dotted
    prefix the names share (``features.block4`` for ``features.block4.0`` and ``features.block4.1``).
    The order is the order in which the modules are registered, reversed: for sequential backbones
    followed by a head (``small_cnn``, torchvision's ResNets) that is the head first, then the last
    convolution, and so on down to the first.

    Raises:
        ValueError: a model without parameterised modules, or one whose module cannot be
            re-initialised (no ``reset_parameters``).
    """
    groups: list[list[str]] = []
    for name, module in model.named_modules():
        is_norm = isinstance(module, NORM_LAYERS)
        if not is_norm and next(module.parameters(recurse=False), None) is None:
            continue
        if not hasattr(module, "reset_parameters"):
            kind = type(module).__name__
            raise ValueError(f"module {name!r} ({kind}) has no reset_parameters(): cannot re-initialise it")
        if is_norm and groups:
            groups[-1].append(name)
        else:
            groups.append([name])
    if not groups:
        raise ValueError("`model` has no parameterised modules to randomise")
    return [(_label(names), tuple(names)) for names in reversed(groups)]


def _layer_seed(seed: int, depth: int, position: int) -> int:
    """A seed for the ``position``-th module of the layer at ``depth`` (independent streams per module)."""
    return int(np.random.SeedSequence([int(seed), int(depth), int(position)]).generate_state(1)[0])


def _reinitialise(module: nn.Module, seed: int) -> None:
    """Re-draw ``module``'s parameters (and reset its buffers) as at construction, on the CPU with ``seed``.

    The fresh values are drawn on the CPU inside :func:`torch.random.fork_rng`, so they do not depend
    on the module's device, and the caller's random state is left as it was.
    """
    fresh = copy.deepcopy(module).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh.reset_parameters()
    module.load_state_dict(fresh.state_dict())


def cascading_randomisation(
    model: nn.Module, seed: int = 0, layers: Sequence[tuple[str, Sequence[str]]] | None = None
) -> Iterator[tuple[int, str, nn.Module]]:
    """Cascading randomisation: ``(depth, layer label, model copy)`` from the trained model down.

    Depth 0 is a copy of the trained model (label ``"trained"``); depth :math:`d` is a copy whose
    :math:`d` layers nearest the head are re-initialised, as PyTorch initialises a fresh module
    (``reset_parameters()``: Kaiming-uniform convolution and linear weights; batch normalisation back
    to weight 1, bias 0, running mean 0 and variance 1, which makes it the identity in eval mode).
    The randomisation is cumulative: a layer keeps the random weights it got at the depth where it was
    re-initialised. Its weights depend only on ``seed``, its depth and its position in the layer, so
    the same seed gives the same copies, whatever the device or the caller's random state.

    Every yielded model is a separate copy (in the training/eval mode of ``model``); ``model`` itself
    is never changed.

    Args:
        model: the trained classifier.
        seed: seed of the random weights.
        layers: ``[(label, module names), ...]`` head first; default :func:`randomisation_layers`.
    """
    groups = randomisation_layers(model) if layers is None else [(label, tuple(names)) for label, names in layers]
    current = copy.deepcopy(model)
    yield 0, "trained", copy.deepcopy(current)
    for depth, (label, names) in enumerate(groups, start=1):
        for position, name in enumerate(names):
            _reinitialise(current.get_submodule(name), _layer_seed(seed, depth, position))
        yield depth, label, copy.deepcopy(current)


def _average_ranks(flat: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of each row of ``flat`` (B, N), ties given their average rank (as scipy.stats.rankdata)."""
    ordered = flat.sort(dim=1).values.contiguous()
    below = torch.searchsorted(ordered, flat.contiguous(), right=False)
    at_most = torch.searchsorted(ordered, flat.contiguous(), right=True)
    return (below + at_most + 1).double() / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Spearman's rank correlation of the pixels of two batches of maps, ``(B, H, W), (B, H, W) -> (B,)``.

    Pearson's correlation of the pixel ranks, tied pixels (the zeros Grad-CAM's ReLU leaves) taking
    their average rank, as :func:`scipy.stats.spearmanr` does. Degenerate cases follow
    :func:`salience_lib.similarity.pearson`: two constant maps → 1, exactly one → 0 (never NaN).
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"`a` and `b` must both be (B, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    ranks_a = _average_ranks(a.double().flatten(1)).view(a.shape)
    ranks_b = _average_ranks(b.double().flatten(1)).view(b.shape)
    return pearson(ranks_a, ranks_b)


_Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_MAP_SIMILARITIES: dict[str, _Similarity] = {"Spearman": spearman, "SSIM": ssim}


def similarity_to_trained(
    maps: torch.Tensor, similarities: Mapping[str, _Similarity] | None = None
) -> dict[str, torch.Tensor]:
    """Each depth's maps compared with depth 0's, image by image: ``(D, N, h, w) -> {name: (D, N)}``.

    Args:
        maps: the maps of depths 0..D-1 of the cascade on the same N images (depth 0 = trained).
        similarities: name → similarity of two map batches; default Spearman (:func:`spearman`) and
            SSIM (:func:`salience_lib.similarity.ssim`).
    """
    if maps.dim() != 4:
        raise ValueError(f"`maps` must be (depths, images, h, w), got {tuple(maps.shape)}")
    chosen = _MAP_SIMILARITIES if similarities is None else similarities
    reference = maps[0]
    return {name: torch.stack([compare(at_depth, reference) for at_depth in maps]) for name, compare in chosen.items()}


def upsample_maps(maps: torch.Tensor, size: int | None) -> torch.Tensor:
    """``(..., h, w)`` maps bilinearly resized to ``size`` px and min–max normalised (``None``: unchanged)."""
    if size is None:
        return maps
    flat = minmax_normalise(resize_maps(maps.flatten(0, -3), size))
    return flat.view(*maps.shape[:-2], size, size)


def cascade_stability(
    model: nn.Module,
    images: torch.Tensor,
    seeds: Sequence[int],
    *,
    map_size: int | None = None,
    batch_size: int = 256,
    similarity: _Similarity = ssim,
) -> torch.Tensor:
    """Stability (d) of the randomised copies: per depth and image, the mean similarity over pairs of seeds.

    At each depth of :func:`cascading_randomisation`, the copies made with the different ``seeds``
    share the trained layers below and differ in the random ones; their maps (Grad-CAM of the
    predicted class, :func:`~salience_lib.book.chapters.explain_all`, upsampled to ``map_size``) are
    compared pair by pair as (d) compares seeds of a recipe. Depth 0 is 1 by construction (identical
    copies of the trained model).

    Returns:
        ``(depths, images)`` per-image mean similarity over the ``K(K-1)/2`` pairs of seeds.

    Raises:
        ValueError: fewer than two seeds.
    """
    if len(seeds) < 2:
        raise ValueError(f"`seeds` needs at least two seeds to compare, got {list(seeds)}")
    cascades = [[copy for _, _, copy in cascading_randomisation(model, seed)] for seed in seeds]
    per_depth = []
    for copies in zip(*cascades, strict=True):
        maps = upsample_maps(explain_all(list(copies), images, batch_size), map_size)
        per_depth.append(mean_over_pairs(pairwise_similarity(maps, similarity)))
    return torch.stack(per_depth)


def sanity_frame(
    result: Mapping[str, Any], depths: Mapping[str, tuple[str, int, str]], columns: Mapping[str, str] = HEADLINE
) -> pd.DataFrame:
    """The engine's result for the cascade as a long table: one row per (recipe, depth, measure).

    Args:
        result: what :func:`salience_lib.evaluate` returned for the randomised copies.
        depths: model name in ``result`` → ``(recipe, depth, layer label)``.
        columns: measure label → dotted path of its summary (:data:`~salience_lib.book.results.HEADLINE`).

    Returns:
        Columns ``recipe, depth, layer, measure, mean, ci_low, ci_high, n`` (CI: 95% bootstrap over images).
    """
    import pandas as pd

    rows = []
    for name, (recipe, depth, layer) in depths.items():
        model = result["models"][name]
        for measure, path in columns.items():
            entry = result_value(model, path)
            rows.append([recipe, depth, layer, measure, *(float(entry[k]) for k in ("mean", "ci_low", "ci_high")),
                         int(entry["n"])])
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def map_similarity_frame(
    values: Mapping[str, Mapping[str, torch.Tensor]], layers: Mapping[str, Sequence[str]], seed: int = 0
) -> pd.DataFrame:
    """Per-image values by depth summarised in the long form of :func:`sanity_frame`.

    Args:
        values: recipe → measure label → ``(D, N)`` per-image values (e.g. :func:`similarity_to_trained`).
        layers: recipe → the D layer labels, depth 0 first.
        seed: seed of the bootstrap CIs (:func:`salience_lib.stats.summarise`).
    """
    import pandas as pd

    rows = []
    for recipe, by_measure in values.items():
        for measure, per_image in by_measure.items():
            if per_image.shape[0] != len(layers[recipe]):
                n_labels = len(layers[recipe])
                raise ValueError(f"{recipe} {measure}: {per_image.shape[0]} depths but {n_labels} layer labels")
            for depth, (layer, row) in enumerate(zip(layers[recipe], per_image, strict=True)):
                summary = summarise(row, seed=seed)
                rows.append([recipe, depth, layer, measure, summary.mean, summary.ci_low, summary.ci_high, summary.n])
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def first_departure(frame: pd.DataFrame, measure: str, recipe: str) -> tuple[int, str] | None:
    """The first depth whose 95% CI does not overlap the trained model's (depth 0), or None if none.

    A deliberately simple rule, the same for every measure: the intervals are over images, and the
    images are the same at every depth, so non-overlap is a conservative sign that the value moved.
    """
    rows = frame[(frame["measure"] == measure) & (frame["recipe"] == recipe)].sort_values("depth")
    if rows.empty:
        raise ValueError(f"no rows for measure {measure!r} and recipe {recipe!r}")
    trained = rows.iloc[0]
    for _, row in rows.iloc[1:].iterrows():
        if row["ci_low"] > trained["ci_high"] or row["ci_high"] < trained["ci_low"]:
            return int(row["depth"]), str(row["layer"])
    return None


def plot_sanity(
    frame: pd.DataFrame,
    measures: Sequence[str],
    ncols: int = 4,
    panel_size: tuple[float, float] = (3.2, 2.7),
    references: Mapping[str, Mapping[str, float]] | None = None,
    reference_label: str = "reference",
) -> tuple[Figure, np.ndarray]:
    """Each measure against randomisation depth, one line with a 95% CI band per recipe.

    The x axis is the depth (0 = trained), labelled with the layer re-initialised last; lines take the
    recipe colours of :mod:`salience_lib.book.style`. ``references`` (measure → recipe → value) adds
    dashed horizontal lines in the recipe's colour, named ``reference_label`` in the legend.

    Returns:
        The figure and its axes (flat array; unused panels are switched off).
    """
    import matplotlib.pyplot as plt

    nrows = -(-len(measures) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False)
    axes = axes.ravel()
    for ax, measure in zip(axes, measures, strict=False):
        rows = frame[frame["measure"] == measure]
        if rows.empty:
            raise ValueError(f"no rows for measure {measure!r}")
        for position, (recipe, part) in enumerate(rows.groupby("recipe", sort=False)):
            part = part.sort_values("depth")
            color = recipe_color(recipe, position)
            ax.plot(part["depth"], part["mean"], marker="o", markersize=3.5, color=color,
                    label=RECIPE_LABELS.get(recipe, recipe))
            ax.fill_between(part["depth"], part["ci_low"], part["ci_high"], color=color, alpha=0.18, linewidth=0)
            if references and recipe in references.get(measure, {}):
                ax.axhline(references[measure][recipe], color=color, linestyle="--", linewidth=1,
                           label=f"{RECIPE_LABELS.get(recipe, recipe)}, {reference_label}")
        ticks = rows.drop_duplicates("depth").sort_values("depth")
        labels = [f"{d} {layer.split('.')[-1]}" for d, layer in zip(ticks["depth"], ticks["layer"], strict=True)]
        ax.set_xticks(ticks["depth"], labels, fontsize="x-small", rotation=35, ha="right", rotation_mode="anchor")
        ax.set_title(measure, fontsize="small")
    for ax in axes[len(measures):]:
        ax.axis("off")
    for index, ax in enumerate(axes[: len(measures)]):
        if index + ncols >= len(measures):  # the lowest panel of its column
            ax.set_xlabel("randomised down to (depth, layer)", fontsize="x-small")
    for ax in axes[: len(measures)]:
        if references and ax.get_title() in references:
            ax.legend(fontsize="xx-small")
    axes[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig, axes
