"""The identity of a data set: one SHA-256 over the content of every file it is read from.

:func:`dataset_hash` keys the report's cache and the trained runs (it enters the recipe hash), so it
covers what a result depends on: every CSV file (CYBORG keeps its CSVs in a sub-folder), ``info.json``,
and every image file below the root — images, annotation maps (``heatmaps/``) and masks — by
content. Replacing one heatmap or one training image changes it.

Hashing every image on every run would be slow, so each file's SHA-256 is stored with its stat
signature (size, modification and change times in ns, inode) in :data:`SIGNATURES_FILE` in the root
(or, when the root is read-only, in the user's cache folder). A file whose signature is unchanged is
not read again; any change, even one that keeps size and modification time (``touch -r``, ``cp -p``),
changes the change time and rehashes the file. Signatures younger than two seconds are not stored, so
a file rewritten within the clock's resolution is never trusted by its signature alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from PIL import Image

from salience_lib.data.layout import resolve_csv
from salience_lib.runtime.files import file_sha256, write_atomic

__all__ = ["SIGNATURES_FILE", "data_files", "dataset_hash"]

SIGNATURES_FILE = ".salience_lib-signatures.json"
"""Stored per-file content hashes of a data folder (hidden; not part of the data set)."""
_FORMAT = 1
_RECENT_NS = 2_000_000_000  # signatures younger than this are not stored (racy timestamps)


def _image_suffixes() -> set[str]:
    Image.init()
    return {suffix.lower() for suffix in Image.registered_extensions()}


def _skipped(name: str) -> bool:
    """Hidden files and folders (signatures, temp files) and report caches (``<out>.cache/``)."""
    return name.startswith(".") or name.endswith(".cache")


def data_files(root: str | os.PathLike[str], csv: str | os.PathLike[str] | None = None) -> list[str]:
    """The files :func:`dataset_hash` covers, as sorted POSIX paths relative to ``root``.

    Every ``*.csv`` file and every file with an image suffix (any format Pillow reads) in ``root`` or
    below, and ``info.json``; hidden files and folders and ``*.cache`` folders are skipped. A CSV named
    by ``csv`` (absolute or relative to ``root``, :func:`~salience_lib.data.layout.resolve_csv`) is
    added even when it lies outside ``root`` (CYBORG's ``../csvs/test.csv``), as a path relative to it.

    Raises:
        FileNotFoundError: ``root`` missing, ``csv`` given but missing, or no CSV file at all.
    """
    root = Path(root)
    suffixes = _image_suffixes() | {".csv"}
    found = {"info.json"} if (root / "info.json").is_file() else set()
    if csv is not None:
        named = resolve_csv(root, csv)
        if not named.is_file():
            raise FileNotFoundError(f"CSV file {named} not found (--csv is absolute or relative to {root})")
        found.add(Path(os.path.relpath(named, root)).as_posix())
    for folder, dirs, names in os.walk(root) if root.is_dir() else ():
        dirs[:] = [d for d in dirs if not _skipped(d)]
        rel = Path(folder).relative_to(root)
        for name in names:
            if not _skipped(name) and os.path.splitext(name)[1].lower() in suffixes:
                found.add((rel / name).as_posix())
    if not any(name.lower().endswith(".csv") for name in found):
        raise FileNotFoundError(f"no CSV file in data folder {root}")
    return sorted(found)


def _store_paths(root: Path) -> list[Path]:
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return [root / SIGNATURES_FILE, cache_home / "salience_lib" / f"signatures-{key}.json"]


def _load_signatures(root: Path) -> dict[str, list]:
    for path in _store_paths(root):
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(stored, dict) and stored.get("format") == _FORMAT and isinstance(stored.get("files"), dict):
            return stored["files"]
    return {}


def _save_signatures(root: Path, files: dict[str, list]) -> None:
    payload = json.dumps({"format": _FORMAT, "files": files}, separators=(",", ":"))
    for path in _store_paths(root):
        try:
            write_atomic(path, payload)
            return
        except OSError:  # a read-only data folder: try the user cache; none writable: rehash next time
            continue


def dataset_hash(root: str | os.PathLike[str], *, csv: str | os.PathLike[str] | None = None, store: bool = True) -> str:
    """SHA-256 identifying a data set by the content of its files (:func:`data_files`).

    The digest is SHA-256 over ``<relative path> + "\\0" + <hex SHA-256 of the file> + "\\n"`` for
    every file in sorted order, so the same files anywhere give the same hash, and a renamed, added,
    removed or changed file (a CSV, an image, a heatmap) a different one.

    Args:
        root: the data-set folder.
        csv: a CSV to include wherever it lies (see :func:`data_files`), e.g. a report's ``--csv``.
        store: reuse and update the stored content hashes (see the module docstring); ``False``
            reads every file.

    Raises:
        FileNotFoundError: ``root`` missing, ``csv`` given but missing, or no CSV file at all.
    """
    root = Path(root)
    names = data_files(root, csv)
    known = _load_signatures(root) if store else {}
    now = time.time_ns()
    digest, kept, changed = hashlib.sha256(), {}, False
    for name in names:
        stat = os.stat(root / name)
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        entry = known.get(name)
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == signature:
            sha = entry[4]
        else:
            sha, changed = file_sha256(root / name), True
        if max(stat.st_mtime_ns, stat.st_ctime_ns) < now - _RECENT_NS:
            kept[name] = [*signature, sha]
        elif name in known:
            changed = True
        digest.update(f"{name}\0{sha}\n".encode())
    if store and (changed or set(kept) != set(known)):
        _save_signatures(root, kept)
    return digest.hexdigest()
