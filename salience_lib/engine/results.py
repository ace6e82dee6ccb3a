"""Turning accumulators into the report's JSON structure (plain numbers, lists and dicts).

Every number is a summary ``{mean, ci_low, ci_high, n, confidence}`` (95% percentile bootstrap over
images) unless said otherwise; the layout is documented in :mod:`salience_lib.report`.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import torch

from salience_lib import __version__
from salience_lib.runtime import distributed as dist_utils

__all__ = ["SCHEMA_VERSION", "assemble", "device_info", "plain", "versions"]

SCHEMA_VERSION = 2


def plain(obj: Any) -> Any:
    """``obj`` with summaries as dicts, tensors as numbers or lists, tuples as lists."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def versions() -> dict[str, str]:
    """Versions of the library and of what it ran on."""
    found = {}
    for name in ("torchvision", "torchmetrics", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return {"salience_lib": __version__, "torch": torch.__version__, "python": platform.python_version()} | found


def device_info(context: dist_utils.Context) -> dict[str, Any]:
    """Where the numbers were computed."""
    device = context.device
    return {
        "type": device.type,
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "world_size": context.world_size,
        "backend": ("nccl" if device.type == "cuda" else "gloo") if context.distributed else None,
        "torch_threads": torch.get_num_threads(),
    }


def assemble(
    settings: dict[str, Any],
    context: dist_utils.Context,
    data: dict[str, Any],
    models: dict[str, Any],
    cross: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The whole report: settings, versions, device, data, per-model results, recipes and baselines."""
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "versions": versions(),
        "device": device_info(context),
        "data": data,
        "seconds": round(seconds, 3),
        "models": models,
        **cross,
    }
