"""The trained runs as tables and figures: an overview, a model's layers, training histories, decisions.

- :func:`runs_overview`: one row per run (recipe, seed, validation accuracy, training time);
- :func:`architecture_table`: a :class:`~salience_lib.models.builders.SalienceClassifier`'s blocks
  with their output size, stride and receptive field, found by one probing forward pass;
- :func:`plot_histories`: the per-epoch histories of every run, one panel per quantity;
- :func:`called_synthetic` and :func:`plot_called_synthetic`: how often each model calls the
  images of a group "synthetic", with and without the shortcut cue.

Importing this module draws nothing; pandas and pyplot are imported when a function needs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from salience_lib.book.chapters import in_batches
from salience_lib.book.style import RECIPE_LABELS, recipe_color
from salience_lib.inference import class_probabilities

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from salience_lib.evaluation import EvaluationData
    from salience_lib.models.builders import SalienceClassifier

__all__ = ["architecture_table", "called_synthetic", "plot_called_synthetic", "plot_histories", "runs_overview"]

#: The image groups and cue conditions of :func:`called_synthetic`, in the order of its plot.
CUE_CELLS: tuple[tuple[str, bool], ...] = tuple((g, cue) for g in ("real", "seen", "unseen") for cue in (False, True))


def runs_overview(sidecars: Mapping[str | os.PathLike[str], Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run folder (by name): recipe label, seed, validation accuracy and training time (s).

    Args:
        sidecars: run folder -> its sidecar (:func:`salience_lib.models.runs.read_sidecar`), with
            ``loss``, ``seed`` and ``metrics`` (``val_acc``, ``train_seconds``).

    Raises:
        KeyError: a sidecar without those entries, naming the run.
    """
    import pandas as pd

    rows = []
    for run, sidecar in sidecars.items():
        try:
            rows.append(
                {
                    "run": Path(run).name,
                    "recipe": RECIPE_LABELS.get(sidecar["loss"], sidecar["loss"]),
                    "seed": sidecar["seed"],
                    "validation accuracy": sidecar["metrics"]["val_acc"],
                    "training time (s)": sidecar["metrics"]["train_seconds"],
                }
            )
        except KeyError as error:
            raise KeyError(f"{run}: the sidecar has no {error.args[0]!r}") from None
    return pd.DataFrame(rows).set_index("run")


def architecture_table(model: SalienceClassifier, image_size: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """The blocks of ``model.features`` (each starting with its convolution) and the head, as a table.

    One forward pass of a zero image of ``image_size`` px (no autograd) gives each block's output;
    the receptive field grows by ``(kernel - 1) · dilation · jump`` per block, where ``jump`` is the
    product of the strides before it.

    Returns:
        The table (index ``block``; ``channels``, ``stride``, ``output (px)``, ``receptive field (px)``,
        ``parameters``) and ``{"feature_side", "receptive_field", "parameters"}`` (the last feature
        map's side, the receptive field of its cells, the model's parameter count).

    Raises:
        TypeError: a block whose first layer is not a convolution (not the ``small_cnn`` layout).
    """
    import pandas as pd

    device = next(model.parameters()).device
    rows, receptive_field, jump = [], 1, 1
    with torch.no_grad():
        x = model.normalize(torch.zeros(1, 3, image_size, image_size, device=device))
        for name, block in model.features.named_children():
            conv = block[0] if isinstance(block, torch.nn.Sequential) and len(block) else block
            if not isinstance(conv, torch.nn.Conv2d):
                raise TypeError(f"block {name!r} does not start with a Conv2d (got {type(conv).__name__})")
            x = block(x)
            receptive_field += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
            jump *= conv.stride[0]
            rows.append(
                {
                    "block": name,
                    "channels": x.shape[1],
                    "stride": conv.stride[0],
                    "output (px)": f"{x.shape[2]}×{x.shape[3]}",
                    "receptive field (px)": receptive_field,
                    "parameters": sum(p.numel() for p in block.parameters()),
                }
            )
    rows.append(
        {
            "block": "GAP + fc",
            "channels": model.fc.out_features,
            "stride": "–",
            "output (px)": f"{model.fc.out_features} logits",
            "receptive field (px)": "whole image",
            "parameters": sum(p.numel() for p in model.fc.parameters()),
        }
    )
    info = {
        "feature_side": int(x.shape[-1]),
        "receptive_field": int(receptive_field),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return pd.DataFrame(rows).set_index("block"), info


def plot_histories(
    sidecars: Mapping[Any, Mapping[str, Any]],
    panels: Sequence[tuple[str, str, str]],
    *,
    ncols: int = 2,
    log: Sequence[str] = (),
    panel_size: tuple[float, float] = (5.0, 3.3),
) -> Figure:
    """Every run's per-epoch history, one panel per quantity, one line per run in its recipe's colour.

    Args:
        sidecars: run -> sidecar with ``loss`` and ``history`` (a list of per-epoch dicts with
            ``epoch`` and the quantities).
        panels: ``(key, ylabel, title)`` per panel, filled row by row; a run whose ``key`` is missing
            or NaN in every epoch (XENT has no CAM term) draws no line there.
        ncols: panels per row.
        log: the keys drawn on a logarithmic y axis.
        panel_size: width and height of one panel in inches.

    Returns:
        The figure; the first panel has the recipe legend.

    Raises:
        ValueError: no panels.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not panels:
        raise ValueError("`panels` is empty: nothing to plot")
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), sharex=True, squeeze=False
    )
    order = list(dict.fromkeys(sidecar["loss"] for sidecar in sidecars.values()))
    for ax, (key, ylabel, title) in zip(axes.flat, panels, strict=False):
        labelled: set[str] = set()
        for sidecar in sidecars.values():
            loss = sidecar["loss"]
            epochs = [row["epoch"] for row in sidecar["history"]]
            values = np.array([np.nan if row.get(key) is None else row[key] for row in sidecar["history"]], float)
            if np.isnan(values).all():
                continue
            ax.plot(
                epochs,
                values,
                color=recipe_color(loss, order.index(loss)),
                alpha=0.8,
                lw=1.4,
                label=None if loss in labelled else RECIPE_LABELS.get(loss, loss),
            )
            labelled.add(loss)
        ax.set(title=title, ylabel=ylabel)
        if key in log:
            ax.set_yscale("log")
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.flat[0].legend(title="recipe")
    fig.tight_layout()
    return fig


def called_synthetic(
    models: Mapping[str, tuple[torch.nn.Module, Mapping[str, Any]]],
    data: EvaluationData,
    *,
    batch_size: int = 256,
    cells: Sequence[tuple[str, bool]] = CUE_CELLS,
) -> pd.DataFrame:
    """Per model and ``(group, cue)`` cell, the share of the images it calls synthetic (p > 0.5).

    Args:
        models: run name -> (model, sidecar with ``loss`` and ``seed``), as :func:`load_runs` gives.
        data: a split with metadata (groups and the shortcut cue), e.g. ``evaluation.load_split``.
        batch_size: images per forward pass, on the model's device.
        cells: the ``(group, cue present)`` cells.

    Returns:
        One row per model and cell: ``recipe`` (the loss), ``seed``, ``group``, ``cue``,
        ``called synthetic`` (NaN for a cell without images).

    Raises:
        ValueError: a split without metadata.
    """
    import pandas as pd

    if data.shortcut is None:
        raise ValueError("`data` has no metadata (groups and shortcut cue): need a generated data set")
    rows = []
    for model, sidecar in models.values():
        device = next(model.parameters()).device
        p_synthetic = in_batches(lambda x, m=model: class_probabilities(m, x)[:, 1], data.images, batch_size, device)
        for group, cue in cells:
            chosen = data.group(group) & (data.shortcut == cue)
            share = float((p_synthetic[chosen] > 0.5).float().mean()) if chosen.any() else float("nan")
            rows.append(
                {
                    "recipe": sidecar["loss"],
                    "seed": sidecar["seed"],
                    "group": group,
                    "cue": cue,
                    "called synthetic": share,
                }
            )
    return pd.DataFrame(rows)


def plot_called_synthetic(ax: Axes, rates: pd.DataFrame, cells: Sequence[tuple[str, bool]] = CUE_CELLS) -> None:
    """:func:`called_synthetic` as dots: one per model, at each cell, the recipes side by side in their colours."""
    order = list(dict.fromkeys(rates["recipe"]))
    offsets = np.linspace(-0.15, 0.15, len(order)) if len(order) > 1 else np.zeros(1)
    for x, (group, cue) in enumerate(cells):
        for k, (offset, recipe) in enumerate(zip(offsets, order, strict=True)):
            chosen = (rates["group"] == group) & (rates["cue"] == cue) & (rates["recipe"] == recipe)
            values = rates.loc[chosen, "called synthetic"].to_numpy()
            ax.scatter(
                np.full(len(values), x + offset),
                values,
                color=recipe_color(recipe, k),
                s=22,
                label=RECIPE_LABELS.get(recipe, recipe) if x == 0 else None,
            )
    ax.set_xticks(range(len(cells)), [f"{group}\n{'with' if cue else 'no'} cue" for group, cue in cells])
    ax.set(xlabel="test images", ylabel="called synthetic (fraction)", ylim=(-0.03, 1.03))
    ax.legend(title="recipe", loc="center right")
