"""Tests of salience_lib.data.layout: reading and validating CYBORG CSVs, and the package's names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import salience_lib.data
from salience_lib.data import LABELS, CsvEntry, CsvImageDataset, read_csv

SIZE = 32




def _lines(root: Path) -> list[str]:
    return (root / "dataset.csv").read_text().splitlines()


def _write_lines(root: Path, lines: list[str]) -> None:
    (root / "dataset.csv").write_text("\n".join(lines) + "\n")


def test_package_exports_every_public_name() -> None:
    for name in salience_lib.data.__all__:
        assert hasattr(salience_lib.data, name), name
    names = {"CSV_NAME", "METADATA_NAME", "NONFACE_NAME", "HEATMAP_DIR", "LABELS", "SPLITS", "dataset_hash"}
    assert names <= set(salience_lib.data.__all__)


def test_read_csv_parses_lines_in_order(tmp_path: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_bytes("\ufefftrain,Real,/a/1.png\n\n test , Synthetic ,b/2.png\n".encode())
    expected = [CsvEntry(1, "train", 0, "a/1.png"), CsvEntry(3, "test", LABELS["Synthetic"], "b/2.png")]
    assert read_csv(csv_path) == expected


def test_missing_root_or_csv(root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        CsvImageDataset(root / "nowhere", "train")
    (root / "dataset.csv").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "dataset.csv"))):
        CsvImageDataset(root, "train")


def test_cyborg_style_leading_slash_paths(root: Path) -> None:
    _write_lines(root, [f"{s},{lab},/{p}" for s, lab, p in (line.split(",") for line in _lines(root))])
    data = CsvImageDataset(root, "test")
    assert not data.paths[0].startswith("/") and data[0][0].shape == (3, SIZE, SIZE)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("training,Real,train/real/x.png", "unknown split 'training'"),
        ("train,Fake,train/real/x.png", "unknown label 'Fake'"),
        ("train,Real", "expected 3 fields 'split,label,path', got 2"),
        ("train,Real,a.png,extra", "expected 3 fields 'split,label,path', got 4"),
        ("train,Real,  ", "empty image path"),
        ("train,Real,../outside.png", r"image path '\.\./outside\.png' must stay inside"),
    ],
)
def test_bad_csv_line_names_file_line_and_value(root: Path, bad: str, message: str) -> None:
    lines = _lines(root)
    lines.insert(4, bad)
    _write_lines(root, lines)
    with pytest.raises(ValueError, match=rf"dataset\.csv, line 5: {message}"):
        CsvImageDataset(root, "val")


def test_duplicate_path(root: Path) -> None:
    lines = _lines(root)
    _write_lines(root, [*lines, lines[2]])
    with pytest.raises(ValueError, match=rf"line {len(lines) + 1}: duplicate path '.*' \(first listed on line 3\)"):
        CsvImageDataset(root, "train")


def test_empty_split_and_empty_csv(root: Path) -> None:
    _write_lines(root, [line for line in _lines(root) if not line.startswith("val,")])
    with pytest.raises(ValueError, match=r"no entries for split 'val' \(entries per split: .*'train': 60"):
        CsvImageDataset(root, "val")
    (root / "dataset.csv").write_text("\n\n")
    with pytest.raises(ValueError, match="contains no entries"):
        CsvImageDataset(root, "train")
