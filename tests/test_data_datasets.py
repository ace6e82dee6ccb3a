"""Tests of salience_lib.data.datasets: items, options, metadata, and a clear error for each bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from salience_lib.data import CsvImageDataset, NonFaceDataset, read_csv, synthetic

SIZE = 32




@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_items_have_the_documented_shapes_dtypes_and_ranges(generated: Path, split: str) -> None:
    data = CsvImageDataset(generated, split)
    image, label = data[0]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert label in (0, 1) and isinstance(label, int)
    assert data.labels.dtype == torch.int64 and len(data.labels) == len(data) == len(data.paths)
    assert data.image_size == (SIZE, SIZE)
    expected = np.asarray(Image.open(generated / data.paths[0]), np.float32) / 255
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected)


def test_labels_follow_the_csv(generated: Path) -> None:
    data = CsvImageDataset(generated, "train")
    entries = [e for e in read_csv(generated / "dataset.csv") if e.split == "train"]
    assert data.paths == [e.path for e in entries]
    assert data.labels.tolist() == [e.label for e in entries]
    assert data.labels.sum() == 30


def test_annotations_are_returned_in_unit_range(generated: Path) -> None:
    data = CsvImageDataset(generated, "val", annotations=True)
    _, _, note = data[1]
    assert note.shape == (SIZE, SIZE) and note.dtype == torch.float32
    assert float(note.max()) == pytest.approx(1.0) and float(note.min()) >= 0.0
    raw = np.asarray(Image.open(generated / "heatmaps" / Path(data.paths[1]).name), np.float32) / 255
    np.testing.assert_allclose(note.numpy(), raw)


@pytest.mark.parametrize(("image_size", "shape"), [(48, (48, 48)), ((40, 24), (40, 24))])
def test_image_size_resizes_images_and_annotations(generated: Path, image_size: object, shape: tuple) -> None:
    data = CsvImageDataset(generated, "train", image_size=image_size, annotations=True)
    image, _, note = data[3]
    assert image.shape == (3, *shape) and note.shape == shape and data.image_size == shape
    assert float(note.min()) >= 0.0 and float(note.max()) <= 1.0


def test_dataloader_collates_batches(generated: Path) -> None:
    images, labels, notes = next(iter(DataLoader(CsvImageDataset(generated, "train", annotations=True), batch_size=8)))
    assert images.shape == (8, 3, SIZE, SIZE) and labels.dtype == torch.int64 and notes.shape == (8, SIZE, SIZE)


def test_metadata_selects_families_and_gives_masks(generated: Path) -> None:
    data = CsvImageDataset(generated, "test")
    assert data.metadata is not None and len(data.metadata) == len(data)
    unseen = data.where(group="unseen")
    assert unseen and {data.metadata[i]["family"] for i in unseen} == {"boundary", "earring", "droplet"}
    assert data.where(family=["iris", "mouth"], shortcut=1) == [
        i for i, m in enumerate(data.metadata) if m["family"] in ("iris", "mouth") and m["shortcut"] == "1"
    ]
    synthetic_index, real_index = data.where(label="Synthetic")[0], data.where(label="Real")[0]
    mask = data.mask(synthetic_index)
    assert mask.shape == (SIZE, SIZE) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert data.mask(real_index).sum() == 0
    with pytest.raises(ValueError, match="no column 'colour'"):
        data.where(colour="red")


def test_data_without_metadata(root: Path) -> None:
    (root / "metadata.csv").unlink()
    data = CsvImageDataset(root, "train")
    assert data.metadata is None
    with pytest.raises(ValueError, match=r"has no metadata\.csv"):
        data.where(group="seen")


def test_nonface_set(generated: Path) -> None:
    data = NonFaceDataset(generated)
    assert len(data) == 5 and data[0].shape == (3, SIZE, SIZE) and data.kinds[0] in synthetic.NONFACE_KINDS
    assert NonFaceDataset(generated, image_size=20)[-1].shape == (3, 20, 20)


# ----------------------------------------------------------------------------------- bad input


def test_unknown_split_argument(generated: Path) -> None:
    with pytest.raises(ValueError, match="`split` must be one of train, val, test, got 'training'"):
        CsvImageDataset(generated, "training")


def test_missing_image_file(root: Path) -> None:
    first = CsvImageDataset(root, "train")
    line, path = first.lines[0], first.paths[0]
    (root / path).unlink()
    with pytest.raises(FileNotFoundError, match=rf"dataset\.csv, line {line}: image file .*{re.escape(path)}"):
        CsvImageDataset(root, "train")


def test_missing_annotation_when_requested(root: Path) -> None:
    data = CsvImageDataset(root, "test")  # without annotations the test split is fine
    line, path = data.lines[0], data.paths[0]
    with pytest.raises(FileNotFoundError, match=rf"line {line}: annotation .*{Path(path).name} for image '{path}'"):
        CsvImageDataset(root, "test", annotations=True)
    assert len(data) == 20


def test_metadata_without_a_row_for_an_image(root: Path) -> None:
    lines = (root / "metadata.csv").read_text().splitlines()
    (root / "metadata.csv").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    missing = lines[1].split(",")[1]
    with pytest.raises(ValueError, match=rf"metadata\.csv: no row for image '{missing}'"):
        CsvImageDataset(root, "train")


def test_nonface_errors(root: Path) -> None:
    first = (root / "nonface.csv").read_text().splitlines()[1].split(",")[1]
    (root / first).unlink()
    with pytest.raises(FileNotFoundError, match=rf"nonface\.csv, line 2: image file .*{first}"):
        NonFaceDataset(root)
    (root / "nonface.csv").write_text("file,kind\nx.png,shapes\n")
    with pytest.raises(ValueError, match=r"nonface\.csv, line 1: expected a header with a 'path' column"):
        NonFaceDataset(root)
