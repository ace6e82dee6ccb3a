"""Atomic writes and content hashes — the one implementation every module uses.

A file written with :func:`write_atomic` is either the old file or the complete new one, never a
partial file: the bytes go to a temporary file in the same folder (named ``.<name>.<random>.tmp``,
so it is recognisable and never mistaken for output), are flushed to disk, and are then renamed
over the target (``os.replace`` is atomic on POSIX). On any error the temporary file is removed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMP_SUFFIX",
    "file_sha256",
    "files_sha256",
    "json_dumps",
    "json_safe",
    "json_sha256",
    "remove_stale_temp_files",
    "write_atomic",
]

TEMP_SUFFIX = ".tmp"
_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: str | bytes | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (text as UTF-8, bytes, or a ``write(handle)`` callback) to ``path`` atomically.

    The parent folder is created if needed; the file gets the usual permissions (0666 minus the
    umask), not ``mkstemp``'s 0600. Returns the path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def remove_stale_temp_files(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Delete the temporary files :func:`write_atomic` left for ``name`` in ``folder`` (e.g. after a kill)."""
    removed = []
    for stale in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}"):
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
