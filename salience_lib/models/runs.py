"""The run-folder format: a trained model's checkpoint and its JSON sidecar, written and read here only.

A run lives in ``<runs root>/<loss>-<arch>-s<seed>-<recipe hash[:8]>/`` (:func:`run_name`):

- ``model.pt`` (:data:`MODEL_FILE`): the final ``state_dict``, CPU tensors, saved with ``torch.save``;
- ``model.json`` (:data:`SIDECAR_FILE`): the sidecar — ``format``, ``arch``, ``loss``, ``alpha``, ``seed``,
  ``image_size``, ``classes``, ``data_hash``, ``recipe_hash``, ``config``, ``epoch``, ``epochs``,
  ``complete``, ``metrics``, per-epoch ``history``, ``device``, library and torch versions;
- ``resume.pt`` (:data:`RESUME_FILE`): the training state of an interrupted run (see
  :mod:`salience_lib.training.loop`), removed once the run is complete.

Every file is written atomically (:func:`salience_lib.runtime.files.write_atomic`: a temp file in the same
folder, then ``os.replace``), so a reader sees the old file or the new one, never a partial one; the
checkpoint is written before the sidecar that declares the run complete. Checkpoints are read back with
``torch.load(..., weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salience_lib.data import dataset_hash
from salience_lib.models.builders import SalienceClassifier, build_model
from salience_lib.runtime.files import json_dumps, json_safe, write_atomic

__all__ = [
    "CLASSES",
    "MODEL_FILE",
    "RESUME_FILE",
    "SIDECAR_FILE",
    "SIDECAR_FORMAT",
    "cpu_state",
    "find_runs",
    "load_model",
    "read_sidecar",
    "read_tensors",
    "run_name",
    "save_checkpoint",
    "write_sidecar",
]

MODEL_FILE = "model.pt"
SIDECAR_FILE = "model.json"
RESUME_FILE = "resume.pt"
CLASSES = ("Real", "Synthetic")
"""Class names by output index: 0 = Real, 1 = Synthetic."""
SIDECAR_FORMAT = 1
"""Value of the sidecar's ``format`` key; bump when its meaning changes."""
# Keys every reader of a sidecar relies on; a sidecar without one of them is refused.
_REQUIRED_KEYS = ("arch", "loss", "seed", "image_size", "classes", "complete")


def run_name(loss: str, arch: str, seed: int, recipe_hash: str) -> str:
    """Folder name of a run: ``<loss>-<arch>-s<seed>-<recipe hash[:8]>``."""
    return f"{loss}-{arch}-s{seed}-{recipe_hash[:8]}"


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s ``state_dict`` as detached, contiguous CPU tensors (what a checkpoint holds)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (a ``state_dict``, or a resume state); returns the path."""
    return write_atomic(path, lambda f: torch.save(obj, f))


def write_sidecar(run_dir: str | os.PathLike[str], sidecar: dict[str, Any]) -> Path:
    """Write ``sidecar`` as ``run_dir/model.json`` atomically; non-finite floats become ``null``."""
    return write_atomic(Path(run_dir) / SIDECAR_FILE, json_dumps(json_safe(sidecar)))


def read_sidecar(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``run_dir``, or ``None`` when the folder has no ``model.json``.

    Raises:
        ValueError: the file is not valid JSON, not a JSON object, or lacks a key every reader needs
            (``arch``, ``loss``, ``seed``, ``image_size``, ``classes``, ``complete``); the message names
            the file.
    """
    path = Path(run_dir) / SIDECAR_FILE
    if not path.is_file():
        return None
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"corrupt sidecar {path}: {err}") from err
    if not isinstance(side, dict):
        raise ValueError(f"corrupt sidecar {path}: expected a JSON object, got {type(side).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in side]
    if missing:
        raise ValueError(f"incomplete sidecar {path}: missing {', '.join(missing)}")
    return side


def read_tensors(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with every failure as one clear error.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated, corrupt, or a pickle that is more than tensors and
            plain containers (``weights_only`` refuses it); the message names ``what`` and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            raise ValueError(
                f"{what} {path} holds a pickled {refused.group(1)}, not only tensors; weights_only=True refuses "
                "to load it (save a state_dict)"
            ) from err
        raise ValueError(f"corrupt or truncated {what} {path} (not a torch.save file)") from err
    except Exception as err:  # a truncated zip (RuntimeError), an empty file (EOFError), ...
        raise ValueError(f"corrupt or truncated {what} {path} ({type(err).__name__}: {_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), "")


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SalienceClassifier, dict]:
    """Rebuild a trained model from its run folder, in eval mode on ``device``.

    The architecture comes from the sidecar; the weights from ``model.pt`` with
    ``torch.load(..., weights_only=True)``.

    Returns:
        ``(model, sidecar)`` with the sidecar dict of ``model.json``.

    Raises:
        FileNotFoundError: no sidecar or checkpoint in ``run_dir``.
        ValueError: the run is not complete, its sidecar is corrupt (see :func:`read_sidecar`), or its
            checkpoint is truncated, corrupt or does not fit the sidecar's architecture (names the file).
    """
    run_dir = Path(run_dir)
    side = read_sidecar(run_dir)
    if side is None:
        raise FileNotFoundError(f"no {SIDECAR_FILE} in {run_dir}")
    if not side.get("complete"):
        raise ValueError(f"run {run_dir} is not complete (epoch {side.get('epoch')} of {side.get('epochs')})")
    model = build_model(side["arch"], len(side["classes"]), image_size=side["image_size"])
    state = read_tensors(run_dir / MODEL_FILE)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:  # wrong keys or shapes, or not a state_dict
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"checkpoint {run_dir / MODEL_FILE} does not fit {side['arch']} ({first})") from err
    return model.to(device).eval(), side


def find_runs(
    runs_root: str | Path, loss: str | None = None, *, arch: str | None = None, data: str | Path | None = None
) -> list[Path]:
    """Complete run folders directly under ``runs_root`` (sorted), optionally filtered.

    A run is complete when its sidecar says so and its checkpoint exists.

    Args:
        loss, arch: keep runs of this loss / architecture.
        data: keep runs trained on this data set as it is now (same
            :func:`salience_lib.data.dataset_hash`), so that runs left over from an earlier version of the
            data are not mixed in.

    Raises:
        ValueError: a sub-folder's sidecar is corrupt (see :func:`read_sidecar`).
    """
    root = Path(runs_root)
    if not root.is_dir():
        return []
    wanted_hash = dataset_hash(data) if data is not None else None
    found = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        side = read_sidecar(run_dir)
        if not side or not side.get("complete") or not (run_dir / MODEL_FILE).is_file():
            continue
        if wanted_hash is not None and side.get("data_hash") != wanted_hash:
            continue
        if (loss is None or side.get("loss") == loss) and (arch is None or side.get("arch") == arch):
            found.append(run_dir)
    return found
