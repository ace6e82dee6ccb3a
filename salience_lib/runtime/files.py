"""Atomic writes and content hashes — the one implementation every module uses.

A file written with :func:`write_atomic` is either the old file or the complete new one, never a
partial file: the bytes go to a temporary file in the same folder (named ``.<name>.<random>.tmp``,
so it is recognisable and never mistaken for output), are flushed to disk, and are then renamed
over the target (``os.replace`` is atomic on POSIX). On any error the temporary file is removed, and
an ``OSError`` (a full disk included) names the target. A temporary file left by a killed process is
removed by the next writer (:func:`remove_stale_temp_files`). :func:`write_together` writes several
files (a report's CSV and JSON) that change together or not at all.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMP_SUFFIX",
    "file_sha256",
    "files_sha256",
    "finish_together",
    "journal_path",
    "json_dumps",
    "json_safe",
    "json_sha256",
    "remove_stale_temp_files",
    "write_atomic",
    "write_together",
]

TEMP_SUFFIX = ".tmp"
JOURNAL_SUFFIX = ".commit"
_CHUNK = 1 << 20


def _os_error(err: BaseException, target: Path) -> OSError | None:
    """The ``OSError`` behind ``err`` (itself, or a cause torch wrapped in a RuntimeError), naming ``target``."""
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    if seen is None or seen.errno is None:
        return None
    return OSError(seen.errno, os.strerror(seen.errno), str(target))


def _write_temp(target: Path, data: str | bytes | Callable[[IO[bytes]], None]) -> Path:
    """``data`` into a new temporary file next to ``target``, flushed to disk; returns its path.

    The file is created with the usual permissions (0666 minus the umask, like ``open``), not
    ``mkstemp``'s 0600, so one a kill leaves behind is no private file.
    On any error it is removed and an ``OSError`` (also one a ``torch.save`` callback wrapped in a
    ``RuntimeError``, e.g. a full disk) is raised again naming ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"cannot create a temporary file next to {target}")
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        named = _os_error(err, target) if isinstance(err, Exception) else None
        if named is not None:
            raise named from err
        raise
    return tmp


def _replace(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, os.strerror(err.errno or 0), str(target)) from err


def write_atomic(path: str | os.PathLike[str], data: str | bytes | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (text as UTF-8, bytes, or a ``write(handle)`` callback) to ``path`` atomically.

    The parent folder is created if needed; the file gets the usual permissions (0666 minus the
    umask). Returns the path.

    Raises:
        OSError: the write failed (e.g. ``ENOSPC``, a full disk); ``filename`` is ``path``, which still
            holds its previous content, and no temporary file is left.
    """
    target = Path(path)
    _replace(_write_temp(target, data), target)
    return target


def journal_path(last: str | os.PathLike[str]) -> Path:
    """The journal :func:`write_together` keeps while renaming: ``.<last name>.commit`` beside ``last``."""
    last = Path(last)
    return last.parent / f".{last.name}{JOURNAL_SUFFIX}"


def write_together(items: Sequence[tuple[str | os.PathLike[str], str | bytes]]) -> list[Path]:
    """Write several files so that they change together or not at all; the last one is renamed last.

    Every file is first written to its temporary file and flushed (a failure, e.g. a full disk,
    leaves all previous files untouched). Then a journal ``.<last name>.commit`` listing the renames
    is written, the temporary files are renamed over their targets in order, and the journal is
    removed. A process killed during the renames leaves the journal, and :func:`finish_together`
    (called by the next writer) completes them, so no reader is left with a mixed pair after it.

    Raises:
        OSError: a write failed; ``filename`` names the file.
    """
    targets = [Path(path) for path, _ in items]
    temps: list[Path] = []
    try:
        for target, (_, data) in zip(targets, items, strict=True):
            temps.append(_write_temp(target, data))
        journal = journal_path(targets[-1])
        renames = [[str(tmp), str(target)] for tmp, target in zip(temps, targets, strict=True)]
        write_atomic(journal, json.dumps(renames))
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in zip(temps, targets, strict=True):
        _replace(tmp, target)
    journal.unlink(missing_ok=True)
    return targets


def finish_together(last: str | os.PathLike[str]) -> bool:
    """Complete the renames of a :func:`write_together` whose process died; True if there were any.

    ``last`` is the last file of that call (e.g. a report's JSON). Safe to call at any time while no
    other process writes those files.
    """
    journal = journal_path(Path(last))
    if not journal.is_file():
        return False
    try:
        renames = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        renames = []
    for tmp, target in renames if isinstance(renames, list) else []:
        if Path(tmp).is_file():
            os.replace(tmp, target)
    journal.unlink(missing_ok=True)
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Delete the temporary files :func:`write_atomic` left for ``name`` (None: any name) in ``folder``.

    Such files (``.<name>.<random>.tmp``) are left only by a process killed while writing.

    Only call it while no other process may be writing ``name`` there (e.g. under a lock,
    :mod:`salience_lib.runtime.lock`).
    """
    removed = []
    pattern = f".{glob.escape(name)}.*{TEMP_SUFFIX}" if name is not None else f".*{TEMP_SUFFIX}"
    for stale in Path(folder).glob(pattern):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def file_sha256(path: str | os.PathLike[str], digest: Any = None) -> Any:
    """SHA-256 of a file's bytes, read in 1 MiB chunks; updates and returns ``digest`` if given.

    Without ``digest`` returns the hex string; with one, the updated hash object (to hash several files).
    """
    h = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest() if digest is None else h


def files_sha256(paths: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over the names and contents of several files, in the given order."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).name.encode() + b"\0")
        file_sha256(path, h)
    return h.hexdigest()


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def json_dumps(obj: Any) -> str:
    """Indented JSON that refuses NaN and infinity (a report never writes a non-number as a number)."""
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def json_sha256(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys; non-JSON values by ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
