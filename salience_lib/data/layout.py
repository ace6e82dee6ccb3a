"""The CYBORG data-set layout (SPEC §5): file names, labels, splits, and reading and validating the CSVs.

Layout of ``root`` (the generated data sets of :mod:`salience_lib.data.synthetic` and CYBORG's data)::

    dataset.csv    header-less lines ``split,label,path``: split in train/val/test, label in
                   Real/Synthetic, path relative to root (a leading "/", as in CYBORG's CSVs, is
                   allowed and ignored)
    heatmaps/      human annotation maps named like the image file (CYBORG's training code looks
                   them up by file name in one flat folder)
    metadata.csv   optional, with a header that includes ``path`` (the generator adds family,
                   group, shortcut, mask_path, ...); real data sets simply lack it
    nonface.csv    optional, with a header that includes ``path``: out-of-set images

The CSV is validated eagerly (field count, split, label, empty or unsafe path, duplicates; the data
sets of :mod:`salience_lib.data.datasets` add file existence); images are decoded lazily. Every
problem raises ``ValueError`` or ``FileNotFoundError`` naming the file, the CSV line and the
offending value; nothing is skipped.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = [
    "CSV_NAME",
    "HEATMAP_DIR",
    "LABELS",
    "METADATA_NAME",
    "NONFACE_NAME",
    "SPLITS",
    "CsvEntry",
    "read_csv",
]

CSV_NAME = "dataset.csv"
METADATA_NAME = "metadata.csv"
NONFACE_NAME = "nonface.csv"
HEATMAP_DIR = "heatmaps"
LABELS = {"Real": 0, "Synthetic": 1}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CsvEntry:
    """One CSV line: 1-based line number, split, integer label (0 Real, 1 Synthetic), relative path."""

    line: int
    split: str
    label: int
    path: str


def _clean_path(raw: str, where: str) -> str:
    path = raw.strip().lstrip("/")
    if not path:
        raise ValueError(f"{where}: empty image path")
    if ".." in PurePosixPath(path).parts:
        raise ValueError(f"{where}: image path {raw!r} must stay inside the data-set root (no '..')")
    return path


def _read_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV file {csv_path} not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        return [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]


def read_csv(csv_path: str | os.PathLike[str]) -> list[CsvEntry]:
    """Parse and validate a header-less CYBORG CSV (every split); blank lines are ignored.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line without exactly 3 fields, an unknown split or label, an empty or unsafe
            path, a path listed twice, or no entries at all; the message names file, line and value.
    """
    csv_path = Path(csv_path)
    entries, first_line = [], {}
    for line, row in _read_rows(csv_path):
        where = f"{csv_path}, line {line}"
        if len(row) != 3:
            raise ValueError(f"{where}: expected 3 fields 'split,label,path', got {len(row)}: {','.join(row)!r}")
        split, label, path = row[0].strip(), row[1].strip(), _clean_path(row[2], where)
        if split not in SPLITS:
            raise ValueError(f"{where}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if label not in LABELS:
            raise ValueError(f"{where}: unknown label {label!r}; expected one of {', '.join(LABELS)}")
        if path in first_line:
            raise ValueError(f"{where}: duplicate path {path!r} (first listed on line {first_line[path]})")
        first_line[path] = line
        entries.append(CsvEntry(line, split, LABELS[label], path))
    if not entries:
        raise ValueError(f"{csv_path}: the CSV contains no entries")
    return entries


def _read_header_csv(csv_path: Path, required: str = "path") -> list[tuple[int, dict[str, str]]]:
    rows = _read_rows(csv_path)
    if not rows or required not in rows[0][1]:
        raise ValueError(f"{csv_path}, line 1: expected a header with a {required!r} column")
    header = rows[0][1]
    records = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(f"{csv_path}, line {line}: expected {len(header)} fields, got {len(row)}")
        record = dict(zip(header, row, strict=True))
        record["path"] = _clean_path(record["path"], f"{csv_path}, line {line}")
        records.append((line, record))
    return records
