"""The CYBORG authors' own formats end to end: their data layout and their checkpoints, no conversion.

A ``Data/`` folder with ``csvs/test.csv`` (leading-slash paths, ``<family>_aligned`` folders, no
metadata file) and plain torchvision models saved as ``{"state_dict": ...}`` with a 2-way head,
listed in a models file: the CLI report and :func:`salience_lib.evaluate` run all five measures on
them, stability of a recipe's runs included, and take the shift groups from the folder names.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torchvision

import salience_lib
from salience_lib import cli
from salience_lib.book.own_data import write_cyborg_folder
from salience_lib.models.checkpoints import replace_head


def _save_plain(arch: str, seed: int, path: Path) -> None:
    """A random-init torchvision ``arch`` with a 2-way head, saved as the authors save theirs."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    replace_head(model, 2)
    torch.save({"state_dict": model.state_dict()}, path)


def _plain_file(arch: str, seed: int, folder: Path) -> Path:
    path = folder / f"{arch}_{seed}.pth"
    _save_plain(arch, seed, path)
    return path


def _models_file(folder: Path, entries: list[tuple[str, str, int]]) -> Path:
    rows = []
    for name, arch, size in entries:
        path = folder / f"{name.replace('/', '_')}.pth"
        _save_plain(arch, int(name.split("/")[1]), path)
        rows.append({"name": name, "arch": arch, "path": path.name, "normalize": "imagenet", "image_size": size})
    out = folder / "models.csv"
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


@pytest.fixture(scope="module")
def cyborg_data(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cyborg_folder(generated, tmp_path_factory.mktemp("cyborg") / "Data", "test", limit=8).parents[1]


def test_cli_reports_cyborg_folder_with_state_dict_checkpoints(cyborg_data: Path, tmp_path: Path) -> None:
    models = _models_file(tmp_path, [("resnet18/0", "resnet18", 64), ("resnet18/1", "resnet18", 64),
                                     ("densenet121/0", "densenet121", 64)])  # fmt: skip
    out = tmp_path / "report.json"
    argv = ["report", "--data", str(cyborg_data), "--csv", "csvs/test.csv", "--models", str(models), "--out", str(out)]
    rc = cli.main([*argv, "--limit", "6", "--batch-size", "6", "--map-size", "16", "--no-progress"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"resnet18/0", "resnet18/1", "densenet121/0"}
    assert report["recipes"]["resnet18"]["stability"]["n"] == 6
    for model in report["models"].values():
        for measure in ("entropy", "out_of_set", "geometric", "degradation"):
            assert measure in model
        groups = model["out_of_set"]["distribution_shift"]["groups"]
        assert groups and all("/" not in g and not g.endswith("_aligned") for g in groups)
        families = model["ground_truth"]["detection"]["auc_by_group"]  # one AUC per generator family
        assert families and set(families) < set(groups) and "real" not in families
    assert out.with_suffix(".csv").stat().st_size > 0


def test_evaluate_inception_v3_at_299_from_state_dict(cyborg_data: Path, tmp_path: Path) -> None:
    models_file = _models_file(tmp_path, [("inception/0", "inception_v3", 299), ("inception/1", "inception_v3", 299)])
    models = {
        row["name"]: salience_lib.load_checkpoint(tmp_path / row["path"], row["arch"], image_size=299)
        for row in csv.DictReader(models_file.open())
    }
    result = salience_lib.evaluate(models, cyborg_data, csv="csvs/test.csv", limit=2, batch_size=2,
                                   measures=("entropy", "stability"), progress=False)  # fmt: skip
    assert result["data"]["image_size"] == [299, 299]
    assert all(m["native_map_size"] == [8, 8] for m in result["models"].values())  # Mixed_7c at 299 px
    assert result["recipes"]["inception"]["stability"]["n"] == 2


def test_each_model_gets_the_data_at_its_own_image_size(cyborg_data: Path, tmp_path: Path) -> None:
    """An Inception-v3 at 299 px beside ResNets at 64 px: each model sees the images at its own side."""
    models = {
        "resnet18/0": salience_lib.load_checkpoint(_plain_file("resnet18", 0, tmp_path), "resnet18", image_size=64),
        "inception/0": salience_lib.load_checkpoint(_plain_file("inception_v3", 0, tmp_path), "inception_v3"),
    }
    result = salience_lib.evaluate(models, cyborg_data, csv="csvs/test.csv", limit=2, batch_size=2,
                                   measures=("entropy",), map_size=16, progress=False)  # fmt: skip
    assert result["models"]["resnet18/0"]["image_size"] == [64, 64]
    assert result["models"]["inception/0"]["image_size"] == [299, 299]
    assert result["models"]["inception/0"]["native_map_size"] == [8, 8]
