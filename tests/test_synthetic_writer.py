"""Tests of salience_lib.data.synthetic.writer: determinism, layout, families, cue stamp, info, atomicity, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from salience_lib import cli
from salience_lib.data import read_csv, synthetic
from salience_lib.data.synthetic import FAMILIES, GeneratorConfig, SampleSpec, writer

N, SIZE, SEED = 60, 64, 11


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _metadata(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate_dataset(tmp_path_factory.mktemp("syn") / "faces", N, size=SIZE, seed=SEED, progress=False)


def test_same_seed_gives_identical_bytes_for_any_worker_count(dataset: Path, tmp_path: Path) -> None:
    again = synthetic.generate_dataset(tmp_path / "again", N, size=SIZE, seed=SEED, workers=2, progress=False)
    assert _tree(again) == _tree(dataset)


def test_different_seed_gives_different_images(dataset: Path, tmp_path: Path) -> None:
    other = synthetic.generate_dataset(tmp_path / "other", N, size=SIZE, seed=SEED + 1, progress=False)
    first, second = _tree(dataset), _tree(other)
    pngs = [name for name in first if name.endswith(".png") and name in second]
    assert sum(first[name] != second[name] for name in pngs) > 0.9 * len(pngs)


def test_image_depends_only_on_seed_and_index(dataset: Path) -> None:
    row = _metadata(dataset)[7]
    spec = SampleSpec(int(row["index"]), row["split"], row["label"], row["family"], row["shortcut"] == "1")
    sample = synthetic.render_sample(spec, SEED, SIZE)
    np.testing.assert_array_equal(np.asarray(Image.open(dataset / row["path"])), sample.image)


def test_csv_is_a_valid_cyborg_csv_and_every_file_exists(dataset: Path) -> None:
    lines = (dataset / "dataset.csv").read_text().splitlines()
    assert all(len(line.split(",")) == 3 for line in lines)
    entries = read_csv(dataset / "dataset.csv")
    counts = {split: sum(e.split == split for e in entries) for split in ("train", "val", "test")}
    assert counts == {"train": N, "val": N // 6, "test": N // 3}
    assert all((dataset / e.path).is_file() for e in entries)
    for split in ("train", "val", "test"):
        labels = [e.label for e in entries if e.split == split]
        assert sum(labels) == len(labels) // 2


def test_heatmaps_for_train_and_val_masks_for_every_synthetic_image(dataset: Path) -> None:
    for row in _metadata(dataset):
        name = Path(row["path"]).name
        assert (dataset / "heatmaps" / name).is_file() == (row["split"] in ("train", "val"))
        assert (dataset / "masks" / name).is_file() == (row["label"] == "Synthetic")
        assert row["heatmap_path"] == (f"heatmaps/{name}" if row["split"] != "test" else "")
        assert row["mask_path"] == (f"masks/{name}" if row["label"] == "Synthetic" else "")
    assert len(list((dataset / "heatmaps").iterdir())) == N + N // 6
    for mask in sorted((dataset / "masks").iterdir())[:10]:
        assert set(np.unique(np.asarray(Image.open(mask)))) <= {0, 255}


def test_metadata_matches_csv(dataset: Path) -> None:
    rows = _metadata(dataset)
    assert list(rows[0]) == list(synthetic.METADATA_FIELDS)
    entries = read_csv(dataset / "dataset.csv")
    assert [(r["split"], r["label"], r["path"]) for r in rows] == [
        (e.split, ("Real", "Synthetic")[e.label], e.path) for e in entries
    ]
    for row in rows:
        assert row["path"] == f"{row['split']}/{row['family']}/{int(row['index']):06d}.png"
        assert (row["family"] == "real") == (row["label"] == "Real") == (row["group"] == "real")
    assert len({r["index"] for r in rows}) == len(rows)


def test_seen_families_in_train_and_val_all_families_in_test(dataset: Path) -> None:
    config = GeneratorConfig()
    rows = [r for r in _metadata(dataset) if r["label"] == "Synthetic"]
    for split in ("train", "val"):
        assert {r["family"] for r in rows if r["split"] == split} == set(config.seen_families)
    test = [r for r in rows if r["split"] == "test"]
    assert {r["family"] for r in test} == set(FAMILIES)
    assert all(r["group"] == ("seen" if r["family"] in config.seen_families else "unseen") for r in rows)
    per_family = [sum(r["family"] == f for r in test) for f in FAMILIES]
    assert max(per_family) - min(per_family) <= 1


def test_shortcut_stamp_is_in_the_images_that_metadata_flags(dataset: Path) -> None:
    r0, c0, r1, c1 = synthetic.shortcut_box(SIZE)
    period = 4 * SIZE // 64
    stripes = np.where(np.arange(c1 - c0) % period < period / 2, 1.0, -1.0)
    for row in _metadata(dataset):
        img = np.asarray(Image.open(dataset / row["path"]), np.float32) / 255
        box = img[r0:r1, c0:c1].mean(axis=(0, 2))
        response = float(np.mean((box - box.mean()) * stripes))
        assert (response > 0.05) == (row["shortcut"] == "1"), row["path"]


def test_nonface_images_are_listed_apart_from_the_faces(dataset: Path) -> None:
    with open(dataset / "nonface.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == N // 12 and {r["kind"] for r in rows} <= set(synthetic.NONFACE_KINDS)
    assert all((dataset / r["path"]).is_file() for r in rows)
    assert not {r["path"] for r in rows} & {e.path for e in read_csv(dataset / "dataset.csv")}


def test_info_json_describes_the_data_set(dataset: Path) -> None:
    info = json.loads((dataset / "info.json").read_text())
    assert info["version"] == synthetic.GENERATOR_VERSION and (info["n"], info["seed"], info["size"]) == (N, SEED, SIZE)
    assert info["generator"] == "salience_lib.synthetic"  # an identifier, kept so that dataset_hash is unchanged
    assert info["seen_families"] == ["iris", "mouth", "hair"]
    assert info["counts"]["test"]["labels"] == {"Real": 10, "Synthetic": 10}
    assert info["counts"]["train"]["families"]["real"] == N // 2
    assert info["shortcut_box"] == list(synthetic.shortcut_box(SIZE))
    assert GeneratorConfig(**info["config"]) == GeneratorConfig()  # the config round-trips


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = synthetic.generate_dataset(tmp_path / "d", 12, size=32, progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        synthetic.generate_dataset(out, 12, size=32, progress=False)
    synthetic.generate_dataset(out, 12, size=32, seed=1, overwrite=True, progress=False)
    assert json.loads((out / "info.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind


def test_failure_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_write_tables", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.generate_dataset(tmp_path / "d", 12, size=32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    for bad in ({"size": 8}, {"seed": -1}, {"workers": 0}):
        with pytest.raises(ValueError, match="need size >= 16"):
            synthetic.generate_dataset(tmp_path / "d", 12, progress=False, **bad)
    assert not (tmp_path / "d").exists()


def test_cli_make_data(tmp_path: Path) -> None:
    argv = ["make-data", "--out", str(tmp_path / "c"), "--n", "12", "--size", "32", "--seed", "4", "--quiet"]
    assert cli.main([*argv, "--checker-amplitude", "0.07"]) == 0
    info = json.loads((tmp_path / "c" / "info.json").read_text())
    assert info["seed"] == 4 and info["config"]["checker_amplitude"] == 0.07
    assert info["config"]["shortcut_amplitude"] == GeneratorConfig().shortcut_amplitude
    assert cli.main(argv) == 2  # FileExistsError, as one line on stderr (tests/test_cli.py)
