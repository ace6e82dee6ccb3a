"""Tests for salience_lib.models.runs: the run-folder format (checkpoint + sidecar), reading and finding runs."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import salience_lib.models as models
from salience_lib.models import build_model
from salience_lib.models.runs import (
    CLASSES,
    MODEL_FILE,
    SIDECAR_FILE,
    cpu_state,
    find_runs,
    load_model,
    read_sidecar,
    run_name,
    save_checkpoint,
    write_sidecar,
)

SIZE = 32


def _sidecar(**overrides) -> dict:
    side = {
        "format": 1,
        "arch": "small_cnn",
        "loss": "xent",
        "alpha": None,
        "seed": 0,
        "image_size": SIZE,
        "classes": list(CLASSES),
        "data_hash": "d",
        "recipe_hash": "0123456789abcdef",
        "epoch": 1,
        "epochs": 1,
        "complete": True,
        "metrics": {"val_acc": float("nan")},
    }
    return side | overrides


def _write_run(root: Path, name: str, seed: int = 0, **overrides) -> tuple[Path, nn.Module]:
    torch.manual_seed(seed)
    model = build_model("small_cnn", image_size=SIZE)
    run_dir = root / name
    save_checkpoint(run_dir / MODEL_FILE, cpu_state(model))
    write_sidecar(run_dir, _sidecar(seed=seed, **overrides))
    return run_dir, model


def test_names_exported_from_models() -> None:
    for name in ("MODEL_FILE", "SIDECAR_FILE", "RESUME_FILE", "CLASSES", "load_model", "find_runs", "read_sidecar"):
        assert getattr(models, name) is getattr(models.runs, name)
    assert (MODEL_FILE, SIDECAR_FILE, CLASSES) == ("model.pt", "model.json", ("Real", "Synthetic"))


def test_run_name() -> None:
    assert run_name("cyborg", "small_cnn", 3, "0123456789abcdef") == "cyborg-small_cnn-s3-01234567"


def test_write_and_read_back(tmp_path) -> None:
    run_dir, model = _write_run(tmp_path, "r")
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([MODEL_FILE, SIDECAR_FILE])  # no temp files left
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(run_dir / MODEL_FILE).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    side = read_sidecar(run_dir)
    assert side["metrics"]["val_acc"] is None  # NaN is written as null
    assert (run_dir / SIDECAR_FILE).read_text().endswith("}\n")
    loaded, side = load_model(run_dir)
    assert not loaded.training
    assert side["arch"] == "small_cnn"
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_cpu_state_is_contiguous_cpu() -> None:
    model = build_model("small_cnn", image_size=SIZE).to(memory_format=torch.channels_last)
    state = cpu_state(model)
    assert state.keys() == model.state_dict().keys()
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in state.values())


def test_read_sidecar_missing_corrupt_incomplete(tmp_path) -> None:
    assert read_sidecar(tmp_path) is None
    (tmp_path / SIDECAR_FILE).write_text('{"arch": "small_cnn", ')
    with pytest.raises(ValueError, match=rf"corrupt sidecar .*{SIDECAR_FILE}"):
        read_sidecar(tmp_path)
    (tmp_path / SIDECAR_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_sidecar(tmp_path)
    (tmp_path / SIDECAR_FILE).write_text(json.dumps({"arch": "small_cnn", "complete": True}))
    with pytest.raises(ValueError, match=rf"incomplete sidecar .*{SIDECAR_FILE}: missing loss, seed, image_size"):
        read_sidecar(tmp_path)
    with pytest.raises(ValueError, match="incomplete sidecar"):
        find_runs(tmp_path.parent)


def test_load_model_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=SIDECAR_FILE):
        load_model(tmp_path)
    run_dir, _ = _write_run(tmp_path, "unfinished", complete=False)
    with pytest.raises(ValueError, match="not complete"):
        load_model(run_dir)


def test_load_model_refuses_pickled_objects(tmp_path) -> None:
    run_dir, _ = _write_run(tmp_path, "r")
    save_checkpoint(run_dir / MODEL_FILE, {"fc.weight": torch.zeros(2, 128), "extra": nn.ReLU()})
    refused = r"model\.pt holds a pickled torch\.nn\.modules\.activation\.ReLU.*weights_only"
    with pytest.raises(ValueError, match=refused) as info:
        load_model(run_dir)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_find_runs_filters(tmp_path) -> None:
    root = tmp_path / "runs"
    a, _ = _write_run(root, "a", loss="xent")
    b, _ = _write_run(root, "b", loss="cyborg", alpha=0.5)
    _write_run(root, "unfinished", complete=False)
    no_model, _ = _write_run(root, "no-model")
    (no_model / MODEL_FILE).unlink()
    (root / "not-a-run").mkdir()
    (root / "stray-file").write_text("")
    assert find_runs(root) == [a, b]
    assert find_runs(root, "cyborg") == [b]
    assert find_runs(root, arch="resnet18") == []
    assert find_runs(tmp_path / "nowhere") == []
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("train,Real,a.png\n")
    assert find_runs(root, data=data) == []  # trained on data hash "d", not on this folder


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_truncated_or_empty_checkpoint_is_named(tmp_path, damage: str) -> None:
    run_dir, _ = _write_run(tmp_path, "r")
    model = run_dir / MODEL_FILE
    content = {"truncated": model.read_bytes()[: model.stat().st_size // 2], "empty": b"", "garbage": b"\x00junk"}
    model.write_bytes(content[damage])
    with pytest.raises(ValueError, match=rf"corrupt or truncated checkpoint {re.escape(str(model))} \(") as info:
        load_model(run_dir)
    assert "\n" not in str(info.value)


def test_checkpoint_of_another_architecture_is_named(tmp_path) -> None:
    run_dir, _ = _write_run(tmp_path, "r")
    save_checkpoint(run_dir / MODEL_FILE, {"fc.weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=rf"checkpoint {re.escape(str(run_dir / MODEL_FILE))} does not fit small_cnn"):
        load_model(run_dir)
