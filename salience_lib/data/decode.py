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


_SIXTEEN_BIT = 65535.0


def _high_depth(img: Image.Image, where: str) -> Image.Image | None:
    """A greyscale image of more than 8 bits as mode ``F`` in [0, 1]; None for every 8-bit mode.

    16-bit modes (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) and 32-bit integers (``I``, which Pillow
    gives for 16-bit files after some operations) are divided by 65535, their real range, so that a
    16-bit image is not clipped to white as ``convert("RGB")`` would; a 32-bit integer image with
    values outside 0–65535 has no known range and is refused. Float images (``F``) must already lie
    in [0, 1]. (Pillow reads 48- and 64-bit colour PNGs and TIFFs as 8-bit ``RGB``/``RGBA``, keeping
    the high byte, which is already the right range.)
    """
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img).astype(np.float32)
        if img.mode == "I" and arr.size and (arr.min() < 0 or arr.max() > _SIXTEEN_BIT):
            raise ValueError(
                f"{where}: 32-bit integer image with values {arr.min():.0f}..{arr.max():.0f}, outside 16-bit "
                "0..65535, so its range is unknown; save it as an 8- or 16-bit image"
            )
        return Image.fromarray(arr / _SIXTEEN_BIT)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all() or (arr.size and (arr.min() < 0 or arr.max() > 1)):
            raise ValueError(f"{where}: float image with values outside [0, 1] (or NaN/inf); save it as 8 or 16 bit")
        return img
    return None


def _resized(img: Image.Image, size: Size | None, resample: int = Image.BILINEAR) -> Image.Image:
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), resample)
    return img


def _rgb_tensor(img: Image.Image, size: Size | None, where: str = "image") -> torch.Tensor:
    """An image as float32 ``(3, H, W)`` in [0, 1], resized (bilinear) to ``size`` when given.

    8-bit modes go through ``convert("RGB")``: ``L`` and ``1`` are repeated into three channels, ``P``
    looks up its palette, ``LA``/``RGBA``/``PA`` drop alpha (the colour channels as stored, as the
    CYBORG authors' ``convert('RGB')`` does), ``CMYK`` and ``YCbCr`` use Pillow's conversion; 8-bit
    values are divided by 255. Deeper greyscale images are scaled by their range (:func:`_high_depth`).

    Raises:
        ValueError: a mode Pillow cannot convert to RGB, or a deep image of unknown range (naming ``where``).
    """
    grey = _high_depth(img, where)
    if grey is not None:
        arr = np.asarray(_resized(grey, size), dtype=np.float32)
        return torch.from_numpy(arr.clip(0.0, 1.0)).expand(3, -1, -1).contiguous()
    try:
        img = img.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"{where}: cannot convert image mode {img.mode!r} to RGB: {exc}") from exc
    img = _resized(img, size)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _gray_tensor(
    img: Image.Image, size: Size, resample: int = Image.BILINEAR, where: str = "map"
) -> torch.Tensor:
    """A one-channel map as float32 (H, W) in [0, 1]: 8-bit / 255, 16-bit / 65535 (:func:`_high_depth`).

    Colour maps are converted to grey (``convert("L")``).
    """
    deep = _high_depth(img, where)
    if deep is None:
        try:
            img = img.convert("L")
        except ValueError as exc:
            raise ValueError(f"{where}: cannot convert map mode {img.mode!r} to grey: {exc}") from exc
    img = _resized(deep if deep is not None else img, size, resample)
    arr = np.array(img, dtype=np.float32)  # a writable copy: clamp_ works in place
    return torch.from_numpy(arr if deep is not None else arr / 255.0).clamp_(0.0, 1.0)
