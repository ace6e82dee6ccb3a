import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from salience_lib.book import runs
from salience_lib.models import build_model


def _sidecar(loss: str, seed: int, history: list[dict] | None = None) -> dict:
    return {
        "loss": loss,
        "seed": seed,
        "metrics": {"val_acc": 0.9 + 0.01 * seed, "train_seconds": 10.0 * (seed + 1)},
        "history": history or [],
    }


def test_runs_overview_one_row_per_run_named_by_its_folder():
    table = runs.runs_overview({"/r/xent-s0": _sidecar("xent", 0), "/r/cyborg-s1": _sidecar("cyborg", 1)})
    assert list(table.index) == ["xent-s0", "cyborg-s1"]
    assert table.loc["cyborg-s1", "recipe"] == "CYBORG" and table.loc["xent-s0", "seed"] == 0
    assert table.loc["cyborg-s1", "validation accuracy"] == pytest.approx(0.91)
    assert table.loc["cyborg-s1", "training time (s)"] == 20.0
    with pytest.raises(KeyError, match="/r/bad: the sidecar has no 'metrics'"):
        runs.runs_overview({"/r/bad": {"loss": "xent", "seed": 0}})


def test_architecture_table_follows_the_small_cnn_blocks():
    model = build_model("small_cnn", image_size=32).eval()
    table, layout = runs.architecture_table(model, 32)
    assert list(table.index)[-1] == "GAP + fc"
    assert table["parameters"].sum() == sum(p.numel() for p in model.parameters()) == layout["parameters"]
    with torch.no_grad():
        _, features = model.forward_features(torch.zeros(1, 3, 32, 32))
    assert layout["feature_side"] == features.shape[-1]
    assert table.iloc[-2]["output (px)"] == f"{features.shape[-1]}×{features.shape[-1]}"
    strides = [int(s) for s in table["stride"].iloc[:-1]]
    assert 32 // math.prod(strides) == layout["feature_side"]
    fields = list(table["receptive field (px)"].iloc[:-1])
    assert fields == sorted(fields) and fields[0] == 3, "a 3×3 first convolution sees 3 px"
    assert layout["receptive_field"] == fields[-1]


def test_architecture_table_refuses_a_block_without_a_convolution():
    model = build_model("small_cnn", image_size=32)
    model.features = nn.Sequential(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="does not start with a Conv2d"):
        runs.architecture_table(model, 32)


def test_plot_histories_one_line_per_run_and_none_where_a_quantity_is_missing():
    history = [{"epoch": e, "train_ce": 1.0 / (e + 1), "train_cam": None, "val_acc": 0.5 + 0.1 * e} for e in range(3)]
    cam = [row | {"train_cam": 0.1} for row in history]
    sidecars = {"a": _sidecar("xent", 0, history), "b": _sidecar("xent", 1, history), "c": _sidecar("cyborg", 0, cam)}
    fig = runs.plot_histories(
        sidecars, [("train_ce", "ce", "CE"), ("train_cam", "mse", "CAM"), ("val_acc", "acc", "ACC")], log=("train_ce",)
    )
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:3]] == ["CE", "CAM", "ACC"]
    assert len(axes[0].get_lines()) == 3 and len(axes[1].get_lines()) == 1, "XENT has no CAM term"
    assert axes[0].get_yscale() == "log" and axes[2].get_yscale() == "linear"
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["XENT", "CYBORG"]
    assert not axes[3].axison, "the unused fourth panel is blank"
    with pytest.raises(ValueError, match="empty"):
        runs.plot_histories(sidecars, [])


class _Split:
    """The parts of ``EvaluationData`` that ``called_synthetic`` reads."""

    def __init__(self):
        self.images = torch.zeros(6, 3, 4, 4)
        self.images[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 1.0])  # "synthetic" where 1
        self.groups = ["real", "real", "seen", "seen", "unseen", "unseen"]
        self.shortcut = torch.tensor([False, True, False, True, False, True])

    def group(self, *names):
        return torch.tensor([g in names for g in self.groups])


class _Pixel(nn.Module):
    """Logits (0, 10·x[0, 0, 0]): calls an image synthetic exactly when that pixel is on."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        on = x[:, 0, 0, 0]
        return torch.stack([torch.zeros_like(on), 10 * on - 5], dim=1) + self.weight


def test_called_synthetic_shares_per_model_and_cell():
    rates = runs.called_synthetic({"m": (_Pixel(), {"loss": "xent", "seed": 3})}, _Split(), batch_size=4)
    assert len(rates) == 6 and set(rates["seed"]) == {3}
    got = {(g, c): v for g, c, v in zip(rates["group"], rates["cue"], rates["called synthetic"], strict=True)}
    assert got == {
        ("real", False): 0.0,
        ("real", True): 1.0,
        ("seen", False): 0.0,
        ("seen", True): 1.0,
        ("unseen", False): 1.0,
        ("unseen", True): 1.0,
    }
    empty = runs.called_synthetic({"m": (_Pixel(), {"loss": "xent", "seed": 3})}, _Split(), cells=[("other", True)])
    assert np.isnan(empty["called synthetic"].iloc[0])
    split = _Split()
    split.shortcut = None
    with pytest.raises(ValueError, match="no metadata"):
        runs.called_synthetic({"m": (_Pixel(), {"loss": "xent", "seed": 0})}, split)


def test_plot_called_synthetic_puts_every_model_at_its_cell():
    models = {"a": (_Pixel(), {"loss": "xent", "seed": 0}), "b": (_Pixel(), {"loss": "cyborg", "seed": 0})}
    rates = runs.called_synthetic(models, _Split())
    _, ax = plt.subplots()
    runs.plot_called_synthetic(ax, rates)
    assert len(ax.collections) == 2 * len(runs.CUE_CELLS)
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["real\nno cue", "real\nwith cue"]
    x_xent, y_xent = ax.collections[2].get_offsets()[0]
    assert x_xent == pytest.approx(1 - 0.15) and y_xent == 1.0, "XENT left of the cell 'real, with cue'"
