"""The identity of a data set: one SHA-256 over its CSV files and generator info, not its images."""

from __future__ import annotations

import os
from pathlib import Path

from salience_lib.runtime.files import files_sha256

__all__ = ["dataset_hash"]


def dataset_hash(root: str | os.PathLike[str]) -> str:
    """SHA-256 of a data set's top-level ``*.csv`` files and ``info.json`` (names and contents).

    Images are not hashed: the CSVs (and the generator's ``info.json``) identify the data set. The
    files are hashed in sorted-name order, ``info.json`` last, each as ``name + b"\\0" + bytes``
    (:func:`salience_lib.runtime.files.files_sha256`).

    Raises:
        FileNotFoundError: ``root`` missing or without any CSV file.
    """
    root = Path(root)
    files = sorted(root.glob("*.csv")) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no CSV file in data folder {root}")
    if (root / "info.json").is_file():
        files.append(root / "info.json")
    return files_sha256(files)
