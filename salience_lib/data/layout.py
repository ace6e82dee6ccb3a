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

CYBORG's own data keep one CSV per split elsewhere (``csvs/test.csv`` beside or inside the image
folder) with lines like ``test,Synthetic,/test/1_fake/stylegan1-0.5_aligned/000000/000170.png``:
:func:`resolve_csv` finds such a CSV (absolute, or relative to ``root``), and its image paths are
still relative to ``root``, wherever the CSV lies.

Image paths are normalised before anything else (:func:`_clean_path`): ``./test/x.png``,
``test//x.png`` and ``/test/x.png`` are all ``test/x.png``, so a file listed twice under two
spellings is a duplicate. The CSV is validated eagerly (encoding, field count, split, label, empty or
unsafe path, duplicates; the data sets of :mod:`salience_lib.data.datasets` add file existence and
symlinks); images are decoded lazily. Every problem raises ``ValueError`` or ``FileNotFoundError``
naming the file, the CSV line and the offending value; nothing is skipped.
"""

from __future__ import annotations

import csv
import io
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
    "resolve_csv",
]

CSV_NAME = "dataset.csv"
METADATA_NAME = "metadata.csv"
NONFACE_NAME = "nonface.csv"
HEATMAP_DIR = "heatmaps"
LABELS = {"Real": 0, "Synthetic": 1}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CsvEntry:
    """One CSV line: 1-based line number, split, integer label (0 Real, 1 Synthetic), normalised relative path."""

    line: int
    split: str
    label: int
    path: str


def resolve_csv(root: str | os.PathLike[str], csv_name: str | os.PathLike[str] | None = None) -> Path:
    """The CSV of the data folder ``root``: ``csv_name`` if absolute, else ``root / csv_name``.

    ``None`` means :data:`CSV_NAME` (``dataset.csv``). CYBORG's ``csvs/test.csv`` is
    ``resolve_csv(root, "csvs/test.csv")`` (inside ``root``) or ``"../csvs/test.csv"`` (beside it);
    the image paths it lists are relative to ``root`` either way. Existence is not checked here.
    """
    name = Path(CSV_NAME if csv_name is None else csv_name)
    return name if name.is_absolute() else Path(root) / name


def _clean_path(raw: str, where: str) -> str:
    """``raw`` as a normalised relative POSIX path: no leading "/", no "." or empty parts; ".." is refused."""
    parts = PurePosixPath(raw.strip()).parts
    if ".." in parts:
        raise ValueError(f"{where}: image path {raw!r} must stay inside the data-set root (no '..')")
    kept = [p for p in parts if p.strip("/") not in ("", ".")]
    if not kept:
        raise ValueError(f"{where}: empty image path{'' if not raw.strip() else f' {raw!r}'}")
    return "/".join(kept)


def _decode(csv_path: Path) -> str:
    """The file's text (UTF-8, an optional BOM); a non-UTF-8 byte is named with its line and offset."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV file {csv_path} not found")
    data = csv_path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{csv_path}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
            "save the CSV as UTF-8"
        ) from exc


def _read_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(_decode(csv_path), newline=""))
    return [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]


def read_csv(csv_path: str | os.PathLike[str]) -> list[CsvEntry]:
    """Parse and validate a header-less CYBORG CSV (every split); blank lines are ignored.

    Paths are normalised (:func:`_clean_path`), so ``./a/x.png``, ``a//x.png`` and ``a/x.png`` are one
    file and a second listing of it is a duplicate.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is not UTF-8, a line without exactly 3 fields, an unknown split or
            label, an empty or unsafe path, a path listed twice, or no entries at all; the message
            names file, line (both lines for a duplicate) and value.
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
        _check_unique(first_line, path, line, where, row[2])
        entries.append(CsvEntry(line, split, LABELS[label], path))
    if not entries:
        raise ValueError(f"{csv_path}: the CSV contains no entries")
    return entries


def _check_unique(first_line: dict[str, int], path: str, line: int, where: str, raw: str) -> None:
    if path in first_line:
        spelled = "" if raw.strip() == path else f" (written {raw.strip()!r})"
        raise ValueError(f"{where}: duplicate path {path!r}{spelled} (first listed on line {first_line[path]})")
    first_line[path] = line


def _read_header_csv(csv_path: Path, required: str = "path") -> list[tuple[int, dict[str, str]]]:
    rows = _read_rows(csv_path)
    if not rows or required not in rows[0][1]:
        raise ValueError(f"{csv_path}, line 1: expected a header with a {required!r} column")
    header = rows[0][1]
    records, first_line = [], {}
    for line, row in rows[1:]:
        where = f"{csv_path}, line {line}"
        if len(row) != len(header):
            raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
        record = dict(zip(header, row, strict=True))
        raw = record["path"]
        record["path"] = _clean_path(raw, where)
        _check_unique(first_line, record["path"], line, where, raw)
        records.append((line, record))
    return records
