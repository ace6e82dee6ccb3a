"""Training recipes: :class:`TrainConfig`, the recipe hash that identifies what a run learns, seeds.

Quick profile (the defaults): Adam + one-cycle lr 1e-3, batch 64, 16 epochs, random flips, random init
(SPEC §5); it keeps this schedule of its own. The CYBORG authors' ``train_cam.py`` uses SGD lr 0.005,
momentum 0.9, weight decay 1e-6, lr × 0.1 every 12 epochs (``StepLR(12, 0.1)``, stepped once per
epoch), no augmentation, 50 epochs, batch 20, ImageNet init at 224 px: ``optimizer="paper"``
(``train --optimizer paper``) fixes the optimiser, schedule and augmentation to theirs
(:data:`PAPER_OPTIMIZER`); add ``epochs=50, batch_size=20`` (``--epochs 50 --batch-size 20``) and
ImageNet weights for their whole recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from salience_lib.runtime.device import AMP_DTYPES
from salience_lib.runtime.files import file_sha256, json_sha256

__all__ = ["PAPER_OPTIMIZER", "RECIPE_VERSION", "TrainConfig", "config_from_args", "derive_seed", "recipe_hash"]

# Bump when a change to the training code changes what a given recipe trains (invalidates cached runs).
RECIPE_VERSION = 1
LOSSES = ("xent", "cyborg", "cyborg_pooled")
OPTIMIZERS = ("adam", "sgd", "paper")
# Bump a loss's revision when what its name trains changes: "cyborg" meant the pooled true-class variant
# (now "cyborg_pooled") until revision 2, the authors' loss; its old runs are then never reused as new.
LOSS_REVISIONS: dict[str, int] = {"cyborg": 2}
PAPER_OPTIMIZER: dict[str, Any] = {
    "lr": 0.005,
    "momentum": 0.9,
    "weight_decay": 1e-6,
    "schedule": "step",
    "step_size": 12,
    "gamma": 0.1,
    "hflip": False,
}
"""What ``optimizer="paper"`` fixes: the CYBORG authors' SGD, StepLR and no augmentation (``train_cam.py``)."""
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
        loss: ``"xent"``, ``"cyborg"`` (the authors' loss: CAM of the predicted class at their feature
            layer, PIL-bilinear human map, both min–max normalised; :func:`~salience_lib.training.
            losses.cyborg_loss`) or ``"cyborg_pooled"`` (the earlier variant: true class, pooled
            features, area-pooled map; :func:`~salience_lib.training.losses.cyborg_pooled_loss`).
        alpha: CE weight of the CYBORG losses (ignored for ``xent``).
        epochs, batch_size, lr, weight_decay: the usual.
        optimizer: ``"adam"``, ``"sgd"`` (with ``momentum``) or ``"paper"``: SGD with the authors'
            settings (:data:`PAPER_OPTIMIZER`) for ``lr``, ``momentum``, ``weight_decay``, ``schedule``,
            ``step_size``, ``gamma`` and ``hflip``. Such a field left at (or set to) its quick-profile
            default takes the authors' value; a third value is refused (and so is any explicit flag
            other than theirs on the command line, :func:`config_from_args`).
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
        if self.optimizer == "paper":
            self._apply_paper_optimizer()
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1], got {self.alpha}")
        for name in ("epochs", "batch_size", "step_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"`lr` must be > 0, got {self.lr}")
        if self.weights_path is not None:
            object.__setattr__(self, "weights_path", str(self.weights_path))

    def _apply_paper_optimizer(self) -> None:
        """Fields at their default take the authors' value; one set to a third value is an error."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, paper in PAPER_OPTIMIZER.items():
            value = getattr(self, name)
            if value == defaults[name]:
                object.__setattr__(self, name, paper)
            elif value != paper:
                raise ValueError(f"`{name}` must be {paper!r} (or its default) with `optimizer` 'paper', got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def recipe_hash(config: TrainConfig, data_hash: str) -> str:
    """SHA-256 of what a run learns: config without execution fields and seed, data hash, weights file.

    Fields that cannot matter are dropped (``alpha`` for xent, ``momentum`` for Adam, ``step_size`` and
    ``gamma`` unless ``schedule="step"``) so that changing them does not retrain. A weights file enters
    by the SHA-256 of its bytes, not its path. The loss enters by name and, where the name's meaning
    changed, its revision (:data:`LOSS_REVISIONS`): a run of the earlier "cyborg" is not reused.
    """
    recipe = {k: v for k, v in config.to_dict().items() if k not in _EXECUTION_FIELDS}
    if config.loss == "xent":
        recipe.pop("alpha")
    if config.optimizer == "adam":
        recipe.pop("momentum")
    if config.schedule != "step":
        recipe.pop("step_size")
        recipe.pop("gamma")
    if config.weights_path is not None:
        recipe["weights_path"] = file_sha256(config.weights_path)
    if config.loss in LOSS_REVISIONS:
        recipe["loss_revision"] = LOSS_REVISIONS[config.loss]
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

    With ``--optimizer paper`` an explicit ``--lr``, ``--weight-decay`` or ``--schedule`` other than the
    authors' value is refused (:data:`PAPER_OPTIMIZER`).

    Raises:
        ValueError: a bad value; the message names the command-line flag (``--epochs``), not the field.
    """
    values = {field: getattr(args, name, None) for name, field in _ARG_FIELDS.items()}
    if values["optimizer"] == "paper":  # a flag given explicitly must not be silently replaced
        for name, field in _ARG_FIELDS.items():
            if values[field] is not None and field in PAPER_OPTIMIZER and values[field] != PAPER_OPTIMIZER[field]:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} {values[field]} conflicts with --optimizer paper, which uses "
                                 f"{PAPER_OPTIMIZER[field]}; leave {flag} out")  # fmt: skip
    try:
        return TrainConfig(**{field: value for field, value in values.items() if value is not None})
    except ValueError as err:
        message = str(err)
        for name, field in _ARG_FIELDS.items():
            message = message.replace(f"`{field}`", "--" + name.replace("_", "-"))
        raise ValueError(message) from err
