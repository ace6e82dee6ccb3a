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

from salience_lib.models.checkpoints import unwrap_model
from salience_lib.models.runs import MODEL_FILE, SIDECAR_FILE, find_runs, load_model, read_sidecar
from salience_lib.runtime.files import file_sha256, json_sha256

__all__ = ["MODELS_FILE_FIELDS", "Models", "Subject", "subjects_from", "subjects_from_models_file"]


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
        inputs: the files and folders it is read from, each with what to call it in a message (a
            report refuses an output that would overwrite one of them).
    """

    name: str
    recipe: str
    info: dict[str, Any]
    load: Callable[[torch.device], nn.Module]
    fingerprint: Callable[[], str]
    image_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[tuple[str, Path], ...] = ()


def _weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers (names, shapes, dtypes and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        cpu = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(cpu.shape)}:{cpu.dtype}".encode())
        digest.update(cpu.reshape(-1).view(torch.uint8).numpy().tobytes() if cpu.numel() else b"")  # 0-d too
    return digest.hexdigest()


def _from_module(name: str, module: nn.Module) -> Subject:
    if not isinstance(module, nn.Module):
        raise TypeError(f"model {name!r}: expected an nn.Module, got {type(module).__name__}")
    recipe, _, seed = name.rpartition("/")
    recipe = recipe or name

    def load(device: torch.device) -> nn.Module:
        return module.to(device).eval()

    info = {"recipe": recipe, "seed": seed if recipe != name else None, "module": type(module).__name__}
    bare = unwrap_model(module)  # DataParallel / torch.compile: the wrapped model's size and weights
    size = getattr(bare, "input_size", None)  # a load_checkpoint model knows the side it expects
    return Subject(name, recipe, info, load, lambda: _weights_fingerprint(bare), size)


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

    return Subject(
        run_dir.name,
        recipe,
        info,
        load,
        lambda: file_sha256(run_dir / MODEL_FILE),
        side.get("image_size"),
        inputs=((f"the run folder of {run_dir.name}", run_dir),),
    )


Models = Mapping[str, nn.Module] | Sequence[str | os.PathLike[str]] | str | os.PathLike[str]


MODELS_FILE_FIELDS = ("name", "arch", "path", "normalize", "image_size", "num_classes")
"""Columns of a models file (the first three required): one checkpoint per line, ``name`` = ``RECIPE/SEED``."""


def _checkpoint_subject(row: dict[str, str], where: str, models_file: Path) -> Subject:
    from salience_lib.models.checkpoints import load_checkpoint

    name, arch, raw_path = (row.get(k, "").strip() for k in ("name", "arch", "path"))
    if not name or not arch or not raw_path:
        raise ValueError(f"{where}: name, arch and path are required, got {row}")
    path = Path(raw_path) if Path(raw_path).is_absolute() else models_file.parent / raw_path
    if not path.is_file():
        raise FileNotFoundError(f"{where}: checkpoint {path} not found")
    normalize = (row.get("normalize") or "imagenet").strip()
    if ";" in normalize:  # explicit "m1 m2 m3;s1 s2 s3" (spaces or commas between channels)
        mean, _, std = normalize.replace(",", " ").partition(";")
        try:
            normalize = (tuple(map(float, mean.split())), tuple(map(float, std.split())))
        except ValueError as err:
            allowed = "imagenet, half, none or 'mean;std'"
            raise ValueError(f"{where}: normalize must be {allowed}, got {row['normalize']!r}") from err
    try:
        size = int(row["image_size"]) if (row.get("image_size") or "").strip() else None
        classes = int(row["num_classes"]) if (row.get("num_classes") or "").strip() else 2
    except ValueError as err:
        raise ValueError(f"{where}: image_size and num_classes must be integers: {err}") from err
    recipe, _, seed = name.rpartition("/")
    recipe = recipe or name

    def load(device: torch.device) -> nn.Module:
        try:
            model = load_checkpoint(path, arch, num_classes=classes, normalize=normalize, image_size=size)
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"{where}: {err}") from err
        return model.to(device).eval()

    info = {"checkpoint": str(path), "arch": arch, "recipe": recipe, "seed": seed or None, "loss": recipe}
    default_size = 299 if arch == "inception_v3" else None
    inputs = (("the models file", models_file), (f"the checkpoint of {name}", path))
    return Subject(name, recipe, info, load, lambda: file_sha256(path), size or default_size, inputs=inputs)


def subjects_from_models_file(path: str | os.PathLike[str]) -> list[Subject]:
    """Subjects of a models file: a CSV with the header :data:`MODELS_FILE_FIELDS` (the first three required).

    Paths are absolute or relative to the file's folder. Checkpoints load lazily with
    :func:`salience_lib.models.checkpoints.load_checkpoint`.

    Raises:
        FileNotFoundError, ValueError: a missing file, header or checkpoint, a bad value (names file and line).
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"models file {path} not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [f for f in MODELS_FILE_FIELDS[:3] if f not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: the header must name {', '.join(MODELS_FILE_FIELDS)} (missing {missing})")
        rows = [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
    if not rows:
        raise ValueError(f"{path}: no checkpoint listed")
    subjects = [_checkpoint_subject(row, f"{path}, line {line}", path) for line, row in rows]
    names = [s.name for s in subjects]
    if len(set(names)) < len(names):
        raise ValueError(f"{path}: model names must be unique, got {sorted(names)}")
    return subjects


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
