"""Tests of salience_lib.cli: every user error of every subcommand is one line naming the file, flag or value."""

from __future__ import annotations

import contextlib
import errno
import io
import os
from pathlib import Path

import pytest

from salience_lib import cli
from salience_lib.runtime import files


def _run(argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``python -m salience_lib ARGV`` (argparse's exits included)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_info:
            code = exit_info.code  # type: ignore[assignment]
    return code, err.getvalue()


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["report", "--runs", "r", "--out", "o.json"], "--data"),
        (["train", "--data", "d", "--loss", "xent", "--epochs", "many"], "--epochs"),
        (["train", "--data", "d", "--loss", "mse"], "--loss"),
        (["make-data", "--out", "d", "--size", "8"], "--size"),
        (["make-data", "--out", "d", "--n", "0"], "--n"),
        (["make-data", "--out", "d", "--workers", "0"], "--workers"),
        (["evaluate", "--data", "d", "--out", "o.json"], "--runs"),
        (["report", "--data", "d", "--runs", "r", "--out", "o.json", "--threads", "0"], "--threads"),
        (["train", "--data", "d", "--loss", "xent", "--threads", "0"], "--threads"),
        (["evaluate", "--data", "d", "--runs", "r", "--out", "o.json", "--threads", "0"], "--threads"),
    ],
)
def test_argument_errors_are_one_line(argv: list[str], named: str) -> None:
    code, err = _run(argv)
    line = _one_line(err)
    assert code == 2 and line.startswith(f"python -m salience_lib {argv[0]}: error: ") and named in line


@pytest.mark.parametrize(
    ("option", "named"),
    [(["--epochs", "0"], "--epochs must be >= 1, got 0"), (["--alpha", "2"], "--alpha must be in [0, 1], got 2.0"),
     (["--lr", "-1"], "--lr must be > 0"), (["--device", "foo"], "--device foo")],
)  # fmt: skip
def test_train_values_are_one_line_naming_the_flag(root: Path, tmp_path: Path, option: list[str], named: str) -> None:
    code, err = _run(["train", "--data", str(root), "--loss", "cyborg", "--out", str(tmp_path / "runs"), *option])
    assert code == 2 and named in _one_line(err) and not (tmp_path / "runs").exists()


def _train(root: Path, out: Path) -> list[str]:
    return ["train", "--data", str(root), "--loss", "xent", "--seeds", "0", "--epochs", "1", "--batch-size", "32",
            "--device", "cpu", "--out", str(out), "--no-progress"]  # fmt: skip


def test_train_on_a_full_disk_is_one_line(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync

    def full_disk(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".resume.pt."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(files.os, "fsync", full_disk)
    code, err = _run(_train(root, tmp_path / "runs"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert code == 2 and _one_line(err).endswith(f"error: no space left on device: {run_dir / 'resume.pt'}")
    assert sorted(p.name for p in run_dir.iterdir()) == []  # no temp file left


def test_undecodable_image_in_train_is_one_line(root: Path, tmp_path: Path) -> None:
    from salience_lib.data import CsvImageDataset

    image = CsvImageDataset(root, "train").image_file(3)
    image.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    code, err = _run(_train(root, tmp_path / "runs"))
    line = _one_line(err)
    assert code == 2 and str(image) in line and "dataset.csv, line" in line


def test_make_data_existing_out_is_one_line(tmp_path: Path) -> None:
    code, err = _run(["make-data", "--out", str(tmp_path), "--n", "12", "--quiet"])
    assert code == 2 and f"{tmp_path} already exists" in _one_line(err) and "--overwrite" in err


def test_evaluate_corrupt_sidecar_is_one_line(root: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "xent-small_cnn-s0-0123abcd"
    run.mkdir(parents=True)
    (run / "model.json").write_text('{"arch": "small_cnn", "loss": "xent"')
    (run / "model.pt").write_bytes(b"")
    argv = ["evaluate", "--data", str(root), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "e.json")]
    code, err = _run(argv)
    assert code == 2 and f"corrupt sidecar {run / 'model.json'}" in _one_line(err)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    argv = ["train", "--data", str(tmp_path), "--loss", "xent", "--epochs", "0"]
    code, err = _run([*argv, "--debug"])
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == "python -m salience_lib train: error: --epochs must be >= 1, got 0"
    code, err = _run(["--debug", *argv])  # before the subcommand too
    assert code == 2 and "Traceback" in err


def test_unexpected_error_is_one_line_with_status_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from salience_lib import training

    def broken(args: object) -> None:
        raise TypeError("a bug\nover two lines")

    monkeypatch.setattr(training, "main_train", broken)
    code, err = _run(["train", "--data", str(tmp_path), "--loss", "xent"])
    line = _one_line(err)
    assert code == 1 and "TypeError: a bug over two lines" in line and "--debug" in line


def test_error_line_of_a_full_disk() -> None:
    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/report.json")
    assert cli.error_line(err) == "no space left on device: /data/report.json"
    assert cli.error_line(ValueError("a\n  b")) == "a b"
