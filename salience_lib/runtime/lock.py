"""An exclusive lock on an output (a report's ``--out``, a run folder) so two processes never write it at once.

:func:`hold_lock` takes ``fcntl.flock`` on a lock file next to the output, ``.<name>.lock``, and fails
at once (never waits) when another process holds it, with a :class:`LockError` that names the output,
the lock file and the holder (pid, host, start time, command) as written into the lock file. The
kernel releases the lock when its holder exits, even after a SIGKILL; a lock file left behind by a
killed process is therefore free and is taken over and removed by the next holder.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_SUFFIX", "LockError", "hold_lock", "lock_path"]

LOCK_SUFFIX = ".lock"


class LockError(RuntimeError):
    """Another process holds the lock; the message names the output, the lock file and the holder."""


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, since {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextmanager
def hold_lock(target: str | os.PathLike[str], what: str = "output") -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` (see the module docstring) for the ``with`` block.

    Creates ``target``'s folder if needed (so an unwritable place fails here, before any work).

    Args:
        target: the output to protect (need not exist).
        what: how the message calls it, e.g. ``"--out"``.

    Raises:
        LockError: another process holds the lock.
        OSError: the lock file cannot be created (e.g. the folder is not writable); names the file.
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockError(
                f"{what} {target} is in use by another process ({_holder(path)}); lock file {path}"
            ) from None
        try:  # the previous holder may have removed the file between our open and flock: retry on the new one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still holding it, so no one can lock the old file meanwhile
        os.close(fd)
