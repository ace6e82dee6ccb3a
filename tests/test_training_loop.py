"""Tests for salience_lib.training.loop: run folders, determinism, resume, cache, command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from salience_lib import cli
from salience_lib.data import dataset_hash
from salience_lib.models import build_model
from salience_lib.models.runs import MODEL_FILE, RESUME_FILE, SIDECAR_FILE, find_runs, load_model
from salience_lib.training import TrainConfig, train_on, train_one
from salience_lib.training import loop as training_loop

SIZE = 32


class TinyFaces(Dataset):
    """Items like ``CsvImageDataset``'s: synthetic images carry a bright square, annotated as salient."""

    def __init__(self, n: int, seed: int, annotations: bool = True, quantised: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, SIZE, SIZE, generator=g) * 0.5
        self.labels = torch.arange(n) % 2
        self.maps = torch.zeros(n, SIZE, SIZE)
        corners = torch.randint(0, SIZE - 8, (n, 2), generator=g)
        for i, (r, c) in enumerate(corners.tolist()):
            if self.labels[i] == 1:
                self.images[i, :, r : r + 8, c : c + 8] += 0.5
                self.maps[i, r : r + 8, c : c + 8] = 1.0
            else:
                self.maps[i, 8:16, 8:24] = 0.5
        if quantised:
            self.images = torch.round(self.images * 255) / 255
        self.annotations = annotations

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple:
        item = (self.images[i], int(self.labels[i]))
        return (*item, self.maps[i]) if self.annotations else item


def tiny_config(**overrides) -> TrainConfig:
    values = {"loss": "cyborg", "epochs": 2, "batch_size": 16, "seed": 0} | overrides
    return TrainConfig(**values)


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / MODEL_FILE, weights_only=True)


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def data() -> tuple[TinyFaces, TinyFaces]:
    return TinyFaces(64, seed=0), TinyFaces(32, seed=1, annotations=False)


def _train(config: TrainConfig, data, out: Path, **kwargs) -> Path:
    return train_on(config, data[0], data[1], out, "datahash", progress=False, **kwargs)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor], list[int]]:
    """One complete 2-epoch CYBORG run; also the model's state at the end and the epochs seen."""
    epochs: list[int] = []
    final: dict[str, torch.Tensor] = {}

    def callback(epoch, model, record):
        epochs.append(epoch)
        final.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    run_dir = _train(tiny_config(), data, tmp_path_factory.mktemp("runs"), on_epoch_end=callback)
    return run_dir, final, epochs


def test_run_folder_and_sidecar(trained) -> None:
    run_dir, _, epochs = trained
    assert epochs == [1, 2]
    assert run_dir.name.startswith("cyborg-small_cnn-s0-")
    assert (run_dir / MODEL_FILE).is_file()
    assert not (run_dir / RESUME_FILE).exists()
    assert not list(run_dir.parent.rglob("*.tmp"))
    side = json.loads((run_dir / SIDECAR_FILE).read_text())
    assert side["complete"] is True
    assert (side["arch"], side["loss"], side["alpha"], side["seed"]) == ("small_cnn", "cyborg", 0.5, 0)
    assert side["data_hash"] == "datahash"
    assert side["recipe_hash"][:8] == run_dir.name[-8:]
    assert side["config"]["epochs"] == 2
    assert side["image_size"] == SIZE
    assert [h["epoch"] for h in side["history"]] == [1, 2]
    for key in ("train_loss", "train_ce", "train_cam", "val_acc", "val_loss", "lr", "seconds"):
        assert isinstance(side["history"][-1][key], float), key
    assert 0.0 <= side["metrics"]["val_acc"] <= 1.0
    assert "library_version" in side


def test_load_model_roundtrip(trained) -> None:
    run_dir, final, _ = trained
    model, side = load_model(run_dir)
    assert not model.training
    assert side["loss"] == "cyborg"
    _assert_same_state(model.state_dict(), {k: v.contiguous() for k, v in final.items()})
    reference = build_model("small_cnn", image_size=SIZE)
    reference.load_state_dict(final)
    x = torch.rand(4, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))


def test_deterministic_resumable_cached(data, trained, tmp_path) -> None:
    """Same seed → same weights; an interrupted run resumes to the same weights; reruns are cached."""
    run_dir, _, _ = trained
    config = tiny_config()
    twin = _train(config, data, tmp_path / "twin")
    _assert_same_state(_state(twin), _state(run_dir))
    other = _train(dataclasses.replace(config, seed=1), data, tmp_path / "twin")
    assert other.name != twin.name
    assert not torch.equal(_state(other)["fc.weight"], _state(twin)["fc.weight"])

    # Interrupt after epoch 1, then resume.
    def stop(epoch, model, record):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(config, data, tmp_path / "resumed", on_epoch_end=stop)
    interrupted = tmp_path / "resumed" / twin.name
    assert not (interrupted / MODEL_FILE).exists()
    resume = torch.load(interrupted / RESUME_FILE, weights_only=True)
    assert resume["epoch"] == 1
    side = json.loads((interrupted / SIDECAR_FILE).read_text())
    assert (side["complete"], side["epoch"]) == (False, 1)
    assert find_runs(tmp_path / "resumed") == []
    with pytest.raises(ValueError, match="not complete"):
        load_model(interrupted)
    seen: list[int] = []
    resumed = _train(config, data, tmp_path / "resumed", on_epoch_end=lambda e, m, r: seen.append(e))
    assert seen == [2]
    _assert_same_state(_state(resumed), _state(run_dir))
    assert [h["epoch"] for h in json.loads((resumed / SIDECAR_FILE).read_text())["history"]] == [1, 2]
    assert not list((tmp_path / "resumed").rglob("*.tmp"))

    # A complete run with the same recipe is returned untouched; a changed recipe trains anew.
    mtime = (twin / MODEL_FILE).stat().st_mtime_ns
    seen.clear()
    assert _train(config, data, tmp_path / "twin", on_epoch_end=lambda e, m, r: seen.append(e)) == twin
    assert seen == []
    assert (twin / MODEL_FILE).stat().st_mtime_ns == mtime
    changed = _train(dataclasses.replace(config, lr=3e-3), data, tmp_path / "twin")
    assert changed != twin
    assert len(find_runs(tmp_path / "twin")) == 3


def test_xent_without_annotations_and_preload_equivalence(tmp_path) -> None:
    plain = (TinyFaces(40, seed=2, annotations=False), None)
    config = tiny_config(loss="xent", epochs=1, batch_size=13)  # 40 = 3 * 13 + 1: a lone sample is dropped
    a = _train(config, plain, tmp_path / "a")
    streamed = _train(dataclasses.replace(config, preload=False, num_workers=0), plain, tmp_path / "b")
    assert streamed.name == a.name  # execution settings are not part of the recipe
    _assert_same_state(_state(streamed), _state(a))
    side = json.loads((a / SIDECAR_FILE).read_text())
    assert side["metrics"]["val_acc"] is None
    assert side["history"][0]["train_cam"] is None
    assert find_runs(tmp_path / "a", loss="xent") == [a]
    assert find_runs(tmp_path / "a", loss="cyborg") == []
    with pytest.raises(ValueError, match="annotations"):
        _train(tiny_config(epochs=1), plain, tmp_path / "d")


def test_bf16_autocast_sgd_step_schedule(data, tmp_path) -> None:
    config = tiny_config(epochs=2, amp="bf16", optimizer="sgd", schedule="step", step_size=1, lr=0.01)
    run_dir = _train(config, data, tmp_path)
    side = json.loads((run_dir / SIDECAR_FILE).read_text())
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in side["history"])
    assert [h["lr"] for h in side["history"]] == pytest.approx([0.01, 0.001])


def test_loss_names_pick_their_features_and_loss(data) -> None:
    """``cyborg``: the authors' loss at the small CNN's last conv; ``cyborg_pooled``: the earlier variant."""
    from salience_lib.training.losses import cyborg_loss, cyborg_pooled_loss, forward_with_features

    batch = tuple(torch.stack([torch.as_tensor(data[0][i][k]) for i in range(8)]) for k in range(3))
    for loss in ("cyborg", "cyborg_pooled", "xent"):
        with torch.random.fork_rng():
            run = training_loop._make_run(tiny_config(loss=loss, device="cpu"), SIZE, steps_per_epoch=1)
        run.model.train()
        total, ce, cam = training_loop._loss(run, batch)
        x, y, ann = batch
        if loss == "cyborg":
            assert run.cam_layer is run.model.features[-1][0]  # the last conv, before its BN and ReLU
            logits, feats = forward_with_features(run.model, x, run.cam_layer)
            expected = cyborg_loss(logits, feats, run.model.fc.weight, y, ann)
        elif loss == "cyborg_pooled":
            assert run.cam_layer is None
            logits, feats = run.model.forward_features(x)
            expected = cyborg_pooled_loss(logits, feats, run.model.fc.weight, y, ann)
        else:
            assert run.cam_layer is None and cam is None
            continue
        for got, want in zip((total, ce, cam), expected, strict=True):
            torch.testing.assert_close(got, want)


def test_paper_optimizer_trains_without_flips(data, tmp_path, monkeypatch) -> None:
    def no_flips(*args):
        raise AssertionError("optimizer='paper' trains without augmentation")

    monkeypatch.setattr(training_loop, "random_hflip", no_flips)
    config = tiny_config(loss="cyborg_pooled", optimizer="paper", epochs=2)
    run_dir = _train(config, data, tmp_path)
    assert run_dir.name.startswith("cyborg_pooled-small_cnn-s0-")
    side = json.loads((run_dir / SIDECAR_FILE).read_text())
    assert (side["loss"], side["alpha"], side["config"]["optimizer"]) == ("cyborg_pooled", 0.5, "paper")
    assert (side["config"]["momentum"], side["config"]["weight_decay"], side["config"]["hflip"]) == (0.9, 1e-6, False)
    assert [h["lr"] for h in side["history"]] == [0.005, 0.005]  # x 0.1 only after epoch 12
    assert all(isinstance(h["train_cam"], float) for h in side["history"])
    assert find_runs(tmp_path, loss="cyborg") == []


def test_cli_train_runs_seeds_and_reuses(data, tmp_path, monkeypatch) -> None:
    root = tmp_path / "faces"
    root.mkdir()
    (root / "data.csv").write_text("train,Real,a.png\n")
    calls: list[str] = []

    def fake_load(config, data_root):
        calls.append(config.loss)
        return data[0], None  # a data set without a val split

    monkeypatch.setattr(training_loop, "_load_datasets", fake_load)
    argv = [
        "train",
        "--data",
        str(root),
        "--loss",
        "cyborg",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "runs"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    assert calls == ["cyborg"]  # loaded once for both seeds
    runs = find_runs(tmp_path / "runs", loss="cyborg")
    sides = [json.loads((r / SIDECAR_FILE).read_text()) for r in runs]
    assert [(s["seed"], s["metrics"]["val_acc"]) for s in sides] == [(0, None), (1, None)]
    assert cli.main(argv) == 0
    assert calls == ["cyborg"]  # everything cached: data not even loaded
    assert train_one(tiny_config(epochs=1), root, tmp_path / "runs", progress=False) in runs


def test_find_runs_keeps_only_runs_of_the_current_data(tmp_path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "dataset.csv").write_text("train,Real,a.png\n")
    plain = (TinyFaces(16, seed=3, annotations=False), None)
    config = tiny_config(loss="xent", epochs=1, batch_size=8)
    current = train_on(config, plain[0], None, tmp_path / "runs", dataset_hash(folder), progress=False)
    stale = train_on(config, plain[0], None, tmp_path / "runs", "an older data set", progress=False)
    assert current != stale
    assert find_runs(tmp_path / "runs") == sorted([current, stale])
    assert find_runs(tmp_path / "runs", data=folder) == [current]
    (folder / "dataset.csv").write_text("train,Real,b.png\n")
    assert find_runs(tmp_path / "runs", data=folder) == []


# ---------------------------------------------------------------------------------------------
# caches keyed by the data's content; no orphan after a kill; corrupt resume state; one trainer per run


def test_replaced_training_images_retrain(root: Path, tmp_path: Path) -> None:
    """``train`` on a data folder whose every training image was replaced by black is not "cached"."""
    from PIL import Image

    from salience_lib.data import CsvImageDataset
    from salience_lib.training import train_runs

    config = tiny_config(loss="xent", epochs=1, batch_size=32, device="cpu")
    (first,) = train_runs(config, root, tmp_path / "runs", [0], progress=False)
    train = CsvImageDataset(root, "train")
    for i in range(len(train)):
        path = train.image_file(i)
        with Image.open(path) as img:
            size, mode = img.size, img.mode
        Image.new(mode, size).save(path)
    (second,) = train_runs(config, root, tmp_path / "runs", [0], progress=False)
    assert second != first and json.loads((second / SIDECAR_FILE).read_text())["complete"]
    assert not torch.equal(_state(first)["fc.weight"], _state(second)["fc.weight"])


_KILL_IN_RESUME_WRITE = """
import os, signal, sys
import torch
from salience_lib.models import runs
from tests.test_training_loop import TinyFaces, tiny_config
from salience_lib.training import train_on
real = torch.save
def save(obj, handle):
    real(obj, handle)
    if os.path.basename(os.readlink(f"/proc/self/fd/{handle.fileno()}")).startswith(".resume.pt."):  # not renamed
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
runs.torch.save = save
train_on(tiny_config(loss="xent", epochs=2), TinyFaces(32, seed=0), None, sys.argv[1], "datahash", progress=False)
"""


def test_sigkill_during_checkpoint_write_leaves_no_orphan_file(tmp_path: Path) -> None:
    import os
    import stat
    import subprocess
    import sys

    out = tmp_path / "runs"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cwd = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _KILL_IN_RESUME_WRITE, str(out)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd, check=False)  # fmt: skip
    assert done.returncode == -9, done.stderr[-2000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    (orphan,) = run_dir.glob(".resume.pt.*.tmp")  # what the kill leaves ...
    assert stat.S_IMODE(orphan.stat().st_mode) != 0o600  # ... is not a private 0600 file
    again = train_on(tiny_config(loss="xent", epochs=2), TinyFaces(32, seed=0), None, out, "datahash", progress=False)
    assert again == run_dir and json.loads((run_dir / SIDECAR_FILE).read_text())["complete"]
    hidden = sorted(p.name for folder in (out, run_dir) for p in folder.iterdir() if p.name.startswith("."))
    assert hidden == [] and not (run_dir / RESUME_FILE).exists()


def test_corrupt_resume_state_is_named(data, tmp_path: Path) -> None:
    config = tiny_config(loss="xent", epochs=2)

    def stop(epoch, model, record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(config, data, tmp_path, on_epoch_end=stop)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    resume = run_dir / RESUME_FILE
    resume.write_bytes(resume.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"corrupt or truncated resume state {resume} .*delete it to restart"):
        _train(config, data, tmp_path)


def test_second_trainer_of_one_run_fails_fast(data, tmp_path: Path) -> None:
    from salience_lib.runtime.lock import LockError, hold_lock
    from salience_lib.training.config import recipe_hash

    config = tiny_config(loss="xent", epochs=1)
    run_dir = training_loop._run_dir(config, tmp_path, recipe_hash(config, "datahash"))
    with hold_lock(run_dir, "run folder"), pytest.raises(LockError, match=rf"run folder {run_dir} is in use"):
        _train(config, data, tmp_path)
    assert not run_dir.exists()
