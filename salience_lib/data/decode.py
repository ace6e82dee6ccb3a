"""Opening and decoding image and annotation files to tensors, with size checks that name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__: list[str] = []  # helpers of salience_lib.data.datasets; nothing public

_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

Size = tuple[int, int]


def _parse_size(image_size: int | Sequence[int] | None) -> Size | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"`image_size` must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def _open(path: Path, where: str) -> Image.Image:
    """Open and fully decode an image; any failure names the file and where it was listed."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: file {path} not found") from exc
    except _READ_ERRORS as exc:
        raise ValueError(f"{where}: cannot read image {path}: {exc}") from exc


def _header_size(path: Path, where: str) -> Size:
    """``(height, width)`` from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except _READ_ERRORS as exc:
        raise ValueError(f"{where}: cannot read image {path}: {exc}") from exc
    return height, width


def _check_size(img: Image.Image, expected: Size, where: str, what: str, reference: str) -> None:
    if img.size != (expected[1], expected[0]):
        raise ValueError(
            f"{where}: image {what!r} is {img.size[0]}x{img.size[1]} (WxH) but {reference!r} is "
            f"{expected[1]}x{expected[0]}; pass image_size= to resize"
        )


def _rgb_tensor(img: Image.Image, size: Size | None) -> torch.Tensor:
    img = img.convert("RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _gray_tensor(img: Image.Image, size: Size, resample: int = Image.BILINEAR) -> torch.Tensor:
    """A one-channel map as float32 (H, W) in [0, 1]: 8-bit / 255, 16-bit / 65535, others / their max."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        scale = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / scale, 0.0, 1.0).astype(np.float32), mode="F")
    else:
        img = img.convert("L")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), resample)
    arr = np.array(img, dtype=np.float32)  # a writable copy: clamp_ works in place
    return torch.from_numpy(arr if img.mode == "F" else arr / 255.0).clamp_(0.0, 1.0)
