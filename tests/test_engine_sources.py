"""Tests of salience_lib.engine.sources: a folder's CSV, groups and annotations as the engine sees them."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from salience_lib.data import CsvImageDataset
from salience_lib.engine import EngineSettings, SettingsError, evaluate
from salience_lib.engine.sources import Source, folder_group, open_source
from salience_lib.maps import quantise
from salience_lib.measures.stability import agreement_with_reference
from salience_lib.salience import GradCAM
from salience_lib.similarity import ssim
from tests.helpers import TinyCNN
from tests.test_data_datasets import CYBORG_TEST, CYBORG_TRAIN, cyborg_folder

SIZE = 16


def _source(data: Path, **settings: object) -> Source:
    return open_source(data, EngineSettings(device="cpu", progress=False, **settings), None)


# ----------------------------------------------------------------------------------- the CSV


@pytest.mark.parametrize("where", ["inside", "beside", "absolute"])
def test_csv_is_absolute_or_relative_to_the_folder(tmp_path: Path, where: str) -> None:
    data = cyborg_folder(tmp_path, SIZE)
    if where == "beside":
        (data / "csvs").rename(tmp_path / "csvs")
    csv = {"inside": "csvs/test.csv", "beside": "../csvs/test.csv", "absolute": str(data / "csvs" / "test.csv")}
    source = _source(data, csv=csv[where])
    assert source.n == 5 and source.description["csv"] == str(data / csv[where])
    assert source.dataset.image_file(3) == data / "test" / "0_real" / "000101.png"


def test_folder_without_dataset_csv_names_the_expected_path_and_csv_option(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE)
    expected = re.escape(str(data / "dataset.csv"))
    with pytest.raises(FileNotFoundError, match=rf"{expected} not found.*csv= \(--csv\).*csvs/test\.csv") as info:
        _source(data)
    assert "csvs/train.csv" in str(info.value)  # the CSVs it does have are listed
    (data / "csvs").rename(tmp_path / "csvs")
    with pytest.raises(FileNotFoundError, match=r"CSVs in the folder: \.\./csvs/test\.csv, \.\./csvs/train\.csv"):
        _source(data)
    missing = re.escape(str(data / "csvs" / "val.csv"))
    with pytest.raises(FileNotFoundError, match=rf"{missing} not found .*relative to"):
        _source(data, csv="csvs/val.csv")
    with pytest.raises(FileNotFoundError, match=f"data folder {re.escape(str(tmp_path / 'none'))} not found"):
        _source(tmp_path / "none")


# ----------------------------------------------------------------------------------- groups


def test_folder_group_is_the_aligned_family_or_the_label() -> None:
    assert folder_group("test/1_fake/stylegan1-0.5_aligned/000000/000170.png", 1) == "stylegan1-0.5"
    assert folder_group("test/0_real/ffhq_aligned/x.png", 0) == "ffhq"
    assert folder_group("a_aligned/b/c_aligned/x.png", 1) == "c"  # the deepest
    assert folder_group("test/0_real/x.png", 0) == "real"
    assert folder_group("test/1_fake/_aligned/x.png", 1) == "synthetic"
    assert folder_group("test/1_fake/x_aligned.png", 1) == "synthetic"  # a file, not a folder


def test_groups_come_from_the_image_folders_without_metadata(tmp_path: Path) -> None:
    source = _source(cyborg_folder(tmp_path, SIZE), csv="csvs/test.csv")
    assert source.groups == ["progan", "real", "stylegan1-0.5"]
    assert source.group_ids.tolist() == [2, 2, 0, 1, 1]
    assert source.in_set_groups() == ["real"] and source.in_set.tolist() == [False, False, False, True, True]
    assert source.shift_groups == ["progan", "real", "stylegan1-0.5"]
    summary = source.summary()
    assert summary["groups"] == {"progan": 1, "real": 2, "stylegan1-0.5": 2}
    assert summary["groups_from"] == "folders (<family>_aligned)"


def test_folder_groups_take_in_set_groups_or_fall_back_to_real_ones(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE)
    chosen = _source(data, csv="csvs/test.csv", in_set_groups=("real", "progan"))
    assert chosen.in_set_groups() == ["progan", "real"]
    for path in (data / "test" / "0_real").iterdir():  # real images in a family folder
        (data / "test" / "0_real" / "ffhq_aligned").mkdir(exist_ok=True)
        path.rename(data / "test" / "0_real" / "ffhq_aligned" / path.name)
    csv = data / "csvs" / "test.csv"
    csv.write_text(csv.read_text().replace("0_real/", "0_real/ffhq_aligned/"))
    default = _source(data, csv="csvs/test.csv")
    assert default.groups == ["ffhq", "progan", "stylegan1-0.5"] and default.in_set_groups() == ["ffhq"]
    with pytest.raises(SettingsError, match=r"--in-set-groups \['seen'\]: none of them .*'ffhq'"):
        _source(data, csv="csvs/test.csv", in_set_groups=("seen",))


def test_folder_group_with_both_labels_is_an_error(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE)
    csv = data / "csvs" / "test.csv"
    csv.write_text(csv.read_text().replace("Synthetic,/test/1_fake/progan", "Real,/test/1_fake/progan"))
    (data / "test" / "1_fake" / "progan_aligned").rename(data / "test" / "1_fake" / "stylegan1-0.5_aligned" / "p")
    csv.write_text(csv.read_text().replace("progan_aligned/000000", "stylegan1-0.5_aligned/p/000000"))
    mixed = r"folder group 'stylegan1-0\.5' holds Real and Synthetic images \(lines 1 and 3\)"
    with pytest.raises(ValueError, match=mixed):
        _source(data, csv="csvs/test.csv")


def test_plain_folders_without_families_stay_one_group(tmp_path: Path) -> None:
    cyborg_folder(tmp_path, SIZE)
    data = tmp_path / "plain"
    (data / "x").mkdir(parents=True)
    for i in range(3):
        (data / "x" / f"{i}.png").write_bytes((tmp_path / "Data" / CYBORG_TRAIN[0][1]).read_bytes())
    (data / "dataset.csv").write_text("".join(f"test,{'Real' if i else 'Synthetic'},x/{i}.png\n" for i in range(3)))
    plain = _source(data)
    assert plain.groups == ["all"] and bool(plain.in_set.all()) and plain.shift_groups is None
    assert plain.summary()["groups_from"] == "none"


def test_metadata_groups_still_win(root: Path) -> None:
    source = _source(root, limit=20)
    assert set(source.groups) == {"real", "seen", "unseen"} and source.in_set_groups() == ["real", "seen"]
    assert source.summary()["groups_from"] == "metadata group"
    meta = CsvImageDataset(root, "test").metadata
    expected = [m["group"] for m in meta[:20]]
    assert [source.groups[g] for g in source.group_ids.tolist()] == expected


# ------------------------------------------------------------------------------ annotations


def test_some_missing_heatmaps_are_named_and_agreement_uses_only_annotated_images(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE, heatmaps=4)
    model = TinyCNN(8, 2, seed=0).eval()
    with pytest.warns(UserWarning, match=r"2 of 6 images have no usable annotation map \(first: .*heatmaps/000004\.png "
                                         r"for line 5\); annotation agreement is measured over the 4 annotated"):
        result = evaluate({"a/0": model}, data, split="train", csv="csvs/train.csv", device="cpu",
                          measures=("entropy",), progress=False, batch_size=4)
    assert result["data"]["annotated_images"] == 4
    agreement = result["models"]["a/0"]["annotation_agreement"]
    assert agreement is not None and agreement["n"] == 4
    annotated = CsvImageDataset(data, "train", annotations="available", csv_name="csvs/train.csv")
    images = torch.stack([annotated[i][0] for i in range(4)])
    notes = torch.stack([annotated[i][2] for i in range(4)])
    with GradCAM(model) as cam:  # the paper's protocol (the default) reads 8-bit maps
        expected = agreement_with_reference(quantise(cam(images), 8), notes, ssim).mean()
    assert agreement["mean"] == pytest.approx(float(expected), abs=1e-5)


def test_all_or_no_heatmaps_give_no_warning(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE, heatmaps=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = _source(data, csv="csvs/train.csv", split="train")
        none = _source(data, csv="csvs/test.csv")
    assert full.annotations and full.annotated is None and full.description["annotated_images"] == 6
    assert not none.annotations and none.description["annotated_images"] == 0


def test_heatmap_named_like_an_image_of_another_split_is_not_used_and_is_named(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE)
    (data / "test" / "0_real" / "000101.png").rename(data / "test" / "0_real" / "000001.png")
    csv = data / "csvs" / "test.csv"
    csv.write_text(csv.read_text().replace("000101", "000001"))
    with pytest.warns(UserWarning, match=r"5 of 5 images have no usable annotation map .*1 of them have an ambiguous "
                                         r"one .*also used on .*train\.csv, line 2.*agreement is not measured"):
        source = _source(data, csv="csvs/test.csv")
    assert not source.annotations and source.description["annotated_images"] == 0


def test_metadata_csv_in_the_cyborg_layout_gives_the_groups(tmp_path: Path) -> None:
    data = cyborg_folder(tmp_path, SIZE)
    rows = [("./" + p, "unseen" if label == "Synthetic" else "real") for label, p in CYBORG_TEST]
    (data / "metadata.csv").write_text("path,group\n" + "".join(f"{p},{g}\n" for p, g in rows))
    source = _source(data, csv="csvs/test.csv", in_set_groups=("real",))
    assert source.groups == ["real", "unseen"] and source.group_ids.tolist() == [1, 1, 1, 0, 0]
    assert source.summary()["groups_from"] == "metadata group" and source.in_set_groups() == ["real"]


def test_a_relative_data_folder_finds_its_csv(generated, monkeypatch):
    """``data="../x"`` (the book's chapters pass such paths): the CSV is not joined to the folder twice."""
    from salience_lib.engine.settings import EngineSettings
    from salience_lib.engine.sources import open_source

    monkeypatch.chdir(generated / "test")
    source = open_source(Path("..") / ".." / generated.name, EngineSettings(), None)
    assert source.n > 0
