"""Checkpoints trained anywhere: a plain torchvision (or timm) classifier rebuilt by name, its weights loaded.

The CYBORG authors' ``final_model.pth`` is ``{"state_dict": ...}`` of a torchvision ResNet-50,
DenseNet-121 or Inception-v3 whose head was replaced by ``nn.Linear(..., 2)``, with ImageNet
normalisation done *outside* the model. :func:`load_checkpoint` rebuilds the architecture, replaces
its head by name (``fc``, ``classifier``, ``heads``, ``head``), loads the weights with
``torch.load(..., weights_only=True)`` — a plain state_dict, ``{"state_dict": ...}`` or
``{"model": ...}``, ``module.`` prefixes of ``DataParallel`` stripped — and wraps the model so that
it takes images in [0, 1] (:class:`NormalizedModel`). Grad-CAM looks through the wrapper.

A model wrapped in ``nn.DataParallel`` or ``torch.compile`` is measured as the bare module inside
(:func:`unwrap_model`); layer names work with or without the wrapper's prefix (:func:`unwrap_name`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from salience_lib.models.builders import IMAGENET_MEAN, IMAGENET_STD, Normalize

__all__ = [
    "NORMALIZATIONS",
    "NormalizedModel",
    "load_checkpoint",
    "read_state_dict",
    "replace_head",
    "unwrap_model",
    "unwrap_name",
]

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
}
"""Input normalisations by name: ImageNet's, Xception's (mean = std = 0.5), or none."""
_HEADS = ("fc", "classifier", "heads", "head")
_DEFAULT_SIZES = {"inception_v3": 299}


class NormalizedModel(nn.Module):
    """``model(normalize(x))`` for images ``x`` in [0, 1]; ``input_size`` is the side it expects (or None)."""

    def __init__(self, model: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None,
                 input_size: int | None = None) -> None:  # fmt: skip
        super().__init__()
        self.normalize = Normalize(tuple(mean), tuple(std)) if mean is not None else nn.Identity()
        self.model = model
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))


def _inner(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(attribute, wrapped module)`` of a ``DataParallel``/``DistributedDataParallel``/``torch.compile`` wrapper."""
    if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        return "module", model.module
    inner = model._modules.get("_orig_mod")  # torch.compile's OptimizedModule (no torch._dynamo import)
    if type(model).__name__ == "OptimizedModule" and isinstance(inner, nn.Module):
        return "_orig_mod", inner
    return None


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module inside ``DataParallel``/``DistributedDataParallel``/``torch.compile`` wrappers (nested too).

    Salience methods run the bare module: hooks on a ``DataParallel``'s replicas would each see one
    chunk of the batch, and a compiled graph cannot take per-call hooks and gradients of an
    intermediate layer without recompiling. Its parameters are the wrapper's own, so the numbers
    are the same. Any other module is returned as is.
    """
    while (wrapped := _inner(model)) is not None:
        model = wrapped[1]
    return model


def unwrap_name(model: nn.Module, name: str) -> str:
    """A submodule name of ``model`` relative to :func:`unwrap_model`: ``module.`` / ``_orig_mod.`` dropped.

    ``"module.layer4"`` and ``"layer4"`` both give ``"layer4"`` for ``DataParallel(resnet)``.
    """
    while (wrapped := _inner(model)) is not None:
        name = name.removeprefix(wrapped[0] + ".")
        model = wrapped[1]
    return name


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint file (plain, ``{"state_dict"}`` or ``{"model"}``; ``module.`` stripped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a torch file, a truncated one, or no dict of tensors inside (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, a pickle with code (weights_only refuses it), ...
        reason = f"{type(err).__name__}: {err}"
        raise ValueError(f"checkpoint {path} cannot be read as a torch state_dict: {reason}") from err
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {path} holds no state_dict (a dict of tensors), got {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Replace the classifier's last ``nn.Linear`` (found under ``fc``/``classifier``/``heads``/``head``).

    Returns the dotted name of the replaced layer.

    Raises:
        ValueError: no such head.
    """
    for head in _HEADS:
        module = getattr(model, head, None)
        if module is None:
            continue
        if isinstance(module, nn.Linear):
            setattr(model, head, nn.Linear(module.in_features, num_classes))
            return head
        linears = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
        if linears:
            name, last = linears[-1]
            parent_name, _, leaf = f"{head}.{name}".rpartition(".")
            setattr(model.get_submodule(parent_name), leaf, nn.Linear(last.in_features, num_classes))
            return f"{head}.{name}"
    raise ValueError(f"{type(model).__name__}: no classifier head ({', '.join(_HEADS)}) with an nn.Linear to replace")


def _builders(arch: str) -> list[Callable[[], nn.Module]]:
    """Constructors for ``arch``: torchvision's, then timm's (if installed); ``timm:``/``torchvision:`` picks one.

    Some names are in both (``resnet50``, ``efficientnet_b0``, ...): a checkpoint that does not fit
    torchvision's model is tried on timm's.

    Raises:
        ValueError: a name neither library has.
    """
    import torchvision

    source, _, name = arch.rpartition(":")
    if source not in ("", "torchvision", "timm"):
        raise ValueError(f"unknown architecture {arch!r}: the prefix must be 'torchvision:' or 'timm:'")
    found: list[Callable[[], nn.Module]] = []
    if source in ("", "torchvision") and name in torchvision.models.list_models(module=torchvision.models):
        kwargs = {"init_weights": False} if name in ("inception_v3", "googlenet") else {}
        found.append(lambda: torchvision.models.get_model(name, weights=None, **kwargs))
    try:
        import timm
    except ImportError as err:
        if not found:
            raise ValueError(f"unknown architecture {arch!r}: not a torchvision classifier, and timm is not "
                             "installed (pip install salience_lib[timm])") from err  # fmt: skip
        return found
    if source in ("", "timm") and name in timm.list_models():
        found.append(lambda: timm.create_model(name, pretrained=False))
    if not found:
        raise ValueError(f"unknown architecture {arch!r}: neither a torchvision nor a timm model")
    return found


def _fitted(build: Callable[[], nn.Module], state: dict[str, torch.Tensor], num_classes: int, path: Path
            ) -> tuple[nn.Module | None, str]:  # fmt: skip
    """The built model with its head replaced and ``state`` loaded, or ``(None, why it does not fit)``."""
    model = build()
    replace_head(model, num_classes)
    aux = getattr(model, "AuxLogits", None)
    if aux is not None and "AuxLogits.fc.weight" in state:  # Inception's auxiliary head: as saved
        aux.fc = nn.Linear(aux.fc.in_features, state["AuxLogits.fc.weight"].shape[0])
    elif aux is not None and not any(k.startswith("AuxLogits.") for k in state):
        model.AuxLogits = None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        return None, _mismatches(model, state, path)
    return model, ""


def _mismatches(model: nn.Module, state: dict[str, torch.Tensor], path: Path, limit: int = 4) -> str:
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(mine[k].shape)}" for k in mine
              if k in state and state[k].shape != mine[k].shape]  # fmt: skip
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(parts)


def load_checkpoint(
    path: str | os.PathLike[str],
    arch: str,
    *,
    num_classes: int = 2,
    normalize: str | tuple[Sequence[float], Sequence[float]] = "imagenet",
    image_size: int | None = None,
    transform_input: bool | None = None,
) -> NormalizedModel:
    """A classifier rebuilt by name with its weights from ``path``, taking images in [0, 1] (module docstring).

    Args:
        path: the checkpoint file.
        arch: a torchvision classification model name (``resnet50``, ``densenet121``,
            ``inception_v3``, ``vit_b_16``, ...) or, with timm installed, a timm model name; a name
            both have is tried on torchvision's model first, then timm's (``timm:``/``torchvision:``
            prefixes pick one).
        num_classes: outputs of the replaced head (2: Real, Synthetic; 1: a sigmoid detector).
        normalize: ``imagenet``, ``half``, ``none`` or explicit ``(mean, std)``.
        image_size: the side the model expects (default 299 for Inception-v3, else None = the data's).
        transform_input: torchvision Inception-v3 and GoogLeNet only: whether the model re-scales its
            ImageNet-normalised input to the (x − 0.5)/0.5 range its Google weights were trained on.
            torchvision switches it on whenever the model is built with pretrained weights — every
            checkpoint fine-tuned from ImageNet, the CYBORG authors' included — but the flag is not
            in the state_dict. None (default): on, as for a model fine-tuned from ImageNet; pass
            False for one trained from scratch (torchvision's default without weights).

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable file, an unknown architecture or
            normalisation, or weights that do not fit (the message names the file and the first mismatches).
    """
    path = Path(path)
    if isinstance(normalize, str):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"`normalize` must be one of {list(NORMALIZATIONS)} or (mean, std), got {normalize!r}")
        chosen = NORMALIZATIONS[normalize]
    else:
        chosen = (tuple(float(v) for v in normalize[0]), tuple(float(v) for v in normalize[1]))
    state = read_state_dict(path)
    reasons = []
    for build in _builders(arch):
        model, reason = _fitted(build, state, num_classes, path)
        if model is not None:
            break
        reasons.append(reason)
    else:
        raise ValueError("; ".join(reasons))  # torchvision's, then timm's model of that name
    if hasattr(model, "transform_input"):  # torchvision's Inception3 (and GoogLeNet)
        model.transform_input = True if transform_input is None else transform_input
    mean, std = chosen if chosen is not None else (None, None)
    return NormalizedModel(model, mean, std, image_size or _DEFAULT_SIZES.get(arch.rpartition(":")[2])).eval()
