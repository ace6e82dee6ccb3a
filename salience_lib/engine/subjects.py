"""The models the engine measures: modules a caller passes, or the project's run folders.

Every model becomes a :class:`Subject`: its name (the report's key), its recipe (which runs are
compared by stability, d), what is known about it, and — loaded only while it is measured, so ten
ResNet-50s need not sit in memory together — the module with its Grad-CAM.

``models`` for :func:`salience_lib.evaluate` is a mapping ``"RECIPE/SEED" -> nn.Module`` (the part
before the last ``/`` is the recipe), a sequence of run folders, or one folder of runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salience_lib.models.runs import MODEL_FILE, SIDECAR_FILE, find_runs, load_model, read_sidecar
from salience_lib.runtime.files import file_sha256, json_sha256

__all__ = ["Models", "Subject", "subjects_from"]


@dataclass
class Subject:
    """One model to measure.

    Attributes:
        name: the report's key (``RECIPE/SEED``, or the run folder's name).
        recipe: runs of one recipe are compared by cross-run stability.
        info: identity written into the report (arch, loss, seed, run folder, ...).
        load: returns the module (images in [0, 1] → ``(B, K)`` logits) on a device, in eval mode.
        fingerprint: what a cache of this model's results is keyed by (its weights' content).
        image_size: the side it was trained at, if known.
    """

    name: str
    recipe: str
    info: dict[str, Any]
    load: Callable[[torch.device], nn.Module]
    fingerprint: Callable[[], str]
    image_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers (names, shapes, dtypes and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        cpu = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(cpu.shape)}:{cpu.dtype}".encode())
        digest.update(cpu.view(torch.uint8).numpy().tobytes() if cpu.numel() else b"")
    return digest.hexdigest()


def _from_module(name: str, module: nn.Module) -> Subject:
    if not isinstance(module, nn.Module):
        raise TypeError(f"model {name!r}: expected an nn.Module, got {type(module).__name__}")
    recipe, _, seed = name.rpartition("/")
    recipe = recipe or name

    def load(device: torch.device) -> nn.Module:
        return module.to(device).eval()

    info = {"recipe": recipe, "seed": seed if recipe != name else None, "module": type(module).__name__}
    size = getattr(module, "input_size", None)  # a load_checkpoint model knows the side it expects
    return Subject(name, recipe, info, load, lambda: _weights_fingerprint(module), size)


def _recipe_label(side: dict[str, Any], name: str) -> str:
    rhash = side.get("recipe_hash") or json_sha256(name)
    return f"{side.get('loss', 'unknown')}-{side.get('arch', 'unknown')}-{rhash[:8]}"


def _from_run(run_dir: Path) -> Subject:
    if not (run_dir / SIDECAR_FILE).is_file() or not (run_dir / MODEL_FILE).is_file():
        raise FileNotFoundError(f"run {run_dir}: no checkpoint ({MODEL_FILE} and {SIDECAR_FILE}) in that folder")
    side = read_sidecar(run_dir)
    assert side is not None
    if not side.get("complete"):
        raise ValueError(f"run {run_dir}: the run is not complete (still training or interrupted)")
    recipe = _recipe_label(side, run_dir.name)
    info = {"run": str(run_dir), **{k: side.get(k) for k in ("arch", "loss", "seed", "recipe_hash")}, "recipe": recipe}

    def load(device: torch.device) -> nn.Module:
        return load_model(run_dir, device)[0]

    return Subject(run_dir.name, recipe, info, load, lambda: file_sha256(run_dir / MODEL_FILE), side.get("image_size"))


Models = Mapping[str, nn.Module] | Sequence[str | os.PathLike[str]] | str | os.PathLike[str]


def subjects_from(models: Models) -> list[Subject]:
    """:class:`Subject` s of ``models`` (see the module docstring), names unique.

    Raises:
        ValueError, FileNotFoundError: no model, duplicate names, a missing or incomplete run.
    """
    if isinstance(models, Mapping):
        subjects = [_from_module(str(name), module) for name, module in models.items()]
    else:
        if isinstance(models, str | os.PathLike):
            root = Path(models)
            if not root.is_dir():
                raise FileNotFoundError(f"runs folder {root} not found")
            paths = find_runs(root) if not (root / SIDECAR_FILE).is_file() else [root]
            if not paths:
                raise FileNotFoundError(f"no complete run ({MODEL_FILE} + {SIDECAR_FILE}) under {root}")
        else:
            paths = [Path(p) for p in models]
        subjects = [_from_run(path) for path in paths]
    if not subjects:
        raise ValueError("no model to measure")
    names = [s.name for s in subjects]
    if len(set(names)) < len(names):
        raise ValueError(f"model names must be unique (they key the report), got {sorted(names)}")
    return subjects
