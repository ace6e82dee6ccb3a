"""Tests of salience_lib.data.fingerprint: dataset_hash identifies a data set by its CSVs and info.json."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from salience_lib.data import dataset_hash


def _folder(root: Path) -> Path:
    root.mkdir()
    (root / "dataset.csv").write_text("train,Real,a.png\ntest,Synthetic,b.png\n")
    (root / "metadata.csv").write_text("index,path\n0,a.png\n1,b.png\n")
    (root / "info.json").write_text('{"seed": 0}\n')
    (root / "a.png").write_bytes(b"image a")
    return root


def test_same_content_gives_the_same_hash_wherever_it_lies(tmp_path: Path) -> None:
    first = _folder(tmp_path / "first")
    second = Path(shutil.copytree(first, tmp_path / "elsewhere" / "second"))
    assert dataset_hash(first) == dataset_hash(second) == dataset_hash(str(first))
    assert len(dataset_hash(first)) == 64


def test_changing_a_csv_or_info_changes_the_hash_but_images_do_not(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    before = dataset_hash(root)
    (root / "a.png").write_bytes(b"another image")
    assert dataset_hash(root) == before  # images are not hashed
    (root / "dataset.csv").write_text("train,Synthetic,a.png\ntest,Synthetic,b.png\n")
    changed = dataset_hash(root)
    assert changed != before
    (root / "info.json").write_text('{"seed": 1}\n')
    assert dataset_hash(root) not in (before, changed)
    (root / "dataset.csv").rename(root / "renamed.csv")  # the names count too
    assert dataset_hash(root) not in (before, changed)


def test_digest_is_the_documented_formula(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d")
    expected = hashlib.sha256()
    for name in ("dataset.csv", "metadata.csv", "info.json"):  # sorted CSVs, then info.json
        expected.update(name.encode() + b"\0" + (root / name).read_bytes())
    assert dataset_hash(root) == expected.hexdigest()


def test_folder_without_csv_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CSV"):
        dataset_hash(tmp_path / "missing")
    (tmp_path / "info.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="CSV"):
        dataset_hash(tmp_path)
