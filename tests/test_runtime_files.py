"""Tests of salience_lib.runtime.files: atomic writes, files that change together, a full disk, stale temps."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

import pytest
import torch

from salience_lib.runtime import files
from salience_lib.runtime.files import finish_together, remove_stale_temp_files, write_atomic, write_together
from tests.helpers import full_disk_for


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_enospc_names_the_file_and_keeps_the_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    full_disk_for(monkeypatch, "out.json")
    with pytest.raises(OSError, match="No space left on device") as info:
        write_atomic(target, "new")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


class _FullDisk(io.RawIOBase):
    """A handle that accepts a few writes, then fails like a full disk."""

    def __init__(self) -> None:
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.calls += 1
        if self.calls > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)


def test_enospc_inside_torch_save_is_an_oserror_naming_the_file(tmp_path: Path) -> None:
    """torch.save wraps the failed write in ``RuntimeError: [enforce fail at inline_container.cc]``."""
    target = tmp_path / "model.pt"
    with pytest.raises(OSError, match="No space left on device") as info:
        write_atomic(target, lambda handle: torch.save({"w": torch.zeros(10_000)}, _FullDisk()))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_temp_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """A temp file left by a kill must not be a 0600 file; it has the target's permissions from the start."""
    seen = []

    def write(handle: io.BufferedWriter) -> None:
        (tmp,) = tmp_path.glob(".model.pt.*.tmp")
        seen.append(stat.S_IMODE(tmp.stat().st_mode))
        handle.write(b"bytes")

    mask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "model.pt", write)
    finally:
        os.umask(mask)
    assert seen == [0o644] and stat.S_IMODE((tmp_path / "model.pt").stat().st_mode) == 0o644


def test_write_together_failure_leaves_every_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv, json = tmp_path / "r.csv", tmp_path / "r.json"
    csv.write_text("old csv")
    json.write_text("old json")
    full_disk_for(monkeypatch, "r.json")  # the CSV's temp file is written; the JSON's fails
    with pytest.raises(OSError, match="No space left") as info:
        write_together([(csv, "new csv"), (json, "new json")])
    assert info.value.filename == str(json)
    assert (csv.read_text(), json.read_text()) == ("old csv", "old json") and _leftovers(tmp_path) == []
    monkeypatch.undo()
    write_together([(csv, "new csv"), (json, "new json")])
    assert (csv.read_text(), json.read_text()) == ("new csv", "new json") and _leftovers(tmp_path) == []


def test_interrupted_renames_are_finished_by_the_next_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv, json = tmp_path / "r.csv", tmp_path / "r.json"
    csv.write_text("old csv")
    json.write_text("old json")
    real = os.replace

    def die_before_the_json(src: str, dst: str) -> None:
        if Path(dst) == json:
            raise SystemExit("killed")  # the process dies between the two renames
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", die_before_the_json)
    with pytest.raises(SystemExit):
        write_together([(csv, "new csv"), (json, "new json")])
    monkeypatch.undo()
    assert csv.read_text() == "new csv" and json.read_text() == "old json"  # what a kill there leaves
    assert finish_together(json) is True
    assert (csv.read_text(), json.read_text()) == ("new csv", "new json") and _leftovers(tmp_path) == []
    assert finish_together(json) is False


def test_remove_stale_temp_files(tmp_path: Path) -> None:
    for name in (".a.json.1234.tmp", ".b.pt.99.tmp", "a.json", ".a.json.lock"):
        (tmp_path / name).write_text("")
    assert [p.name for p in remove_stale_temp_files(tmp_path, "a.json")] == [".a.json.1234.tmp"]
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".b.pt.99.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.json.lock", "a.json"]
