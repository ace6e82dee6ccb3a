"""Training recipes: :class:`TrainConfig`, the recipe hash that identifies what a run learns, seeds.

Quick profile (the defaults): Adam + one-cycle lr 1e-3, batch 64, 16 epochs, random init (SPEC §5).
The CYBORG paper used SGD lr 0.005, momentum 0.9, wd 1e-6, lr × 0.1 every 12 epochs, 50 epochs, batch
20, ImageNet init at 224 px (``optimizer="sgd", schedule="step"`` reproduces that schedule).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from salience_lib.runtime.device import AMP_DTYPES
from salience_lib.runtime.files import file_sha256, json_sha256

__all__ = ["RECIPE_VERSION", "TrainConfig", "config_from_args", "derive_seed", "recipe_hash"]

# Bump when a change to the training code changes what a given recipe trains (invalidates cached runs).
RECIPE_VERSION = 1
LOSSES = ("xent", "cyborg")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("onecycle", "step", "constant")
CHOICES: dict[str, tuple[str, ...]] = {
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "amp": tuple(AMP_DTYPES),
}
"""The allowed values of TrainConfig's choice fields (the CLI's ``choices``)."""
# Config fields that change how a run executes but not what it learns (excluded from the recipe hash).
_EXECUTION_FIELDS = ("seed", "device", "num_workers", "preload", "channels_last")


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
        for name, allowed in CHOICES.items():
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


def recipe_hash(config: TrainConfig, data_hash: str) -> str:
    """SHA-256 of what a run learns: config without execution fields and seed, data hash, weights file.

    Fields that cannot matter are dropped (``alpha`` for xent, ``momentum`` for Adam, ``step_size`` and
    ``gamma`` unless ``schedule="step"``) so that changing them does not retrain. A weights file enters
    by the SHA-256 of its bytes, not its path.
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
        recipe["weights_path"] = file_sha256(config.weights_path)
    recipe.update(data_hash=data_hash, recipe_version=RECIPE_VERSION)
    return json_sha256(recipe)


def derive_seed(seed: int, stream: str, epoch: int) -> int:
    """An independent 63-bit seed for one random stream (``"order"``, ``"hflip"``) of one epoch.

    The first 8 bytes (little-endian) of SHA-256 of ``"<seed>/<stream>/<epoch>"``, so that each epoch's
    data order and augmentation depend only on the run's seed and the epoch, not on what ran before
    (a resumed run draws the same batches).
    """
    digest = hashlib.sha256(f"{seed}/{stream}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# ``train`` command-line option (argparse dest) -> TrainConfig field.
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
    """A :class:`TrainConfig` from parsed ``train`` arguments; unset (``None``) options keep defaults.

    Raises:
        ValueError: a bad value; the message names the command-line flag (``--epochs``), not the field.
    """
    values = {field: getattr(args, name, None) for name, field in _ARG_FIELDS.items()}
    try:
        return TrainConfig(**{field: value for field, value in values.items() if value is not None})
    except ValueError as err:
        message = str(err)
        for name, field in _ARG_FIELDS.items():
            message = message.replace(f"`{field}`", "--" + name.replace("_", "-"))
        raise ValueError(message) from err
