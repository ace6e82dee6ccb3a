"""Fault injection: each row is one way an earlier adversarial round broke the library, kept in one place.

Every test here failed on the code before its fix. The next adversarial round adds its rows here.
Rows (issue 20): 2 — no input file is ever an output (of a report, of training).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from salience_lib import cli
from salience_lib.training import TrainConfig, train_on

SIZE = 32


def _report(*argv: str) -> tuple[int, str]:
    """``python -m salience_lib report ARGV`` in-process: exit status and what it printed on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["report", "--device", "cpu", "--no-progress", "--limit", "4", *argv])
    return code, err.getvalue()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete small_cnn run, trained one epoch on 4 random images."""
    out = tmp_path_factory.mktemp("runs")
    g = torch.Generator().manual_seed(0)
    images, maps = torch.rand(4, 3, SIZE, SIZE, generator=g), torch.rand(4, SIZE, SIZE, generator=g)
    config = TrainConfig(loss="xent", seed=0, epochs=1, batch_size=4, device="cpu")
    train_on(config, TensorDataset(images, torch.tensor([0, 1] * 2), maps), None, out, "tiny-data", progress=False)
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


# ---------------------------------------------------------------------------------------------
# 2. No input file is ever an output: every place a report writes (JSON, CSV, cache folder, lock,
# journal) is checked against every place it reads, before anything is computed.


def _models_file(folder: Path, run: Path) -> Path:
    """A models file in ``folder`` listing ``run``'s checkpoint (a state_dict of small_cnn) as ``m.pth``."""
    shutil.copy(run / "model.pt", folder / "m.pth")
    (folder / "models.csv").write_text("name,arch,path,normalize\nxent/0,small_cnn,m.pth,none\n")
    return folder / "models.csv"


def _models_out_csv(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    models = _models_file(tmp, run)  # --out models.json would write its CSV over models.csv
    return ["--data", str(root), "--models", str(models), "--out", str(tmp / "models.json")], tmp


def _checkpoint_as_out(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    models = _models_file(tmp, run)  # --out m.pth: the JSON would replace the checkpoint
    return ["--data", str(root), "--models", str(models), "--out", str(tmp / "m.pth")], tmp


def _checkpoint_in_cache(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    (tmp / "r.json.cache").mkdir()  # the checkpoint lies in what would be the report's cache folder
    models = _models_file(tmp / "r.json.cache", run)
    return ["--data", str(root), "--models", str(models), "--out", str(tmp / "r.json")], tmp


def _hard_linked_models_file(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    models = _models_file(tmp, run)
    (tmp / "out").mkdir()
    os.link(models, tmp / "out" / "r.csv")  # the report's CSV is the models file under another name
    return ["--data", str(root), "--models", str(models), "--out", str(tmp / "out" / "r.json")], tmp


def _data_csv_outside(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    csvs = root.parent / "csvs"  # CYBORG's layout: csvs/<split>.csv beside the image folder
    csvs.mkdir()
    shutil.copy(root / "dataset.csv", csvs / "test.csv")
    out = csvs / "test.json"
    return ["--data", str(root), "--csv", str(csvs / "test.csv"), "--run", str(run), "--out", str(out)], csvs


def _inside_run(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    copy = Path(shutil.copytree(run, tmp / run.name))  # --out RUN/model.json replaces the sidecar
    return ["--data", str(root), "--run", str(copy), "--out", str(copy / "model.json")], copy


def _inside_data(root: Path, run: Path, tmp: Path) -> tuple[list[str], Path]:
    return ["--data", str(root), "--run", str(run), "--out", str(root / "reports" / "r.json")], root


OVERWRITES: dict[str, Callable[[Path, Path, Path], tuple[list[str], Path]]] = {
    "models file as the CSV": _models_out_csv,
    "checkpoint as the JSON": _checkpoint_as_out,
    "checkpoint inside the cache folder": _checkpoint_in_cache,
    "models file hard-linked as the CSV": _hard_linked_models_file,
    "data CSV beside the data folder": _data_csv_outside,
    "run folder": _inside_run,
    "data folder": _inside_data,
}


@pytest.mark.parametrize("case", OVERWRITES)
def test_report_never_overwrites_an_input(
    case: str, root: Path, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from salience_lib.engine import Engine

    def measure(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed before --out was checked against the inputs")

    monkeypatch.setattr(Engine, "measure", measure)
    work = tmp_path / "work"
    work.mkdir()
    argv, watched = OVERWRITES[case](root, run_dir, work)
    before = _snapshot(watched)
    code, err = _report(*argv)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert "would overwrite" in line and "write the report elsewhere" in line, line
    assert _snapshot(watched) == before


def test_report_out_name_too_long_fails_before_computing(root: Path, run_dir: Path, tmp_path: Path) -> None:
    name = "r" * 250 + ".json"  # fits NAME_MAX itself, but not its temporary file ".<name>.<hex>.tmp"
    (tmp_path / "out").mkdir()
    code, err = _report("--data", str(root), "--run", str(run_dir), "--out", str(tmp_path / "out" / name))
    assert code == 2 and "too long" in err and "choose a shorter name" in err, err
    assert list((tmp_path / "out").iterdir()) == []


def test_train_out_inside_the_data_folder_is_refused(root: Path) -> None:
    before = _snapshot(root)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["train", "--data", str(root), "--loss", "xent", "--seeds", "0", "--out", str(root / "runs")])
    assert code == 2 and "--out" in err.getvalue() and "lies in the data folder" in err.getvalue(), err.getvalue()
    assert _snapshot(root) == before
