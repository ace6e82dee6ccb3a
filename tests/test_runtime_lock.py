"""Tests of salience_lib.runtime.lock: one writer per output, a fast and named failure for the second."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from salience_lib.runtime.lock import LockError, hold_lock, lock_path


def test_second_holder_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    with hold_lock(out, "--out") as path:
        assert path == lock_path(out) == tmp_path / ".report.json.lock"
        busy = rf"--out {out} is in use by another process \(pid {os.getpid()} "
        with pytest.raises(LockError, match=busy) as info, hold_lock(out, "--out"):
            pass
        assert str(path) in str(info.value)
    assert not path.exists()
    with hold_lock(out):  # free again
        pass


def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    script = (
        "import os, signal, sys; from salience_lib.runtime.lock import hold_lock\n"
        "with hold_lock(sys.argv[1]): os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, check=False, timeout=60)
    assert done.returncode == -9 and lock_path(out).exists()  # the file stays, the kernel's lock does not
    with hold_lock(out):
        pass
    assert not lock_path(out).exists()


def test_unwritable_place_fails_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    inside_a_file = tmp_path / "file" / "report.json"
    with pytest.raises(OSError, match=r"File exists|Not a directory") as info, hold_lock(inside_a_file):
        pass
    assert info.value.filename == str(tmp_path / "file")
