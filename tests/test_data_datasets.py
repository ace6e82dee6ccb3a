"""Tests of salience_lib.data.datasets: items, options, metadata, and a clear error for each bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from salience_lib.data import CsvImageDataset, NonFaceDataset, read_csv, synthetic

SIZE = 32

CYBORG_TEST = (
    ("Synthetic", "test/1_fake/stylegan1-0.5_aligned/000000/000170.png"),
    ("Synthetic", "test/1_fake/stylegan1-0.5_aligned/000000/000174.png"),
    ("Synthetic", "test/1_fake/progan_aligned/000000/000170.png"),
    ("Real", "test/0_real/000101.png"),
    ("Real", "test/0_real/000102.png"),
)
CYBORG_TRAIN = tuple(
    (label, f"train/{kind}/{i:06d}.png")
    for i, (label, kind) in enumerate([("Real", "0_real"), ("Synthetic", "1_fake/stylegan2_aligned")] * 3)
)


def cyborg_folder(base: Path, size: int = 16, heatmaps: int = 6) -> Path:
    """CYBORG's own layout under ``base``: ``Data/`` with the images, ``Data/csvs/{test,train}.csv`` with
    leading-slash paths relative to ``Data/``, and ``Data/heatmaps/<name>`` for the first ``heatmaps``
    training images (each map a constant ``(i + 1) / 10``)."""
    data = base / "Data"
    rng = np.random.default_rng(0)
    for split, entries in (("test", CYBORG_TEST), ("train", CYBORG_TRAIN)):
        for _, path in entries:
            (data / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(data / path)
        (data / "csvs").mkdir(exist_ok=True)
        (data / "csvs" / f"{split}.csv").write_text("".join(f"{split},{lab},/{p}\n" for lab, p in entries))
    (data / "heatmaps").mkdir()
    for i, (_, path) in enumerate(CYBORG_TRAIN[:heatmaps]):
        note = Image.fromarray(np.full((size, size), round(25.5 * (i + 1)), np.uint8))
        note.save(data / "heatmaps" / Path(path).name)
    return data


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


# ------------------------------------------------------------------------------ CYBORG's own layout


@pytest.mark.parametrize("where", ["inside", "beside", "absolute"])
def test_cyborg_csv_paths_are_relative_to_the_data_folder_not_the_csv(tmp_path: Path, where: str) -> None:
    data = cyborg_folder(tmp_path)
    if where == "beside":  # the authors' repository: csvs/ next to Data/
        (data / "csvs").rename(tmp_path / "csvs")
    csv_name = {"inside": "csvs/test.csv", "beside": "../csvs/test.csv", "absolute": str(data / "csvs" / "test.csv")}
    split = CsvImageDataset(data, "test", csv_name=csv_name[where])
    assert split.paths == [p for _, p in CYBORG_TEST] and split.labels.tolist() == [1, 1, 1, 0, 0]
    assert split.image_file(0) == data / CYBORG_TEST[0][1]
    expected = np.asarray(Image.open(data / CYBORG_TEST[2][1]), np.float32) / 255
    np.testing.assert_allclose(split[2][0].permute(1, 2, 0).numpy(), expected)


def test_cyborg_heatmaps_are_found_by_file_name(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path)
    split = CsvImageDataset(data, "train", annotations=True, csv_name="csvs/train.csv")
    assert split.annotation_file(1) == data / "heatmaps" / "000001.png"
    assert float(split[1][2].mean()) == pytest.approx(0.2, abs=1 / 255)


def test_missing_csv_names_the_expected_path(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path)
    expected = re.escape(str(data / "dataset.csv"))
    with pytest.raises(FileNotFoundError, match=rf"CSV file {expected} not found.*csv_name="):
        CsvImageDataset(data, "test")


def test_annotations_available_marks_images_without_a_map_with_nan(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, heatmaps=4)
    split = CsvImageDataset(data, "train", annotations="available", csv_name="csvs/train.csv")
    assert split.annotated.tolist() == [True] * 4 + [False] * 2
    assert float(split[3][2].mean()) == pytest.approx(0.4, abs=1 / 255)
    assert bool(split[4][2].isnan().all())  # never a fake zero map
    with pytest.raises(FileNotFoundError, match=r"train\.csv, line 5: annotation .*heatmaps/000004\.png"):
        CsvImageDataset(data, "train", annotations=True, csv_name="csvs/train.csv")
    with pytest.raises(ValueError, match="`annotations` must be False, True or 'available'"):
        CsvImageDataset(data, "train", annotations="some", csv_name="csvs/train.csv")


def test_annotation_name_shared_with_another_split_is_ambiguous(root: Path) -> None:
    lines = (root / "dataset.csv").read_text().splitlines()
    val = next(i for i, line in enumerate(lines) if line.startswith("val,"))
    name = Path(lines[val].split(",")[2]).name
    train = next(i for i, line in enumerate(lines) if line.startswith("train,"))
    shutil.copy(root / lines[train].split(",")[2], root / "test" / name)
    lines.append(f"test,Real,test/{name}")
    (root / "dataset.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"line {val + 1}: file name '{name}' .* also used on line {len(lines)}"):
        CsvImageDataset(root, "val", annotations=True)


# ------------------------------------------------------------------------- symlinks and the root


def test_symlinked_image_is_rejected_naming_the_line(root: Path) -> None:
    data = CsvImageDataset(root, "train")
    line, path = data.lines[1], data.paths[1]
    (root / path).unlink()
    (root / path).symlink_to(root / data.paths[0])
    with pytest.raises(ValueError, match=rf"dataset\.csv, line {line}: image file '{path}' resolves through a symlink"):
        CsvImageDataset(root, "train")


def test_path_resolving_outside_the_root_is_rejected(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (SIZE, SIZE)).save(outside / "x.png")
    (root / "test" / "linked").symlink_to(outside)
    lines = (root / "dataset.csv").read_text().splitlines()
    (root / "dataset.csv").write_text("\n".join([*lines, "test,Real,test/linked/x.png"]) + "\n")
    with pytest.raises(ValueError, match=rf"line {len(lines) + 1}: image file 'test/linked/x\.png' resolves outside"):
        CsvImageDataset(root, "test")


def test_symlinked_annotation_and_nonface_image_are_rejected(root: Path) -> None:
    data = CsvImageDataset(root, "val", annotations=True)
    note = data.annotation_file(0)
    target = note.with_name("copy.png")
    note.rename(target)
    note.symlink_to(target)
    with pytest.raises(ValueError, match=rf"line {data.lines[0]} \(annotation of .*resolves through a symlink"):
        CsvImageDataset(root, "val", annotations=True)
    first = (root / "nonface.csv").read_text().splitlines()[1].split(",")[1]
    (root / first).rename(root / "moved.png")
    (root / first).symlink_to(root / "moved.png")
    with pytest.raises(ValueError, match=r"nonface\.csv, line 2: image file .* resolves through a symlink"):
        NonFaceDataset(root)


def test_the_data_folder_itself_may_be_a_link(generated: Path, tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(generated)
    assert len(CsvImageDataset(tmp_path / "link", "train", annotations=True)) == 60


def test_cyborg_test_image_named_like_an_annotated_training_image_is_ambiguous(tmp_path: Path) -> None:
    """One flat heatmaps/ folder and one CSV per split: the map of train/.../000001.png must not become
    the annotation of test/.../000001.png; the CSVs beside the chosen one are checked too."""
    data = cyborg_folder(tmp_path)
    (data / "test" / "0_real" / "000101.png").rename(data / "test" / "0_real" / "000001.png")
    (data / "csvs" / "real.csv").write_text("test,Real,/test/0_real/000102.png\ntest,Real,/test/0_real/000001.png\n")
    Image.new("L", (16, 16)).save(data / "heatmaps" / "000102.png")
    expected = r"real\.csv, line 2: file name '000001\.png' .* also used on .*train\.csv, line 2; .* ambiguous"
    with pytest.raises(ValueError, match=expected):
        CsvImageDataset(data, "test", annotations=True, csv_name="csvs/real.csv")
    split = CsvImageDataset(data, "test", annotations="available", csv_name="csvs/real.csv")
    assert split.annotated.tolist() == [True, False] and list(split.ambiguous) == [1]
