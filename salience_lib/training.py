r"""Training XENT and CYBORG models: the losses, a seeded, resumable, cached training loop, checkpoints.

Losses (per batch of images with labels :math:`y` and human annotation maps :math:`H`):

.. math::

    L_\text{xent} = \mathrm{CE}(z, y), \qquad
    L_\text{cyborg} = \alpha\,\mathrm{CE}(z, y)
        + (1 - \alpha)\,\mathrm{MSE}\big(\mathrm{minmax}(M_y),\ \mathrm{pool}_{h \times w}(H)\big)

with :math:`M_y = \sum_k w_{y,k} A_k` the class activation map of the true class at feature resolution
:math:`h \times w` (``fc`` weights :math:`w`, last feature map :math:`A`, no bias), min–max normalised per
map, and the human map average-pooled to :math:`h \times w`. Source: Boyd et al., "CYBORG: Blending Human
Saliency Into the Loss Improves Deep Learning-Based Synthetic Face Detection", WACV 2023 (their
:math:`\alpha = 0.5`). Quick profile: Adam + one-cycle lr 1e-3, batch 64, 16 epochs, random init (SPEC §5);
the paper used SGD lr 0.005, momentum 0.9, wd 1e-6, lr × 0.1 every 12 epochs, 50 epochs, batch 20,
ImageNet init at 224 px (``optimizer="sgd", schedule="step"`` reproduces that schedule).

A run lives in ``<out>/<loss>-<arch>-s<seed>-<recipe hash[:8]>/``:

- ``model.pt``: the final ``state_dict`` (written atomically: temp file in the same folder + ``os.replace``);
- ``model.json``: sidecar (arch, loss, alpha, seed, data hash, recipe hash, config, metrics, per-epoch
  history, epoch, ``complete``, library version), rewritten after every epoch;
- ``resume.pt``: model + optimizer + scheduler + grad-scaler + RNG states + epoch, rewritten atomically
  after every epoch and removed once the run is complete.

Everything is read back with ``torch.load(..., weights_only=True)``. A complete run with the same recipe
hash (config without execution details, plus the data hash) is reused, never retrained.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from salience_lib.maps import minmax_normalise, resize_maps
from salience_lib.models import SalienceClassifier, build_model
from salience_lib.salience import class_activation_map

__all__ = [
    "MODEL_FILE",
    "RESUME_FILE",
    "SIDECAR_FILE",
    "TrainConfig",
    "config_from_args",
    "cyborg_loss",
    "dataset_hash",
    "find_runs",
    "load_model",
    "main_train",
    "recipe_hash",
    "run_name",
    "train_on",
    "train_one",
    "train_runs",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
SIDECAR_FILE = "model.json"
RESUME_FILE = "resume.pt"
CLASSES = ("Real", "Synthetic")
# Bump when a change to this module changes what a given recipe trains (invalidates cached runs).
RECIPE_VERSION = 1
# Config fields that change how a run executes but not what it learns (excluded from the recipe hash).
_EXECUTION_FIELDS = ("seed", "device", "num_workers", "preload", "channels_last")

EpochCallback = Callable[[int, nn.Module, dict[str, Any]], None]


# ---------------------------------------------------------------------------------------------
# losses


def _pool_annotations(annotations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Human maps ``(B, H, W)`` to ``size`` by area (adaptive average) pooling; bilinear if smaller."""
    if annotations.ndim != 3:
        raise ValueError(f"`annotations` must be (B, H, W), got shape {tuple(annotations.shape)}")
    ann = annotations.float()
    if ann.shape[-2] >= size[0] and ann.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(ann[:, None], size)[:, 0]
    return resize_maps(ann, size)


def cyborg_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    fc_weight: torch.Tensor,
    targets: torch.Tensor,
    annotations: torch.Tensor,
    alpha: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""CYBORG loss :math:`\alpha\,\mathrm{CE} + (1-\alpha)\,\mathrm{MSE}(\mathrm{minmax}(M_y), \mathrm{pool}(H))`.

    Boyd et al., "CYBORG: Blending Human Saliency Into the Loss Improves Deep Learning-Based Synthetic
    Face Detection", WACV 2023. :math:`M_y` is :func:`class_activation_map` of the true class at feature
    resolution, min–max normalised per map (:func:`salience_lib.maps.minmax_normalise`; a constant map
    becomes zero); the human map :math:`H \in [0, 1]` is average-pooled to the feature resolution. Computed
    in float32 whatever the autocast dtype of the inputs.

    Args:
        logits: ``(B, K)``.
        features: ``(B, C, h, w)`` last feature map (the input of global average pooling).
        fc_weight: ``(K, C)`` final linear layer weight.
        targets: ``(B,)`` true classes.
        annotations: ``(B, H, W)`` human salience maps in [0, 1].
        alpha: weight of the cross-entropy term, in [0, 1]; 1 gives plain cross-entropy.

    Returns:
        ``(total, ce, cam_mse)``, three scalar tensors.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    ce = F.cross_entropy(logits.float(), targets)
    cam = minmax_normalise(class_activation_map(features.float(), fc_weight.float(), targets))
    human = _pool_annotations(annotations, (cam.shape[-2], cam.shape[-1]))
    cam_mse = F.mse_loss(cam, human)
    return alpha * ce + (1.0 - alpha) * cam_mse, ce, cam_mse


# ---------------------------------------------------------------------------------------------
# configuration and hashes


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe (plus execution settings). Defaults: the quick profile of SPEC §5.

    Attributes:
        arch: model name for :func:`salience_lib.models.build_model`.
        loss: ``"xent"`` or ``"cyborg"``.
        alpha: CE weight of the CYBORG loss (ignored for ``xent``).
        epochs, batch_size, lr, weight_decay: the usual.
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        schedule: ``"onecycle"`` (per batch, peak ``lr``), ``"step"`` (lr × ``gamma`` every
            ``step_size`` epochs) or ``"constant"``.
        hflip: random horizontal flips, the annotation flipped with the image.
        seed: seeds initialisation, data order and augmentation.
        image_size: resize images to this side (``None``: native size).
        weights_path: optional local backbone weights (see ``build_model``).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast (fp16 with a gradient scaler).
        channels_last: NHWC memory format (2.9× faster CPU training, SPEC §5).
        num_workers: DataLoader workers when not preloading.
        preload: decode the data set once into memory (uint8 where exact) and batch by indexing.
    """

    arch: str = "small_cnn"
    loss: str = "xent"
    alpha: float = 0.5
    epochs: int = 16
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.9
    schedule: str = "onecycle"
    step_size: int = 12
    gamma: float = 0.1
    hflip: bool = True
    seed: int = 0
    image_size: int | None = None
    weights_path: str | None = None
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = True
    num_workers: int = 0
    preload: bool = True

    def __post_init__(self) -> None:
        choices = {
            "loss": ("xent", "cyborg"),
            "optimizer": ("adam", "sgd"),
            "schedule": ("onecycle", "step", "constant"),
            "amp": ("none", "bf16", "fp16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1], got {self.alpha}")
        for name in ("epochs", "batch_size", "step_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"`lr` must be > 0, got {self.lr}")
        if self.weights_path is not None:
            object.__setattr__(self, "weights_path", str(self.weights_path))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _sha256_file(path: Path, h: Any = None) -> Any:
    h = hashlib.sha256() if h is None else h
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def dataset_hash(root: str | Path) -> str:
    """SHA-256 of a data set's top-level ``*.csv`` files and ``info.json`` (names and contents).

    Images are not hashed: the CSVs (and the generator's ``info.json``) identify the data set.

    Raises:
        FileNotFoundError: ``root`` missing or without any CSV file.
    """
    root = Path(root)
    files = sorted(root.glob("*.csv")) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no CSV file in data folder {root}")
    if (root / "info.json").is_file():
        files.append(root / "info.json")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        _sha256_file(f, h)
    return h.hexdigest()


def recipe_hash(config: TrainConfig, data_hash: str) -> str:
    """SHA-256 of what a run learns: config without execution fields and seed, data hash, weights file.

    Fields that cannot matter are dropped (``alpha`` for xent, ``momentum`` for Adam, ``step_size`` and
    ``gamma`` unless ``schedule="step"``) so that changing them does not retrain.
    """
    recipe = {k: v for k, v in config.to_dict().items() if k not in _EXECUTION_FIELDS}
    if config.loss == "xent":
        recipe.pop("alpha")
    if config.optimizer != "sgd":
        recipe.pop("momentum")
    if config.schedule != "step":
        recipe.pop("step_size")
        recipe.pop("gamma")
    if config.weights_path is not None:
        recipe["weights_path"] = _sha256_file(Path(config.weights_path)).hexdigest()
    recipe.update(data_hash=data_hash, recipe_version=RECIPE_VERSION)
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def run_name(config: TrainConfig, rhash: str) -> str:
    """Folder name of a run: ``<loss>-<arch>-s<seed>-<recipe hash[:8]>``."""
    return f"{config.loss}-{config.arch}-s{config.seed}-{rhash[:8]}"


def _derive_seed(seed: int, stream: str, epoch: int) -> int:
    digest = hashlib.sha256(f"{seed}/{stream}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------------------------------
# data


class _InMemory(Dataset):
    """A data set decoded once: images (uint8 where that is exact, else float32), labels, annotations."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, annotations: torch.Tensor | None):
        self.images, self.labels, self.annotations = images, labels, annotations

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[i] for t in self.batch(torch.tensor([i])))

    def to(self, device: torch.device) -> _InMemory:
        """A copy with every tensor on ``device`` (batches are then gathered there)."""
        move = [None if t is None else t.to(device) for t in (self.images, self.labels, self.annotations)]
        return _InMemory(*move)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Items ``idx`` as collated float32 tensors ``(images, labels[, annotations])``."""
        idx = idx.to(self.labels.device)
        out = [_unpack(self.images[idx]), self.labels[idx]]
        if self.annotations is not None:
            out.append(_unpack(self.annotations[idx]))
        return tuple(out)


def _pack(x: torch.Tensor) -> torch.Tensor:
    q = torch.round(x * 255)
    return q.to(torch.uint8) if torch.equal(q / 255, x) else x


def _unpack(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x


def _preload(dataset: Dataset, num_workers: int = 0) -> _InMemory:
    if isinstance(dataset, _InMemory):
        return dataset
    parts: list[list[torch.Tensor]] = []
    for batch in DataLoader(dataset, batch_size=256, shuffle=False, num_workers=num_workers):
        packed = [_pack(batch[0].float()), batch[1].long()]
        if len(batch) > 2:
            packed.append(_pack(batch[2].float()))
        parts.append(packed)
    cols = [list(c) for c in zip(*parts, strict=True)]
    # A column is uint8 only if every chunk was exactly 8-bit; otherwise fall back to float32.
    merged = [torch.cat(c) if len({t.dtype for t in c}) == 1 else torch.cat([_unpack(t) for t in c]) for c in cols]
    return _InMemory(merged[0], merged[1], merged[2] if len(merged) > 2 else None)


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Seeded permutation of ``range(n)`` in batches; a trailing batch of one is dropped (BatchNorm)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_derive_seed(seed, "order", epoch)))
    chunks = list(perm.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks


def _iterate(dataset: Dataset, batches: list[torch.Tensor], num_workers: int) -> Iterator[tuple[torch.Tensor, ...]]:
    if isinstance(dataset, _InMemory):
        yield from (dataset.batch(idx) for idx in batches)
        return
    sampler = [idx.tolist() for idx in batches]
    yield from DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)


# ---------------------------------------------------------------------------------------------
# checkpoint I/O


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` via a temp file in the same folder and ``os.replace`` (never a partial file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _save_torch(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f))


def _save_json(path: Path, obj: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(_json_safe(obj), indent=2).encode()))


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def _read_sidecar(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / SIDECAR_FILE
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# the training loop


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

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.amp)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.config.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _make_run(config: TrainConfig, image_size: int, steps_per_epoch: int) -> _Run:
    device = _resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, len(CLASSES), config.weights_path, image_size=image_size)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = model.parameters()
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
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
    return _Run(config, device, model, opt, sched, scaler, image_size, history=[])


def _resume(run: _Run, run_dir: Path, rhash: str) -> None:
    """Restore ``run`` from ``resume.pt`` if it belongs to this recipe and seed."""
    path = run_dir / RESUME_FILE
    if not path.is_file():
        return
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("recipe_hash") != rhash or state.get("seed") != run.config.seed:
        logger.warning("ignoring %s: it belongs to another recipe", path)
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if run.device.type == "cuda" and state["rng_cuda"]:
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    run.history = list(state["history"])
    run.start_epoch = int(state["epoch"])
    logger.info("resuming %s from epoch %d", run_dir.name, run.start_epoch)


def _save_resume(run: _Run, run_dir: Path, rhash: str, epoch: int) -> None:
    cuda = run.device.type == "cuda"
    state = {
        "recipe_hash": rhash,
        "seed": run.config.seed,
        "epoch": epoch,
        "model": _cpu_state(run.model),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if cuda else [],
        "history": run.history,
    }
    _save_torch(run_dir / RESUME_FILE, state)


def _loss(run: _Run, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    x, y = run.to_device(batch[0]), run.to_device(batch[1])
    with run.autocast():
        logits, feats = run.model.forward_features(x)
    if run.config.loss == "xent":
        ce = F.cross_entropy(logits.float(), y)
        return ce, ce, None
    if len(batch) < 3:
        raise ValueError("the cyborg loss needs annotations: items must be (image, label, annotation)")
    return cyborg_loss(logits, feats, run.model.fc.weight, y, run.to_device(batch[2]), run.config.alpha)


def _hflip(batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Flip each item left–right with probability 1/2; image and annotation together."""
    flip = (torch.rand(len(batch[1]), generator=generator) < 0.5).to(batch[0].device)
    out = list(batch)
    out[0] = torch.where(flip[:, None, None, None], batch[0].flip(-1), batch[0])
    if len(batch) > 2:
        out[2] = torch.where(flip[:, None, None], batch[2].flip(-1), batch[2])
    return tuple(out)


def _train_epoch(run: _Run, data: Dataset, epoch: int, bar: tqdm) -> dict[str, float | None]:
    cfg = run.config
    run.model.train()
    batches = _epoch_batches(len(data), cfg.batch_size, cfg.seed, epoch)
    flips = torch.Generator().manual_seed(_derive_seed(cfg.seed, "hflip", epoch))
    sums = torch.zeros(3, dtype=torch.float64, device=run.device)
    count, lr = 0, float("nan")
    for batch in _iterate(data, batches, cfg.num_workers):
        batch = _hflip(batch, flips) if cfg.hflip else batch
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
    cam = cam if cfg.loss == "cyborg" else None
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
    for batch in _iterate(data, batches, run.config.num_workers):
        x, y = run.to_device(batch[0]), run.to_device(batch[1])
        with run.autocast():
            logits = run.model(x).float()
        ce_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    return {"val_loss": ce_sum.item() / len(data), "val_acc": correct.item() / len(data)}


def _sidecar(run: _Run, rhash: str, data_hash: str, epoch: int, complete: bool) -> dict[str, Any]:
    from salience_lib import __version__

    cfg = run.config
    last = run.history[-1] if run.history else {}
    metrics = {k: last.get(k) for k in ("val_acc", "val_loss", "train_loss", "train_ce", "train_cam")}
    metrics["train_seconds"] = sum(h["seconds"] for h in run.history)
    return {
        "format": 1,
        "arch": cfg.arch,
        "loss": cfg.loss,
        "alpha": cfg.alpha if cfg.loss == "cyborg" else None,
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


def _is_cached(run_dir: Path, rhash: str, seed: int) -> bool:
    side = _read_sidecar(run_dir)
    return bool(
        side
        and side.get("complete")
        and side.get("recipe_hash") == rhash
        and side.get("seed") == seed
        and (run_dir / MODEL_FILE).is_file()
    )


def _image_size(data: Dataset) -> int:
    image = data.images[0] if isinstance(data, _InMemory) else data[0][0]
    return int(min(image.shape[-2:]))


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
        data_hash: identifies the data (see :func:`dataset_hash`); part of the recipe hash.
        on_epoch_end: called as ``f(epoch, model, record)`` after each epoch's checkpoint is written
            (``epoch`` counts from 1); an exception raised there interrupts the run resumably.
        progress: show a tqdm progress bar.
    """
    rhash = recipe_hash(config, data_hash)
    run_dir = Path(out_dir) / run_name(config, rhash)
    if _is_cached(run_dir, rhash, config.seed):
        logger.info("cached: %s", run_dir)
        return run_dir
    if len(train_set) < 2:
        raise ValueError(f"`train_set` must hold at least 2 items, got {len(train_set)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.preload:
        device = _resolve_device(config.device)
        train_set = _preload(train_set, config.num_workers).to(device)
        val_set = _preload(val_set, config.num_workers).to(device) if val_set is not None else None
    steps = len(_epoch_batches(len(train_set), config.batch_size, config.seed, 0))
    devices = [torch.cuda.current_device()] if _resolve_device(config.device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        run = _make_run(config, _image_size(train_set), steps)
        _resume(run, run_dir, rhash)
        _fit(run, train_set, val_set, run_dir, (rhash, data_hash), steps, on_epoch_end, progress)
    _save_torch(run_dir / MODEL_FILE, _cpu_state(run.model))
    _save_json(run_dir / SIDECAR_FILE, _sidecar(run, rhash, data_hash, config.epochs, complete=True))
    (run_dir / RESUME_FILE).unlink(missing_ok=True)
    return run_dir


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
            _save_json(run_dir / SIDECAR_FILE, _sidecar(run, rhash, data_hash, epoch + 1, complete=False))
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=record["val_acc"])
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, run.model, record)


def _load_datasets(config: TrainConfig, data_root: str | Path) -> tuple[Dataset, Dataset | None]:
    """The ``train`` split (with annotations for CYBORG) and the ``val`` split, or None without one."""
    from salience_lib.data import CSV_NAME, CsvImageDataset, read_csv

    size = config.image_size
    train = CsvImageDataset(data_root, "train", image_size=size, annotations=config.loss == "cyborg")
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
        run_dir = Path(out_dir) / run_name(cfg, rhash)
        if _is_cached(run_dir, rhash, cfg.seed):
            logger.info("cached: %s", run_dir)
            out.append(run_dir)
            continue
        if datasets is None:
            train, val = _load_datasets(cfg, data_root)
            if cfg.preload:
                train = _preload(train, cfg.num_workers)
                val = _preload(val, cfg.num_workers) if val is not None else None
            datasets = (train, val)
        out.append(train_on(cfg, *datasets, out_dir, data_hash, progress=progress))
    return out


# ---------------------------------------------------------------------------------------------
# loading and finding runs


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SalienceClassifier, dict]:
    """Rebuild a trained model from its run folder, in eval mode on ``device``.

    Returns:
        ``(model, sidecar)`` with the sidecar dict of ``model.json``.

    Raises:
        FileNotFoundError: no sidecar or checkpoint in ``run_dir``.
        ValueError: the run is not complete.
    """
    run_dir = Path(run_dir)
    side = _read_sidecar(run_dir)
    if side is None:
        raise FileNotFoundError(f"no {SIDECAR_FILE} in {run_dir}")
    if not side.get("complete"):
        raise ValueError(f"run {run_dir} is not complete (epoch {side.get('epoch')} of {side.get('epochs')})")
    model = build_model(side["arch"], len(side["classes"]), image_size=side["image_size"])
    state = torch.load(run_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), side


def find_runs(
    runs_root: str | Path, loss: str | None = None, *, arch: str | None = None, data: str | Path | None = None
) -> list[Path]:
    """Complete run folders directly under ``runs_root`` (sorted), optionally filtered.

    Args:
        loss, arch: keep runs of this loss / architecture.
        data: keep runs trained on this data set as it is now (same :func:`dataset_hash`), so that
            runs left over from an earlier version of the data are not mixed in.
    """
    root = Path(runs_root)
    if not root.is_dir():
        return []
    wanted_hash = dataset_hash(data) if data is not None else None
    found = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        side = _read_sidecar(run_dir)
        if not side or not side.get("complete") or not (run_dir / MODEL_FILE).is_file():
            continue
        if wanted_hash is not None and side.get("data_hash") != wanted_hash:
            continue
        if (loss is None or side.get("loss") == loss) and (arch is None or side.get("arch") == arch):
            found.append(run_dir)
    return found


# ---------------------------------------------------------------------------------------------
# command line


_ARG_FIELDS = {
    "arch": "arch",
    "loss": "loss",
    "alpha": "alpha",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "optimizer": "optimizer",
    "schedule": "schedule",
    "image_size": "image_size",
    "weights": "weights_path",
    "device": "device",
    "amp": "amp",
    "channels_last": "channels_last",
    "num_workers": "num_workers",
}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``train`` arguments; unset (``None``) options keep defaults."""
    values = {field: getattr(args, name, None) for name, field in _ARG_FIELDS.items()}
    return TrainConfig(**{field: value for field, value in values.items() if value is not None})


def main_train(args: argparse.Namespace) -> list[Path]:
    """``python -m salience_lib train``: train one model per seed and print the run folders."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = config_from_args(args)
    paths = train_runs(config, args.data, args.out, args.seeds, progress=not getattr(args, "no_progress", False))
    for path in paths:
        side = _read_sidecar(path) or {}
        print(f"{path}  val_acc={side.get('metrics', {}).get('val_acc')}")
    return paths
