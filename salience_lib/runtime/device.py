"""Device and mixed-precision (AMP) resolution — the one place that turns a name into a device or dtype."""

from __future__ import annotations

import torch

__all__ = ["AMP_DTYPES", "amp_dtype", "resolve_device"]

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtypes by name (``none`` = float32 throughout)."""


def amp_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """``none``/``None`` → None, ``bf16``/``fp16`` (or the dtypes themselves) → the autocast dtype.

    Raises:
        ValueError: any other value.
    """
    if name is None or (isinstance(name, torch.dtype) and name in AMP_DTYPES.values()):
        return name
    if isinstance(name, str) and name in AMP_DTYPES:
        return AMP_DTYPES[name]
    raise ValueError(f"`amp` must be one of {list(AMP_DTYPES)}, got {name!r}")


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``cuda`` → ``cuda:<local_rank>``.

    Raises:
        ValueError: an unknown device string, or a CUDA device requested without CUDA.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"`device` must be auto, cpu, cuda or cuda:<i>, got {device!r}") from err
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"`device` must be auto, cpu, cuda or cuda:<i>, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {device!r} requested but CUDA is not available; use --device cpu")
    return resolved
