"""Tests of salience_lib.data.layout: reading and validating CYBORG CSVs, and the package's names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import salience_lib.data
from salience_lib.data import LABELS, CsvEntry, CsvImageDataset, read_csv
from salience_lib.data.layout import resolve_csv

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


@pytest.mark.parametrize("spelling", ["./test/x.png", "test//x.png", "/test/x.png", "test/./x.png"])
def test_duplicate_spellings_are_one_file(tmp_path: Path, spelling: str) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text(f"test,Real,test/x.png\ntest,Real,other.png\ntest,Synthetic,{spelling}\n")
    with pytest.raises(ValueError, match=r"x\.csv, line 3: duplicate path 'test/x\.png'.*\(first listed on line 1\)"):
        read_csv(csv_path)


def test_paths_are_normalised(tmp_path: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("test,Real,.//test//a/./x.png\n")
    assert read_csv(csv_path)[0].path == "test/a/x.png"


def test_non_utf8_csv_names_file_and_line(tmp_path: Path) -> None:
    csv_path = tmp_path / "latin.csv"
    csv_path.write_bytes("train,Real,a.png\ntrain,Real,caf\u00e9.png\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv, line 2: not UTF-8 \(byte 0xe9 at column 15\)"):
        read_csv(csv_path)


def test_non_utf8_metadata_names_file_and_line(root: Path) -> None:
    lines = (root / "metadata.csv").read_bytes().splitlines()
    lines[3] += b"\xff"
    (root / "metadata.csv").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ValueError, match=r"metadata\.csv, line 4: not UTF-8"):
        CsvImageDataset(root, "train")


def test_resolve_csv_is_absolute_or_relative_to_the_folder(tmp_path: Path) -> None:
    assert resolve_csv(tmp_path) == tmp_path / "dataset.csv"
    assert resolve_csv(tmp_path, "csvs/test.csv") == tmp_path / "csvs" / "test.csv"
    assert resolve_csv(tmp_path / "Data", "../csvs/test.csv") == tmp_path / "Data" / ".." / "csvs" / "test.csv"
    assert resolve_csv(tmp_path / "Data", tmp_path / "t.csv") == tmp_path / "t.csv"
