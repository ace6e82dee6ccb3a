"""The training loop: seeded, resumable, cached runs that end in a run folder.

A run is written in the format of :mod:`salience_lib.models.runs` (``model.pt`` + ``model.json``), in
``<out>/<loss>-<arch>-s<seed>-<recipe hash[:8]>/``. After every epoch the sidecar is rewritten
(``complete: false``) and ``resume.pt`` holds model + optimizer + scheduler + grad-scaler + RNG states +
epoch + history; the final ``model.pt`` and the complete sidecar follow the last epoch, and ``resume.pt``
is removed. Everything is read back with ``torch.load(..., weights_only=True)``. A complete run with
the same recipe hash (:func:`salience_lib.training.config.recipe_hash`: config without execution
details, plus the data hash) is reused, never retrained; an interrupted one resumes after its last
finished epoch with the same result it would have had.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from salience_lib.data import dataset_hash
from salience_lib.models.builders import SalienceClassifier, build_model
from salience_lib.models.runs import (
    CLASSES,
    MODEL_FILE,
    RESUME_FILE,
    SIDECAR_FILE,
    SIDECAR_FORMAT,
    cpu_state,
    read_sidecar,
    read_tensors,
    run_name,
    save_checkpoint,
    write_sidecar,
)
from salience_lib.runtime.device import amp_dtype, resolve_device
from salience_lib.runtime.files import remove_stale_temp_files
from salience_lib.runtime.lock import hold_lock
from salience_lib.training.batches import (
    epoch_batches,
    image_size,
    iterate_batches,
    preload,
    random_hflip,
)
from salience_lib.training.config import TrainConfig, config_from_args, derive_seed, recipe_hash
from salience_lib.training.losses import (
    cam_feature_layer,
    cyborg_loss,
    cyborg_pooled_loss,
    forward_with_features,
    xent_loss,
)

__all__ = ["EpochCallback", "main_train", "train_on", "train_one", "train_runs"]

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, nn.Module, dict[str, Any]], None]
"""``f(epoch, model, record)``, called after each epoch's checkpoint is written (``epoch`` from 1)."""


@dataclass
class _Run:
    """Everything one training run mutates."""

    config: TrainConfig
    device: torch.device
    model: SalienceClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    image_size: int
    history: list[dict[str, Any]]
    start_epoch: int = 0
    cam_layer: nn.Module | None = None
    """Where the ``cyborg`` loss takes its CAM features (:func:`cam_feature_layer`); None otherwise."""

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return amp_dtype(self.config.amp)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.config.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _make_run(config: TrainConfig, size: int, steps_per_epoch: int) -> _Run:
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, len(CLASSES), config.weights_path, image_size=size)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = model.parameters()
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:  # "sgd", or "paper": SGD whose fields TrainConfig already set to the authors' values
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.schedule == "onecycle":
        total = config.epochs * steps_per_epoch
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, total_steps=total
        )
    elif config.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.step_size, gamma=config.gamma)
    else:
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    cam_layer = cam_feature_layer(model, config.arch) if config.loss == "cyborg" else None
    return _Run(config, device, model, opt, sched, scaler, size, history=[], cam_layer=cam_layer)


def _resume(run: _Run, run_dir: Path, rhash: str) -> None:
    """Restore ``run`` from ``resume.pt`` if it belongs to this recipe and seed."""
    path = run_dir / RESUME_FILE
    if not path.is_file():
        return
    restart = f"delete it to restart {run_dir.name} from its first epoch"
    try:
        state = read_tensors(path, "resume state")
    except ValueError as err:
        raise ValueError(f"{err}; {restart}") from err
    if not isinstance(state, dict):
        raise ValueError(f"corrupt resume state {path} (not a dict); {restart}")
    if state.get("recipe_hash") != rhash or state.get("seed") != run.config.seed:
        logger.warning("ignoring %s: it belongs to another recipe", path)
        return
    try:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if run.device.type == "cuda" and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        run.history = list(state["history"])
        run.start_epoch = int(state["epoch"])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt resume state {path} ({type(err).__name__}: {err}); {restart}") from err
    logger.info("resuming %s from epoch %d", run_dir.name, run.start_epoch)


def _save_resume(run: _Run, run_dir: Path, rhash: str, epoch: int) -> None:
    cuda = run.device.type == "cuda"
    state = {
        "recipe_hash": rhash,
        "seed": run.config.seed,
        "epoch": epoch,
        "model": cpu_state(run.model),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if cuda else [],
        "history": run.history,
    }
    save_checkpoint(run_dir / RESUME_FILE, state)


def _loss(run: _Run, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(total, ce, cam term or None)`` of one batch: ``cyborg`` with the CAM features of
    :func:`cam_feature_layer`, ``cyborg_pooled`` with the pooled features."""
    x, y = run.to_device(batch[0]), run.to_device(batch[1])
    loss = run.config.loss
    with run.autocast():
        if run.cam_layer is not None:
            logits, feats = forward_with_features(run.model, x, run.cam_layer)
        else:
            logits, feats = run.model.forward_features(x)
    if loss == "xent":
        ce = xent_loss(logits, y)
        return ce, ce, None
    if len(batch) < 3:
        raise ValueError(f"the {loss} loss needs annotations: items must be (image, label, annotation)")
    cyborg = cyborg_loss if loss == "cyborg" else cyborg_pooled_loss
    return cyborg(logits, feats, run.model.fc.weight, y, run.to_device(batch[2]), run.config.alpha)


def _train_epoch(run: _Run, data: Dataset, epoch: int, bar: tqdm) -> dict[str, float | None]:
    cfg = run.config
    run.model.train()
    batches = epoch_batches(len(data), cfg.batch_size, cfg.seed, epoch)
    flips = torch.Generator().manual_seed(derive_seed(cfg.seed, "hflip", epoch))
    sums = torch.zeros(3, dtype=torch.float64, device=run.device)
    count, lr = 0, float("nan")
    for batch in iterate_batches(data, batches, cfg.num_workers):
        batch = random_hflip(batch, flips) if cfg.hflip else batch
        total, ce, cam = _loss(run, batch)
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(total).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if cfg.schedule == "onecycle":
            run.scheduler.step()
        n = len(batch[1])
        cam_term = cam.detach() if cam is not None else torch.zeros((), device=run.device)
        sums += torch.stack([total.detach(), ce.detach(), cam_term]).double() * n
        count += n
        bar.update(1)
    if cfg.schedule != "onecycle":
        run.scheduler.step()
    loss, ce, cam = (sums / max(count, 1)).tolist()
    cam = cam if cfg.loss != "xent" else None
    return {"train_loss": loss, "train_ce": ce, "train_cam": cam, "lr": lr}


@torch.no_grad()
def _evaluate(run: _Run, data: Dataset | None) -> dict[str, float | None]:
    """Cross-entropy and accuracy on ``data`` (fixed order); ``None`` values without data."""
    if data is None or len(data) == 0:
        return {"val_loss": None, "val_acc": None}
    run.model.eval()
    batches = list(torch.arange(len(data)).split(2 * run.config.batch_size))
    ce_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    correct = torch.zeros((), dtype=torch.int64, device=run.device)
    for batch in iterate_batches(data, batches, run.config.num_workers):
        x, y = run.to_device(batch[0]), run.to_device(batch[1])
        with run.autocast():
            logits = run.model(x).float()
        ce_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    return {"val_loss": ce_sum.item() / len(data), "val_acc": correct.item() / len(data)}


def _sidecar(run: _Run, rhash: str, data_hash: str, epoch: int, complete: bool) -> dict[str, Any]:
    """The sidecar of :mod:`salience_lib.models.runs` for ``run`` after ``epoch`` epochs."""
    from salience_lib import __version__

    cfg = run.config
    last = run.history[-1] if run.history else {}
    metrics = {k: last.get(k) for k in ("val_acc", "val_loss", "train_loss", "train_ce", "train_cam")}
    metrics["train_seconds"] = sum(h["seconds"] for h in run.history)
    return {
        "format": SIDECAR_FORMAT,
        "arch": cfg.arch,
        "loss": cfg.loss,
        "alpha": cfg.alpha if cfg.loss != "xent" else None,
        "seed": cfg.seed,
        "image_size": run.image_size,
        "classes": list(CLASSES),
        "data_hash": data_hash,
        "recipe_hash": rhash,
        "config": cfg.to_dict(),
        "epoch": epoch,
        "epochs": cfg.epochs,
        "complete": complete,
        "metrics": metrics,
        "history": run.history,
        "device": str(run.device),
        "library_version": __version__,
        "torch_version": torch.__version__,
    }


def _run_dir(config: TrainConfig, out_dir: str | Path, rhash: str) -> Path:
    return Path(out_dir) / run_name(config.loss, config.arch, config.seed, rhash)


def _is_cached(run_dir: Path, rhash: str, seed: int) -> bool:
    side = read_sidecar(run_dir)
    return bool(
        side
        and side.get("complete")
        and side.get("recipe_hash") == rhash
        and side.get("seed") == seed
        and (run_dir / MODEL_FILE).is_file()
    )


def train_on(
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    out_dir: str | Path,
    data_hash: str,
    *,
    on_epoch_end: EpochCallback | None = None,
    progress: bool = True,
) -> Path:
    """Train one model on in-memory data sets; returns its run folder (see the module docstring).

    A complete run of the same recipe and seed in ``out_dir`` is returned without training; an
    interrupted one resumes after its last finished epoch. Results are bitwise reproducible on CPU for
    a given config; the caller's global RNG state is left untouched.

    Args:
        config: the recipe.
        train_set: items ``(image (3, H, W) float in [0, 1], label 0/1[, annotation (H, W) in [0, 1]])``;
            annotations are required for ``loss="cyborg"``.
        val_set: same item format (annotations unused), or ``None``.
        out_dir: parent folder of run folders, e.g. ``runs``.
        data_hash: identifies the data (see :func:`salience_lib.data.dataset_hash`); part of the recipe hash.
        on_epoch_end: called as ``f(epoch, model, record)`` after each epoch's checkpoint is written
            (``epoch`` counts from 1); an exception raised there interrupts the run resumably.
        progress: show a tqdm progress bar.
    """
    rhash = recipe_hash(config, data_hash)
    run_dir = _run_dir(config, out_dir, rhash)
    if _is_cached(run_dir, rhash, config.seed):
        logger.info("cached: %s", run_dir)
        return run_dir
    if len(train_set) < 2:
        raise ValueError(f"`train_set` must hold at least 2 items, got {len(train_set)}")
    with hold_lock(run_dir, "run folder"):
        if _is_cached(run_dir, rhash, config.seed):  # finished by another process meanwhile
            return run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in (RESUME_FILE, MODEL_FILE, SIDECAR_FILE):  # left by a process killed while writing
            remove_stale_temp_files(run_dir, name)
        _train_locked(config, train_set, val_set, run_dir, (rhash, data_hash), on_epoch_end, progress)
    return run_dir


def _train_locked(
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    run_dir: Path,
    hashes: tuple[str, str],
    on_epoch_end: EpochCallback | None,
    progress: bool,
) -> None:
    """The body of :func:`train_on`, run while holding the run folder's lock."""
    rhash, data_hash = hashes
    device = resolve_device(config.device)
    if config.preload:
        train_set = preload(train_set, config.num_workers).to(device)
        val_set = preload(val_set, config.num_workers).to(device) if val_set is not None else None
    steps = len(epoch_batches(len(train_set), config.batch_size, config.seed, 0))
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        run = _make_run(config, image_size(train_set), steps)
        _resume(run, run_dir, rhash)
        _fit(run, train_set, val_set, run_dir, hashes, steps, on_epoch_end, progress)
    save_checkpoint(run_dir / MODEL_FILE, cpu_state(run.model))
    write_sidecar(run_dir, _sidecar(run, rhash, data_hash, config.epochs, complete=True))
    (run_dir / RESUME_FILE).unlink(missing_ok=True)


def _fit(
    run: _Run,
    train_set: Dataset,
    val_set: Dataset | None,
    run_dir: Path,
    hashes: tuple[str, str],
    steps: int,
    on_epoch_end: EpochCallback | None,
    progress: bool,
) -> None:
    """Epochs ``run.start_epoch .. epochs - 1``, checkpointing after each."""
    cfg = run.config
    rhash, data_hash = hashes
    with tqdm(
        total=cfg.epochs * steps,
        initial=run.start_epoch * steps,
        desc=run_dir.name,
        unit="batch",
        disable=not progress,
    ) as bar:
        for epoch in range(run.start_epoch, cfg.epochs):
            start = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch + 1, **_train_epoch(run, train_set, epoch, bar)}
            record.update(_evaluate(run, val_set))
            record["seconds"] = time.perf_counter() - start
            run.history.append(record)
            _save_resume(run, run_dir, rhash, epoch + 1)
            write_sidecar(run_dir, _sidecar(run, rhash, data_hash, epoch + 1, complete=False))
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=record["val_acc"])
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, run.model, record)


def _load_datasets(config: TrainConfig, data_root: str | Path) -> tuple[Dataset, Dataset | None]:
    """The ``train`` split (with annotations for the CYBORG losses) and the ``val`` split, or None."""
    from salience_lib.data import CSV_NAME, CsvImageDataset, read_csv

    size = config.image_size
    train = CsvImageDataset(data_root, "train", image_size=size, annotations=config.loss != "xent")
    has_val = any(e.split == "val" for e in read_csv(Path(data_root) / CSV_NAME))
    val = CsvImageDataset(data_root, "val", image_size=size, annotations=False) if has_val else None
    return train, val


def train_one(config: TrainConfig, data_root: str | Path, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Train (or reuse, or resume) one model on a CYBORG-layout data folder; returns the run folder."""
    return train_runs(config, data_root, out_dir, [config.seed], progress=progress)[0]


def train_runs(
    config: TrainConfig,
    data_root: str | Path,
    out_dir: str | Path,
    seeds: Sequence[int],
    *,
    progress: bool = True,
) -> list[Path]:
    """Train one model per seed (``config.seed`` replaced); data are loaded and preloaded once."""
    data_hash = dataset_hash(data_root)
    datasets: tuple[Dataset, Dataset | None] | None = None
    out = []
    for seed in seeds:
        cfg = dataclasses.replace(config, seed=int(seed))
        rhash = recipe_hash(cfg, data_hash)
        run_dir = _run_dir(cfg, out_dir, rhash)
        if _is_cached(run_dir, rhash, cfg.seed):
            logger.info("cached: %s", run_dir)
            out.append(run_dir)
            continue
        if datasets is None:
            train, val = _load_datasets(cfg, data_root)
            if cfg.preload:
                train = preload(train, cfg.num_workers)
                val = preload(val, cfg.num_workers) if val is not None else None
            datasets = (train, val)
        out.append(train_on(cfg, *datasets, out_dir, data_hash, progress=progress))
    return out


def main_train(args: argparse.Namespace) -> list[Path]:
    """``python -m salience_lib train``: train one model per seed and print the run folders.

    Raises:
        ValueError: a bad option (the message names the flag), an unreadable image (names the file).
        FileNotFoundError: no data folder or CSV.
        OSError: ``--out`` cannot be written (e.g. a full disk); names the file.
    """
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    config = config_from_args(args)
    try:
        resolve_device(config.device)
    except ValueError as err:
        raise ValueError(f"--device {config.device}: {err}") from err
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data {args.data}: data folder not found")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise NotADirectoryError(f"--out {args.out}: not a folder")
    data, out = Path(args.data).resolve(), Path(args.out).resolve()
    if out == data or data in out.parents:  # the runs would become part of the data set
        raise ValueError(f"--out {args.out}: lies in the data folder --data {args.data}; write the runs elsewhere")
    if threads is not None:
        torch.set_num_threads(threads)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = train_runs(config, args.data, args.out, args.seeds, progress=not getattr(args, "no_progress", False))
    for path in paths:
        side = read_sidecar(path) or {}
        print(f"{path}  val_acc={side.get('metrics', {}).get('val_acc')}")
    return paths
