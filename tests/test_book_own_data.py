"""The own-model chapter's CYBORG-style folder and plain checkpoints (salience_lib.book.own_data)."""

from __future__ import annotations

import csv

import torch

from salience_lib.book.own_data import fine_tune_plain, write_cyborg_folder
from salience_lib.data import CsvImageDataset


def test_cyborg_folder_has_leading_slash_csv_lines_and_family_folders(generated, tmp_path):
    csv_path = write_cyborg_folder(generated, tmp_path / "Data", split="test", limit=12)
    assert csv_path == tmp_path / "Data" / "csvs" / "test.csv"
    lines = list(csv.reader(csv_path.open()))
    assert len(lines) == 12
    for split, label, path in lines:
        assert split == "test" and label in ("Real", "Synthetic")
        assert path.startswith("/test/") and path.split("/")[3].endswith("_aligned")
        assert path.split("/")[2] == ("0_real" if label == "Real" else "1_fake")
        assert (tmp_path / "Data" / path.lstrip("/")).is_file()
    assert not (tmp_path / "Data" / "metadata.csv").exists()


def test_cyborg_folder_images_equal_the_source_images(generated, tmp_path):
    write_cyborg_folder(generated, tmp_path / "Data", split="test", limit=5)
    ours = CsvImageDataset(generated, "test")
    theirs = CsvImageDataset(tmp_path / "Data", "test", csv_name="csvs/test.csv")
    assert len(theirs) == 5
    for i in range(5):
        assert torch.equal(ours[i][0], theirs[i][0]) and ours[i][1] == theirs[i][1]


def test_fine_tune_plain_gives_a_bare_torchvision_state_dict(generated):
    dataset = CsvImageDataset(generated, "train")
    model = fine_tune_plain("resnet18", dataset, steps=2, batch_size=4, seed=0)
    keys = set(model.state_dict())
    assert "fc.weight" in keys and "conv1.weight" in keys  # torchvision's own names, no wrapper prefix
    assert model.fc.out_features == 2 and not model.training
    again = fine_tune_plain("resnet18", dataset, steps=2, batch_size=4, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
