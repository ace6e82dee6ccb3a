"""Tests for salience_lib.report: schema, CSV, streaming state, annotations, resume, torchrun, bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from salience_lib import cli, report
from salience_lib.data.synthetic import generate_dataset
from salience_lib.engine.sources import open_source
from salience_lib.engine.step import ModelMeasures
from salience_lib.engine.subjects import subjects_from
from salience_lib.measures.accumulator import Accumulator, summary_of
from salience_lib.report import ReportError, ReportSettings, resolve_runs, run_report
from salience_lib.runtime import distributed as dist_utils
from salience_lib.similarity import ssim
from salience_lib.stats import summarise
from salience_lib.training import TrainConfig, train_on

SIZE = 32
LIMIT = 20  # 2 batches of 10, one per rank; the 8 non-face images (one batch) land on rank 0 only


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 32-px data set: 30 test images (real, seen, unseen) and 8 non-face images."""
    return generate_dataset(tmp_path_factory.mktemp("data") / "faces", 90, size=SIZE, seed=0, progress=False)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recipes (xent, cyborg) × two seeds of small_cnn, trained one epoch on 8 random images."""
    out = tmp_path_factory.mktemp("runs")
    g = torch.Generator().manual_seed(0)
    images, annotations = torch.rand(8, 3, SIZE, SIZE, generator=g), torch.rand(8, SIZE, SIZE, generator=g)
    train = TensorDataset(images, torch.tensor([0, 1] * 4), annotations)
    for loss in ("xent", "cyborg"):
        for seed in (0, 1):
            config = TrainConfig(loss=loss, seed=seed, epochs=1, batch_size=8, device="cpu")
            train_on(config, train, None, out, "tiny-data", progress=False)
    return out


def _settings(data_dir: Path, **overrides: object) -> ReportSettings:
    values = {"data": data_dir, "limit": LIMIT, "batch_size": 10, "device": "cpu", "progress": False}
    return ReportSettings(**(values | overrides))


@pytest.fixture(scope="module")
def single(data_dir: Path, runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The report of one process on all four runs."""
    out = tmp_path_factory.mktemp("single") / "report.json"
    result = run_report(resolve_runs(runs_dir), out, _settings(data_dir))
    assert result is not None
    return out, result


def _assert_numbers_equal(a: object, b: object, path: str = "", tol: float = 1e-6) -> None:
    """Equal structure; floats within ``tol`` (timings and run paths are ignored)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for key in a:
            if key not in ("timing", "run"):
                _assert_numbers_equal(a[key], b[key], f"{path}.{key}", tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_numbers_equal(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=tol), (path, a, b)
    else:
        assert a == b, (path, a, b)


# ---------------------------------------------------------------------------------------------
# schema


def test_json_schema(single: tuple[Path, dict], runs_dir: Path) -> None:
    out, result = single
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    for key in ("schema_version", "settings", "settings_hash", "versions", "device", "data", "models", "recipes"):
        assert key in result
    assert result["versions"]["torch"] == torch.__version__ and result["device"]["type"] == "cpu"
    assert result["data"]["n_images"] == LIMIT and result["data"]["annotations"] is False
    assert set(result["data"]["groups"]) == {"real", "seen", "unseen", "nonface"}
    assert sorted(result["models"]) == sorted(p.name for p in runs_dir.iterdir())
    summary_keys = {"mean", "ci_low", "ci_high", "n", "confidence"}
    for model in result["models"].values():
        assert model["native_map_size"] == [8, 8] and model["target_layer"] == "features"
        assert set(model["entropy"]) == {"histogram", "spatial"}
        curve = model["out_of_set"]["salt_and_pepper"]
        assert curve["severities"] == [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0]
        assert len(curve["similarity"]) == len(curve["probability_change"]) == 8
        assert curve["similarity"][0]["mean"] == pytest.approx(1.0)
        assert set(curve["auc"]) == summary_keys and 0 <= curve["auc"]["mean"] <= 1
        shift = model["out_of_set"]["distribution_shift"]
        assert shift["in_set_groups"] == ["real", "seen"]
        assert set(shift["groups"]) == {"real", "seen", "unseen", "nonface"}
        assert sum(g["n"] for g in shift["groups"].values()) == LIMIT + result["data"]["groups"]["nonface"]
        assert len(model["geometric"]) == 14 + 2  # transforms, their mean, n
        assert set(model["degradation"]) == {
            "background", "salient", "random_background", "random_salient", "deletion", "deletion_random",
        }  # fmt: skip
        assert model["annotation_agreement"] is None
    assert len(result["recipes"]) == 2
    for recipe in result["recipes"].values():
        assert recipe["k"] == 2 and recipe["stability"]["n"] == LIMIT
        matrix = torch.tensor(recipe["matrix"])
        assert (
            matrix.shape == (2, 2) and torch.allclose(matrix, matrix.T) and torch.allclose(matrix.diag(), torch.ones(2))
        )
    (pair,) = result["between_recipes"]
    assert set(pair["recipes"]) == set(result["recipes"]) and pair["similarity"]["n"] == LIMIT


def test_csv_is_the_flattened_json(single: tuple[Path, dict]) -> None:
    out, result = single
    with open(report.csv_path_for(out), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == report.CSV_FIELDS
    expected = report.flatten_report(result)
    assert len(rows) == len(expected) > 0
    assert {r["scope"] for r in rows} == {"model", "recipe", "recipe_pair"}
    for row, want in zip(rows, expected, strict=True):
        assert row["measure"] == want["measure"] and float(row["value"]) == pytest.approx(want["value"])
    name = next(iter(result["models"]))
    by_key = {(r["model"], r["measure"], r["statistic"]): float(r["value"]) for r in rows}
    entropy = result["models"][name]["entropy"]["spatial"]["entropy"]
    assert by_key[(name, "entropy.spatial.entropy", "ci_high")] == pytest.approx(entropy["ci_high"])
    assert (name, "out_of_set.salt_and_pepper.similarity@0.05", "mean") in by_key
    assert ("", "stability.matrix@0@1", "value") in by_key


# ---------------------------------------------------------------------------------------------
# bounded-memory summaries, streaming state


def test_bounded_summary_equals_summarise() -> None:
    values = torch.rand(3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert summary_of(values) == summarise(values)


def _state_sizes(acc: Accumulator) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    sums = {name: tuple(acc.total(name).shape) for name in acc._defaults if name not in acc._cat_shapes}
    return sums, {name: acc.values(name).shape[0] for name in acc._cat_shapes}


def test_accumulators_keep_scalars_per_image_not_maps(data_dir: Path, runs_dir: Path) -> None:
    """Cat states hold one row of scalars per image; sum states do not grow with the number of images;
    the kept maps are the native 8×8 maps, one per image."""
    (subject,) = subjects_from(resolve_runs(runs_dir)[:1])
    sizes, kept = {}, {}
    for limit in (10, 20):
        settings = _settings(data_dir, limit=limit)
        context = dist_utils.setup("cpu")
        source = open_source(settings.data, settings, None)
        measures = ModelMeasures(subject, subject.load(context.device), source, settings, ssim)
        for batch in source.batches(context, settings.batch_size, nonface=False):
            measures.update(batch)
        accumulators = [*measures.entropy.values(), measures.detection, measures.curve, measures.geometric,
                        *measures.single.values(), *measures.deletion.values()]  # fmt: skip
        sizes[limit] = [_state_sizes(acc) for acc in accumulators]
        kept[limit] = tuple(measures.kept_maps().maps.shape)
    for (sums_10, cats_10), (sums_20, cats_20) in zip(sizes[10], sizes[20], strict=True):
        assert sums_10 == sums_20
        assert all(n == 10 for n in cats_10.values()) and all(n == 20 for n in cats_20.values())
    assert kept == {10: (10, 8, 8), 20: (20, 8, 8)}


def test_annotations_and_data_without_metadata(data_dir: Path, runs_dir: Path, tmp_path: Path) -> None:
    """The val split has human maps (agreement is measured); a bare CYBORG folder skips distribution shift."""
    run = resolve_runs(runs_dir)[:1]
    val = run_report(run, tmp_path / "val.json", _settings(data_dir, split="val", limit=10))
    assert val is not None and val["data"]["annotations"] is True
    (model,) = val["models"].values()
    assert model["annotation_agreement"]["n"] == 10 and -1 <= model["annotation_agreement"]["mean"] <= 1
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "dataset.csv").write_text((data_dir / "dataset.csv").read_text())
    for split in ("train", "val", "test"):
        (bare / split).symlink_to(data_dir / split)
    plain = run_report(run, tmp_path / "bare.json", _settings(bare, limit=10))
    assert plain is not None and plain["data"]["groups"] == {"all": 10}
    (model,) = plain["models"].values()
    assert model["out_of_set"]["distribution_shift"].startswith("skipped")
    assert model["annotation_agreement"] is None


# ---------------------------------------------------------------------------------------------
# caching: resume and changed settings


def test_resume_skips_finished_models_and_changed_settings_recompute(
    data_dir: Path, runs_dir: Path, tmp_path: Path
) -> None:
    runs = resolve_runs(runs_dir)[:2]
    out = tmp_path / "report.json"
    settings = _settings(data_dir, limit=10)

    def interrupt(name: str, result: dict) -> None:
        raise KeyboardInterrupt(f"stop after {name}")

    with pytest.raises(KeyboardInterrupt, match=runs[0].name):
        run_report(runs, out, settings, on_model_done=interrupt)
    cache = tmp_path / "report.json.cache"
    first, first_maps = sorted(cache.iterdir())  # the result (.json) and the kept native maps (.pt)
    assert first.name.startswith(runs[0].name) and first_maps.with_suffix(".json") == first and not out.exists()
    stamp = first.stat().st_mtime_ns

    resumed = run_report(runs, out, settings)
    assert resumed is not None and out.exists()
    assert resumed["cache"]["reused"] == [runs[0].name]
    assert resumed["cache"]["computed"] == [runs[1].name, "stability"]
    assert first.stat().st_mtime_ns == stamp
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(stamps) == 5  # two models (result and kept maps) and the stability of their recipes

    again = run_report(runs, out, settings)
    assert again is not None and again["cache"]["computed"] == []
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps
    _assert_numbers_equal(again["models"], resumed["models"], tol=0.0)

    changed = run_report(runs, out, _settings(data_dir, limit=10, map_size=16))
    assert changed is not None and changed["cache"]["reused"] == []
    assert all(m["map_size"] == [16, 16] for m in changed["models"].values())
    assert len(list(cache.iterdir())) == 10

    execution_only = run_report(runs, out, _settings(data_dir, limit=10, batch_size=4))
    assert execution_only is not None and execution_only["cache"]["computed"] == []


# ---------------------------------------------------------------------------------------------
# torchrun: 2 processes give the numbers of 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_equal_one(single: tuple[Path, dict], data_dir: Path, runs_dir: Path, tmp_path: Path):
    out = tmp_path / "dist.json"
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    command = [*launcher, "--nproc_per_node", "2", "--master-addr", "127.0.0.1"]
    command += ["--master-port", str(_free_port()), "-m", "salience_lib", "report"]
    command += ["--data", str(data_dir), "--runs", str(runs_dir), "--out", str(out), "--limit", str(LIMIT)]
    command += ["--batch-size", "10", "--device", "cpu", "--threads", "1", "--no-progress"]
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    sharded = json.loads(out.read_text())
    _, reference = single
    assert sharded["device"]["world_size"] == 2 and sharded["device"]["backend"] == "gloo"
    for key in ("models", "recipes", "between_recipes", "data"):
        _assert_numbers_equal(sharded[key] if key != "data" else sharded[key] | {"root": ""},
                              reference[key] if key != "data" else reference[key] | {"root": ""}, key)  # fmt: skip
    assert sharded["settings_hash"] == reference["settings_hash"]


# ---------------------------------------------------------------------------------------------
# bad input


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str] | None) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["report", *argv])
    return code, err.getvalue()


def test_missing_runs_folder_is_named(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(
        ["--data", str(data_dir), "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "r.json")], capsys
    )
    assert code == 2 and "--runs" in err and "nope" in err and "not found" in err


def test_runs_folder_without_checkpoints(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "half-trained").mkdir(parents=True)
    code, err = _cli(
        ["--data", str(data_dir), "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "r.json")], capsys
    )
    assert code == 2 and "no complete checkpoint" in err and str(tmp_path / "empty") in err


def test_run_folder_without_checkpoint(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(["--data", str(data_dir), "--run", str(tmp_path), "--out", str(tmp_path / "r.json")], capsys)
    assert code == 2 and "--run" in err and str(tmp_path) in err


def test_missing_data_folder(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(
        ["--data", str(tmp_path / "no-data"), "--runs", str(runs_dir), "--out", str(tmp_path / "r.json")], capsys
    )
    assert code == 2 and "--data" in err and "no-data" in err


def test_unknown_similarity(data_dir: Path, runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "--data", str(data_dir), "--runs", str(runs_dir), "--out", "r.json", "--similarity", "l2"])
    assert exit_info.value.code == 2
    assert "--similarity" in capsys.readouterr().err
    with pytest.raises(ReportError, match=r"similarity.*'l2'"):
        ReportSettings(data=str(data_dir), similarity="l2")


def test_bad_settings_and_outputs_are_named(data_dir: Path, runs_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="--limit"):
        ReportSettings(data=str(data_dir), limit=0)
    with pytest.raises(ReportError, match="--amp"):
        ReportSettings(data=str(data_dir), amp="int8")
    with pytest.raises(ReportError, match=r"--out .*csv"):
        run_report(resolve_runs(runs_dir), tmp_path / "r.csv", _settings(data_dir))
    with pytest.raises(ReportError, match="--in-set-groups"):
        run_report(resolve_runs(runs_dir)[:1], tmp_path / "r.json", _settings(data_dir, in_set_groups=("x",)))
    with pytest.raises(ReportError, match="--map-size"):
        run_report(resolve_runs(runs_dir)[:1], tmp_path / "r.json", _settings(data_dir, map_size=4))


def test_models_file_reports_checkpoints_trained_anywhere(data_dir: Path, tmp_path: Path) -> None:
    """The authors' format: plain torchvision ResNet-18s with a 2-way head as {"state_dict"}, listed in a CSV;
    the recipe/seed grouping comes from the names, so stability is there."""
    import torchvision

    lines = ["name,arch,path,normalize"]
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = torchvision.models.resnet18(weights=None)
        model.fc = torch.nn.Linear(512, 2)
        torch.save({"state_dict": model.state_dict()}, tmp_path / f"r{seed}.pth")
        lines.append(f"authors/{seed},resnet18,r{seed}.pth,imagenet")
    (tmp_path / "models.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "authors.json"
    args = ["--data", str(data_dir), "--models", str(tmp_path / "models.csv"), "--out", str(out), "--limit", "6",
            "--batch-size", "6", "--device", "cpu", "--map-size", "16", "--no-progress", "--measures", "entropy"]
    assert cli.main(["report", *args]) == 0
    result = json.loads(out.read_text())
    assert sorted(result["models"]) == ["authors/0", "authors/1"]
    assert result["recipes"]["authors"]["k"] == 2 and result["recipes"]["authors"]["stability"]["n"] == 6
    (tmp_path / "bad.csv").write_text("name,arch,path\nauthors/0,resnet18,missing.pth\n")
    code, err = _cli(["--data", str(data_dir), "--models", str(tmp_path / "bad.csv"), "--out", str(out)], None)
    assert code == 2 and "bad.csv, line 2" in err and "missing.pth" in err
