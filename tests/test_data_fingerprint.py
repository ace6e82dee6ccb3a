"""Tests of salience_lib.data.fingerprint: dataset_hash identifies a data set by the content of its files."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from salience_lib.data import dataset_hash, fingerprint
from salience_lib.data.fingerprint import SIGNATURES_FILE, data_files


def _folder(root: Path) -> Path:
    (root / "heatmaps").mkdir(parents=True)
    (root / "dataset.csv").write_text("train,Real,a.png\ntest,Synthetic,b.png\n")
    (root / "metadata.csv").write_text("index,path\n0,a.png\n1,b.png\n")
    (root / "info.json").write_text('{"seed": 0}\n')
    (root / "a.png").write_bytes(b"image a")
    (root / "b.png").write_bytes(b"image b")
    (root / "heatmaps" / "a.png").write_bytes(b"heatmap a")
    return root


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store signatures of files just written (normally only those older than two seconds are stored)."""
    monkeypatch.setattr(fingerprint, "_RECENT_NS", -(10**12))


def test_same_content_gives_the_same_hash_wherever_it_lies(tmp_path: Path) -> None:
    first = _folder(tmp_path / "first")
    second = Path(shutil.copytree(first, tmp_path / "elsewhere" / "second"))
    assert dataset_hash(first) == dataset_hash(second) == dataset_hash(str(first))
    assert len(dataset_hash(first)) == 64


def test_changing_a_csv_or_info_changes_the_hash(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    before = dataset_hash(root)
    (root / "dataset.csv").write_text("train,Synthetic,a.png\ntest,Synthetic,b.png\n")
    changed = dataset_hash(root)
    assert changed != before
    (root / "info.json").write_text('{"seed": 1}\n')
    assert dataset_hash(root) not in (before, changed)
    (root / "dataset.csv").rename(root / "renamed.csv")  # the names count too
    assert dataset_hash(root) not in (before, changed)


def test_replaced_images_and_heatmaps_change_the_hash(tmp_path: Path, trusting: None) -> None:
    root = _folder(tmp_path / "d")
    before = dataset_hash(root)
    (root / "heatmaps" / "a.png").write_bytes(b"another heatmap")
    after_heatmap = dataset_hash(root)
    assert after_heatmap != before
    (root / "a.png").write_bytes(b"black image")
    assert dataset_hash(root) not in (before, after_heatmap)
    (root / "heatmaps" / "b.png").write_bytes(b"a new heatmap")  # an added map counts too
    assert len({before, after_heatmap, dataset_hash(root)}) == 3


def test_same_size_and_mtime_replacement_is_still_seen(tmp_path: Path, trusting: None) -> None:
    """``cp -p``-like replacement keeps size and mtime; the change time (and the inode) still differ."""
    root = _folder(tmp_path / "d")
    before = dataset_hash(root)
    stat = (root / "a.png").stat()
    (root / "a.png").write_bytes(b"image A")  # same size
    os.utime(root / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_hash(root) != before


def test_rerun_reads_only_changed_files(tmp_path: Path, trusting: None, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "d")
    first = dataset_hash(root)
    assert (root / SIGNATURES_FILE).is_file()
    read: list[str] = []
    real = fingerprint.file_sha256
    monkeypatch.setattr(fingerprint, "file_sha256", lambda path: read.append(Path(path).name) or real(path))
    assert dataset_hash(root) == first and read == []
    (root / "b.png").write_bytes(b"image c")
    assert dataset_hash(root) != first and read == ["b.png"]


def test_a_corrupt_signature_store_is_ignored(tmp_path: Path, trusting: None) -> None:
    root = _folder(tmp_path / "d")
    first = dataset_hash(root)
    (root / SIGNATURES_FILE).write_text("{not json")
    assert dataset_hash(root) == first == dataset_hash(root, store=False)


def test_digest_is_the_documented_formula(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    (root / "notes.txt").write_text("not data")  # neither a CSV nor an image: not covered
    (root / "r.json.cache").mkdir()
    (root / "r.json.cache" / "x.png").write_bytes(b"a report cache")
    (root / "csvs").mkdir()
    (root / "csvs" / "test.csv").write_text("test,Real,a.png\n")  # CYBORG's CSVs lie in a sub-folder
    names = ["a.png", "b.png", "csvs/test.csv", "dataset.csv", "heatmaps/a.png", "info.json", "metadata.csv"]
    assert data_files(root) == names
    expected = hashlib.sha256()
    for name in names:
        expected.update(f"{name}\0{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n".encode())
    assert dataset_hash(root) == expected.hexdigest()


def test_folder_without_csv_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CSV"):
        dataset_hash(tmp_path / "missing")
    (tmp_path / "info.json").write_text("{}")
    (tmp_path / "a.png").write_bytes(b"image")
    with pytest.raises(FileNotFoundError, match="CSV"):
        dataset_hash(tmp_path)


def test_a_csv_beside_the_folder_counts_when_named(tmp_path: Path) -> None:
    """CYBORG's layout: images in ``Data/``, the CSV in ``csvs/`` beside it (``--csv ../csvs/test.csv``)."""
    root = _folder(tmp_path / "Data")
    (tmp_path / "csvs").mkdir()
    beside = tmp_path / "csvs" / "test.csv"
    beside.write_text("test,Real,a.png\n")
    assert "../csvs/test.csv" in data_files(root, "../csvs/test.csv")
    before = dataset_hash(root, csv="../csvs/test.csv")
    assert before != dataset_hash(root) and dataset_hash(root, csv=beside) == before  # absolute: the same file
    beside.write_text("test,Real,b.png\n")
    assert dataset_hash(root, csv="../csvs/test.csv") != before
    with pytest.raises(FileNotFoundError, match=r"CSV file .*missing\.csv not found"):
        dataset_hash(root, csv="missing.csv")
