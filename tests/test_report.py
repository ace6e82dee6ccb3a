"""Tests for salience_lib.report: schema, CSV, streaming state, annotations, resume, torchrun, bad input."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import shutil
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
from salience_lib.protocol import PAPER_TRANSFORMS
from salience_lib.report import ReportError, ReportSettings, resolve_runs, run_report
from salience_lib.runtime import distributed as dist_utils
from salience_lib.similarity import ssim
from salience_lib.stats import summarise
from salience_lib.training import TrainConfig, train_on
from tests.helpers import full_disk_for

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
        assert len(model["geometric"]) == len(PAPER_TRANSFORMS) + 2  # transforms, their mean, n
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
    for split in ("train", "val", "test"):  # copies: symlinks out of the data-set root are refused
        shutil.copytree(data_dir / split, bare / split)
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


# ---------------------------------------------------------------------------------------------
# caches keyed by the files' content; outputs that change together; one writer per --out


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _cached_copy(single: tuple[Path, dict], tmp_path: Path) -> Path:
    """A copy of the single report's outputs and cache: rerunning it computes nothing."""
    out, _ = single
    for path in (out, report.csv_path_for(out)):
        shutil.copy2(path, tmp_path / path.name)
    shutil.copytree(out.parent / f"{out.name}.cache", tmp_path / f"{out.name}.cache")
    return tmp_path / out.name


def _hidden(*folders: Path) -> list[str]:
    return sorted(p.name for folder in folders for p in folder.iterdir() if p.name.startswith("."))


def _pair_matches(out: Path) -> bool:
    digest = hashlib.sha256(report.csv_path_for(out).read_bytes()).hexdigest()
    return json.loads(out.read_text())["csv_sha256"] == digest


def test_replaced_heatmaps_invalidate_report_cache(data_dir: Path, runs_dir: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageOps

    data = Path(shutil.copytree(data_dir, tmp_path / "data"))
    run = resolve_runs(runs_dir)[:1]
    settings = _settings(data, split="val", limit=6, batch_size=6, measures=("entropy",))
    first = run_report(run, tmp_path / "r.json", settings)
    for heatmap in (data / "heatmaps").iterdir():
        with Image.open(heatmap) as img:
            ImageOps.invert(img.convert("L")).save(heatmap)
    second = run_report(run, tmp_path / "r.json", settings)
    assert first is not None and second is not None
    assert second["cache"]["reused"] == [] and second["settings_hash"] != first["settings_hash"]
    (before,), (after,) = first["models"].values(), second["models"].values()
    assert after["annotation_agreement"]["mean"] != pytest.approx(before["annotation_agreement"]["mean"])


def test_corrupt_cached_maps_are_recomputed(single: tuple[Path, dict], runs_dir: Path, data_dir: Path, tmp_path):
    out = _cached_copy(single, tmp_path)
    victim = sorted((tmp_path / f"{out.name}.cache").glob("*.pt"))[0]
    victim.write_bytes(b"truncated")
    again = run_report(resolve_runs(runs_dir), out, _settings(data_dir))
    assert again is not None and again["cache"]["computed"] == [victim.name.rsplit("-", 1)[0]]
    _assert_numbers_equal(again["models"], single[1]["models"])


def test_enospc_during_final_write_keeps_previous_outputs(
    single: tuple[Path, dict], runs_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _cached_copy(single, tmp_path)
    out.write_text("previous json")
    report.csv_path_for(out).write_text("previous csv")
    full_disk_for(monkeypatch, out.name)
    argv = ["--data", str(data_dir), "--runs", str(runs_dir), "--out", str(out), "--limit", str(LIMIT)]
    code, err = _cli([*argv, "--batch-size", "10", "--device", "cpu", "--no-progress"], None)
    assert code == 2 and _one_line(err).endswith(f"error: no space left on device: {out}")
    assert out.read_text() == "previous json" and report.csv_path_for(out).read_text() == "previous csv"
    assert _hidden(tmp_path, tmp_path / f"{out.name}.cache") == []


_KILL_AT_JSON_RENAME = """
import os, signal, sys
from pathlib import Path
from salience_lib.report import ReportSettings, resolve_runs, run_report
data, runs, out = sys.argv[1:4]
real = os.replace
def replace(src, dst):
    if Path(dst) == Path(out):  # the CSV is renamed already, the JSON not yet
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
run_report(resolve_runs(runs), out, ReportSettings(data=data, limit=int(sys.argv[4]), batch_size=10, device="cpu",
           progress=False))
"""


def test_sigkill_during_final_write_leaves_no_half_pair(
    single: tuple[Path, dict], runs_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    from salience_lib.runtime.files import finish_together

    out = _cached_copy(single, tmp_path)
    out.write_text("previous json")
    command = [sys.executable, "-c", _KILL_AT_JSON_RENAME, str(data_dir), str(runs_dir), str(out), str(LIMIT)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == -9, done.stderr[-2000:]
    assert out.read_text() == "previous json"  # killed between the renames: the journal says what is left
    assert finish_together(out) and _pair_matches(out)
    assert _hidden(tmp_path, tmp_path / f"{out.name}.cache") == [".report.json.lock"]  # free: its holder died
    again = run_report(resolve_runs(runs_dir), out, _settings(data_dir))
    assert again is not None and again["cache"]["computed"] == [] and _pair_matches(out)
    assert _hidden(tmp_path, tmp_path / f"{out.name}.cache") == []


def test_orphan_temp_files_are_removed_by_the_next_report(
    single: tuple[Path, dict], runs_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    out = _cached_copy(single, tmp_path)
    cache = tmp_path / f"{out.name}.cache"
    orphans = [tmp_path / f".{out.name}.1a2b3c4d.tmp", tmp_path / ".report.csv.99.tmp", cache / ".x-12.pt.5.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"left by a killed report")
    assert run_report(resolve_runs(runs_dir), out, _settings(data_dir)) is not None
    assert _hidden(tmp_path, cache) == [] and _pair_matches(out)


def test_second_report_on_one_out_fails_fast_naming_the_first(data_dir: Path, runs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    run = resolve_runs(runs_dir)[:1]
    argv = ["--data", str(data_dir), "--run", str(run[0]), "--out", str(out), "--limit", "4", "--batch-size", "4"]
    argv += ["--device", "cpu", "--no-progress", "--measures", "entropy"]
    second: list[tuple[int, str]] = []

    def start_another(name: str, result: dict) -> None:  # while the first report holds --out
        second.append(_cli(argv, None))

    first = run_report(run, out, _settings(data_dir, limit=4, batch_size=4, measures=("entropy",)),
                       on_model_done=start_another)  # fmt: skip
    ((code, err),) = second
    assert code == 2 and f"--out {out} is in use by another process (pid {os.getpid()} " in _one_line(err)
    assert first is not None and _pair_matches(out) and _hidden(tmp_path) == []


def test_unwritable_out_fails_before_computing(
    data_dir: Path, runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from salience_lib.engine import Engine

    def measure(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed before --out was checked")

    monkeypatch.setattr(Engine, "measure", measure)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ReportError, match=r"--out .*a-file.*cannot write there"):
        run_report(resolve_runs(runs_dir)[:1], tmp_path / "a-file" / "r.json", _settings(data_dir))
    with pytest.raises(ReportError, match="data folder"):  # its CSV would change the data set
        run_report(resolve_runs(runs_dir)[:1], data_dir / "reports" / "r.json", _settings(data_dir))
    assert not (data_dir / "reports").exists()


def _copied_run(runs_dir: Path, tmp_path: Path) -> Path:
    source = resolve_runs(runs_dir)[0]
    return Path(shutil.copytree(source, tmp_path / "runs" / source.name))


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_truncated_or_empty_checkpoint_is_one_line(data_dir: Path, runs_dir: Path, tmp_path: Path, damage: str):
    run = _copied_run(runs_dir, tmp_path)
    model = run / "model.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2] if damage == "truncated" else b"")
    argv = ["--data", str(data_dir), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "r.json")]
    code, err = _cli([*argv, "--limit", "4", "--device", "cpu", "--no-progress"], None)
    assert code == 2 and f"corrupt or truncated checkpoint {model}" in _one_line(err)


@pytest.mark.parametrize(("text", "problem"), [("{not json", "corrupt sidecar"), ('{"loss": "xent"}', "missing arch")])
def test_corrupt_or_incomplete_sidecar_under_runs_is_one_line(
    data_dir: Path, runs_dir: Path, tmp_path: Path, text: str, problem: str
) -> None:
    run = _copied_run(runs_dir, tmp_path)
    (run / "model.json").write_text(text)
    argv = ["--data", str(data_dir), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "r.json")]
    code, err = _cli(argv, None)
    line = _one_line(err)
    assert code == 2 and "--runs" in line and str(run / "model.json") in line and problem in line


def test_unknown_device_and_zero_threads_are_one_line(
    data_dir: Path, runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data", str(data_dir), "--runs", str(runs_dir), "--out", str(tmp_path / "r.json")]
    code, err = _cli([*argv, "--device", "foo"], None)
    assert code == 2 and "--device foo" in _one_line(err)
    with pytest.raises(SystemExit) as info:
        cli.main(["report", *argv, "--threads", "0"])
    assert info.value.code == 2 and "--threads" in _one_line(capsys.readouterr().err)
    args = cli.build_parser().parse_args(["report", *argv])
    args.threads = 0
    with pytest.raises(ReportError, match="--threads"):  # the function refuses it too, not only the parser
        report.main_report(args)


def test_changed_csv_outside_the_data_folder_invalidates_report_cache(
    data_dir: Path, runs_dir: Path, tmp_path: Path
) -> None:
    lines = [line for line in (data_dir / "dataset.csv").read_text().splitlines() if line.startswith("test,")]
    chosen = tmp_path / "csvs" / "test.csv"  # beside the data, like CYBORG's csvs/
    chosen.parent.mkdir()
    chosen.write_text("\n".join(lines[:4]) + "\n")
    run = resolve_runs(runs_dir)[:1]
    settings = _settings(data_dir, csv=str(chosen), limit=4, batch_size=4, measures=("entropy",))
    first = run_report(run, tmp_path / "r.json", settings)
    chosen.write_text("\n".join(lines[-4:]) + "\n")  # other images, same settings
    second = run_report(run, tmp_path / "r.json", settings)
    assert first is not None and second is not None and second["cache"]["reused"] == []
    (before,), (after,) = first["models"].values(), second["models"].values()
    assert after["entropy"]["spatial"]["entropy"] != before["entropy"]["spatial"]["entropy"]
