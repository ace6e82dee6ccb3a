"""Tests of the synthetic-face generator: determinism, layout, families, cue rates, artifacts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from salience_lib import cli, synthetic
from salience_lib.data import read_csv
from salience_lib.synthetic import FAMILIES, GeneratorConfig, SampleSpec

N, SIZE, SEED = 60, 64, 11


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _metadata(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _period2(img: np.ndarray) -> np.ndarray:
    """Per-pixel estimate of the ±a period-2 checkerboard amplitude (channel mean), via a Laplacian."""
    gray = img.mean(axis=2)
    lap = 4 * gray - sum(np.roll(gray, shift, axis) for shift in (-1, 1) for axis in (0, 1))
    return lap / 8 * synthetic._checkerboard(gray.shape[0])


@pytest.fixture(scope="session")
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


def test_shortcut_rates_follow_config() -> None:
    plan = synthetic.plan_dataset(1200, seed=0)
    for split, label, expected in [
        ("train", "Synthetic", 0.9),
        ("train", "Real", 0.1),
        ("val", "Synthetic", 0.9),
        ("val", "Real", 0.1),
        ("test", "Synthetic", 0.5),
        ("test", "Real", 0.5),
    ]:
        group = [s.shortcut for s in plan if s.split == split and s.label == label]
        assert np.mean(group) == pytest.approx(expected, abs=0.02), (split, label)
    custom = GeneratorConfig(shortcut_rate_synthetic=0.6, shortcut_rate_real=0.3)
    train = [s for s in synthetic.plan_dataset(1200, 0, custom) if s.split == "train"]
    assert np.mean([s.shortcut for s in train if s.label == "Synthetic"]) == pytest.approx(0.6, abs=0.02)
    assert np.mean([s.shortcut for s in train if s.label == "Real"]) == pytest.approx(0.3, abs=0.02)


def test_shortcut_stamp_is_in_the_images_that_metadata_flags(dataset: Path) -> None:
    r0, c0, r1, c1 = synthetic.shortcut_box(SIZE)
    period = 4 * SIZE // 64
    stripes = np.where(np.arange(c1 - c0) % period < period / 2, 1.0, -1.0)
    for row in _metadata(dataset):
        img = np.asarray(Image.open(dataset / row["path"]), np.float32) / 255
        box = img[r0:r1, c0:c1].mean(axis=(0, 2))
        response = float(np.mean((box - box.mean()) * stripes))
        assert (response > 0.05) == (row["shortcut"] == "1"), row["path"]


@pytest.mark.parametrize("family", [None, *FAMILIES])
def test_artifact_mask_is_inside_the_image_and_nonempty_only_for_synthetic(family: str | None) -> None:
    for k in range(8):
        face = synthetic.render_face(np.random.default_rng([5, k]), SIZE, family)
        assert face.image.shape == (SIZE, SIZE, 3) and face.image.dtype == np.float32
        assert face.image.min() >= 0.0 and face.image.max() <= 1.0
        if family is None:
            assert not face.mask.any()
            assert len(face.regions) == 3  # both eyes and the mouth
            continue
        assert face.mask.any()
        ring = np.ones_like(face.mask)
        ring[1:-1, 1:-1] = False
        assert not (face.mask & ring).any()
        assert face.mask.mean() < 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_artifact_changes_the_pixels_inside_its_mask(family: str) -> None:
    rng_state = [9, FAMILIES.index(family)]
    config = GeneratorConfig(noise_sigma=0.0, checker_amplitude=0.0)
    face = synthetic.render_face(np.random.default_rng(rng_state), SIZE, family, config)
    clean = synthetic.render_face(np.random.default_rng(rng_state), SIZE, None, config)
    if family in ("iris", "earring"):  # these edit the face's parameters, so compare with a real twin
        assert np.abs(face.image - clean.image)[face.mask].max() > 0.2
    else:
        changed = np.abs(face.image - clean.image).max(axis=2) > 1e-6
        assert changed[face.mask].mean() > 0.3


@pytest.mark.parametrize("family", FAMILIES)
def test_checkerboard_signature_only_inside_artifact_regions(family: str) -> None:
    inside, outside, real = [], [], []
    for k in range(6):
        face = synthetic.render_face(np.random.default_rng([3, k]), SIZE, family)
        core = ndimage.binary_erosion(face.mask)
        signal = _period2(face.image)
        inside.append(signal[core].mean())
        outside.append(signal[~ndimage.binary_dilation(face.mask, iterations=2)].mean())
        real.append(_period2(synthetic.render_face(np.random.default_rng([3, k]), SIZE).image).mean())
    assert np.mean(inside) == pytest.approx(GeneratorConfig().checker_amplitude, abs=0.015)
    assert abs(np.mean(outside)) < 0.005 and abs(np.mean(real)) < 0.005


@pytest.mark.parametrize("family", ["mouth", "hair", "boundary", "droplet"])
def test_artifact_strength_scales_the_edit(family: str) -> None:
    def diff(strength: float) -> np.ndarray:
        config = GeneratorConfig(noise_sigma=0.0, checker_amplitude=0.0, artifact_strength=strength)
        face = synthetic.render_face(np.random.default_rng(4), SIZE, family, config)
        clean = synthetic.render_face(np.random.default_rng(4), SIZE, None, config)
        return face.image - clean.image

    np.testing.assert_array_equal(diff(0.0), 0.0)
    np.testing.assert_allclose(diff(0.5), 0.5 * diff(1.0), atol=1e-5)


def test_checker_amplitude_zero_removes_the_signature() -> None:
    config = GeneratorConfig(checker_amplitude=0.0)
    face = synthetic.render_face(np.random.default_rng(1), SIZE, "droplet", config)
    assert abs(_period2(face.image)[ndimage.binary_erosion(face.mask)].mean()) < 0.01


def test_annotations_cover_the_artifact_or_eyes_and_mouth(dataset: Path) -> None:
    for row in _metadata(dataset)[:40]:
        if not row["heatmap_path"]:
            continue
        heat = np.asarray(Image.open(dataset / row["heatmap_path"]), np.float32) / 255
        assert heat.shape == (SIZE, SIZE) and heat.max() == 1.0
        if row["mask_path"]:
            mask = np.asarray(Image.open(dataset / row["mask_path"])) > 0
            assert set(np.unique(np.asarray(Image.open(dataset / row["mask_path"])))) <= {0, 255}
            assert heat[mask].mean() > 3 * heat[~mask].mean()
        else:  # eyes and mouth: the upper-middle and lower-middle of the face, not the corners
            assert heat[:8, :8].max() == 0 and heat[SIZE // 4 : 7 * SIZE // 8, SIZE // 4 : 3 * SIZE // 4].max() == 1


def test_human_annotation_is_an_imperfect_union_of_blobs() -> None:
    regions = [(20.0, 20.0, 3.0, 4.0), (40.0, 44.0, 2.0, 2.0)]
    maps = [synthetic.human_annotation(np.random.default_rng(k), regions, SIZE, annotators=5) for k in range(2)]
    for heat in maps:
        assert heat.dtype == np.float32 and heat.max() == pytest.approx(1.0)
        assert heat[20, 20] > 0.3 and heat[5, 60] == 0
    assert not np.allclose(maps[0], maps[1])
    assert not synthetic.human_annotation(np.random.default_rng(0), [], SIZE).any()


def test_nonface_images_are_listed_apart_from_the_faces(dataset: Path) -> None:
    with open(dataset / "nonface.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == N // 12 and {r["kind"] for r in rows} <= set(synthetic.NONFACE_KINDS)
    assert all((dataset / r["path"]).is_file() for r in rows)
    assert not {r["path"] for r in rows} & {e.path for e in read_csv(dataset / "dataset.csv")}


def test_info_json_describes_the_data_set(dataset: Path) -> None:
    info = json.loads((dataset / "info.json").read_text())
    assert info["version"] == synthetic.GENERATOR_VERSION and (info["n"], info["seed"], info["size"]) == (N, SEED, SIZE)
    assert info["seen_families"] == ["iris", "mouth", "hair"]
    assert info["counts"]["test"]["labels"] == {"Real": 10, "Synthetic": 10}
    assert info["counts"]["train"]["families"]["real"] == N // 2
    assert info["shortcut_box"] == list(synthetic.shortcut_box(SIZE))
    assert GeneratorConfig(**info["config"]) == GeneratorConfig()  # the config round-trips


def test_existing_output_is_refused_unless_overwrite(dataset: Path, tmp_path: Path) -> None:
    out = synthetic.generate_dataset(tmp_path / "d", 12, size=32, progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        synthetic.generate_dataset(out, 12, size=32, progress=False)
    synthetic.generate_dataset(out, 12, size=32, seed=1, overwrite=True, progress=False)
    assert json.loads((out / "info.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_failure_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_tables", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.generate_dataset(tmp_path / "d", 12, size=32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown families"):
        GeneratorConfig(seen_families=("iris", "teeth"))
    with pytest.raises(ValueError, match="disjoint"):
        GeneratorConfig(unseen_families=("iris",))
    with pytest.raises(ValueError, match="shortcut_rate_real"):
        GeneratorConfig(shortcut_rate_real=1.5)
    with pytest.raises(ValueError, match="n` = 3"):
        synthetic.plan_dataset(3, 0)
    with pytest.raises(ValueError, match="family"):
        synthetic.render_face(np.random.default_rng(0), SIZE, "teeth")


def test_large_images_work() -> None:
    for family in (None, "boundary", "mouth"):
        face = synthetic.render_face(np.random.default_rng(0), 224, family)
        assert face.image.shape == (224, 224, 3)
        assert family is None or face.mask.sum() > 100


def test_cli_make_data(tmp_path: Path) -> None:
    argv = ["make-data", "--out", str(tmp_path / "c"), "--n", "12", "--size", "32", "--seed", "4", "--quiet"]
    assert cli.main([*argv, "--checker-amplitude", "0.07"]) == 0
    info = json.loads((tmp_path / "c" / "info.json").read_text())
    assert info["seed"] == 4 and info["config"]["checker_amplitude"] == 0.07
    assert info["config"]["shortcut_amplitude"] == GeneratorConfig().shortcut_amplitude
    with pytest.raises(FileExistsError):
        cli.main(argv)
