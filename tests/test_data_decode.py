"""Tests of salience_lib.data.decode: image and annotation decoding, and errors naming file and CSV line."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from salience_lib.data import CsvImageDataset
from salience_lib.data.decode import _gray_tensor, _rgb_tensor

SIZE = 32


def test_rgb_tensor_converts_any_mode_to_three_channels_in_unit_range() -> None:
    grey = Image.fromarray(np.full((4, 6), 255, np.uint8))
    image = _rgb_tensor(grey, None)
    assert image.shape == (3, 4, 6) and image.dtype == torch.float32 and torch.all(image == 1.0)
    assert _rgb_tensor(grey, (8, 5)).shape == (3, 8, 5)


def test_gray_tensor_scales_8_and_16_bit_maps() -> None:
    eight = Image.fromarray(np.array([[0, 51, 255]], np.uint8))
    torch.testing.assert_close(_gray_tensor(eight, (1, 3)), torch.tensor([[0.0, 0.2, 1.0]]))
    sixteen = Image.fromarray(np.array([[0, 13107, 65535]], np.uint16))
    torch.testing.assert_close(_gray_tensor(sixteen, (1, 3)), torch.tensor([[0.0, 0.2, 1.0]]))


def test_unreadable_image_fails_on_read_naming_file_and_line(root: Path) -> None:
    data = CsvImageDataset(root, "train", image_size=SIZE)  # construction stays cheap: no decoding
    line, path = data.lines[0], data.paths[0]
    (root / path).write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=rf"dataset\.csv, line {line}: cannot read image .*{re.escape(path)}"):
        data[0]


def test_truncated_image(root: Path) -> None:
    data = CsvImageDataset(root, "train")
    line, path = data.lines[1], data.paths[1]
    payload = (root / path).read_bytes()
    (root / path).write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match=rf"line {line}: cannot read image .*{re.escape(path)}"):
        data[1]
    assert data[0][0].shape == (3, SIZE, SIZE)


def test_size_mismatch_needs_image_size(root: Path) -> None:
    data = CsvImageDataset(root, "train")
    Image.new("RGB", (40, 30)).save(root / data.paths[2])
    with pytest.raises(ValueError, match=rf"line {data.lines[2]}: image '.*' is 40x30 \(WxH\) but .* is 32x32"):
        data[2]
    assert CsvImageDataset(root, "train", image_size=SIZE)[2][0].shape == (3, SIZE, SIZE)


def test_bad_image_size_argument(generated: Path) -> None:
    with pytest.raises(ValueError, match="image_size"):
        CsvImageDataset(generated, "train", image_size=(0, 32))


# ------------------------------------------------------------------- image modes (SPEC §9)


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grey ``(H, W)``, RGB ``(H, W, 3)``), written by hand: Pillow cannot write 48-bit PNGs."""
    height, width = arr.shape[:2]
    color_type = {2: 0, 3: 2}[arr.ndim]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _reopened(payload: bytes) -> Image.Image:
    with Image.open(io.BytesIO(payload)) as img:
        img.load()
        return img.copy()


def test_16bit_image_is_scaled_not_clipped() -> None:
    values = np.array([[0, 13107, 65535]], np.uint16)
    img = _reopened(_png16(values))
    assert img.mode == "I;16"
    expected = torch.tensor([[0.0, 0.2, 1.0]]).expand(3, -1, -1)
    torch.testing.assert_close(_rgb_tensor(img, None), expected)
    torch.testing.assert_close(_gray_tensor(img, (1, 3)), expected[0])


def test_16bit_image_in_a_data_set_keeps_its_range(root: Path) -> None:
    data = CsvImageDataset(root, "train")
    values = np.full((SIZE, SIZE), 13107, np.uint16)
    values[0, 0] = 65535
    (root / data.paths[0]).write_bytes(_png16(values))
    image = data[0][0]
    assert image.shape == (3, SIZE, SIZE)
    assert float(image[1, 5, 5]) == pytest.approx(0.2) and float(image[2, 0, 0]) == pytest.approx(1.0)
    resized = CsvImageDataset(root, "train", image_size=8)[0][0]
    assert float(resized[0, 7, 7]) == pytest.approx(0.2)  # bilinear on the scaled values, not on 8-bit white


@pytest.mark.parametrize("mode", ["I;16B", "I;16L", "I"])
def test_other_16bit_modes_are_scaled_by_65535(mode: str) -> None:
    values = np.array([[0, 13107, 65535]], np.uint16)
    img = _reopened(_png16(values))
    img = img.convert("I") if mode == "I" else Image.frombytes(mode, (3, 1), values.astype(
        ">u2" if mode == "I;16B" else "<u2").tobytes())
    assert img.mode == mode
    torch.testing.assert_close(_rgb_tensor(img, None)[0], torch.tensor([[0.0, 0.2, 1.0]]))


def test_32bit_image_of_unknown_range_or_float_outside_unit_range_is_refused() -> None:
    deep = Image.fromarray(np.array([[0, 70000]], np.int32))
    assert deep.mode == "I"
    with pytest.raises(ValueError, match=r"x\.csv, line 3: 32-bit integer image with values 0\.\.70000"):
        _rgb_tensor(deep, None, "x.csv, line 3")
    floats = Image.fromarray(np.array([[0.0, 255.0]], np.float32))
    with pytest.raises(ValueError, match=r"x\.csv, line 4: float image with values outside \[0, 1\]"):
        _rgb_tensor(floats, None, "x.csv, line 4")
    inside = Image.fromarray(np.array([[0.0, 0.25]], np.float32))
    torch.testing.assert_close(_rgb_tensor(inside, None)[2], torch.tensor([[0.0, 0.25]]))


def test_48bit_rgb_png_keeps_its_range() -> None:
    values = np.array([[[0, 32768, 65535], [65535, 0, 0]]], np.uint16)
    img = _reopened(_png16(values))
    image = _rgb_tensor(img, None)
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    torch.testing.assert_close(image[:, 0, 1], torch.tensor([1.0, 0.0, 0.0]))


def test_greyscale_palette_alpha_and_cmyk_are_converted_with_correct_values() -> None:
    grey = Image.fromarray(np.array([[0, 51]], np.uint8))
    torch.testing.assert_close(_rgb_tensor(grey, None), torch.tensor([[[0.0, 0.2]]]).expand(3, -1, -1))
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 0), 1)
    torch.testing.assert_close(_rgb_tensor(palette, None)[:, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    rgba = Image.new("RGBA", (1, 1), (51, 102, 255, 0))  # alpha is dropped: the colour as stored
    torch.testing.assert_close(_rgb_tensor(rgba, None)[:, 0, 0], torch.tensor([0.2, 0.4, 1.0]))
    la = Image.new("LA", (1, 1), (51, 10))
    torch.testing.assert_close(_rgb_tensor(la, None)[:, 0, 0], torch.full((3,), 0.2))
    cmyk = Image.new("CMYK", (2, 1), (255, 0, 0, 0))  # pure cyan, then pure black
    cmyk.putpixel((1, 0), (0, 0, 0, 255))
    torch.testing.assert_close(_rgb_tensor(cmyk, None)[:, 0], torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))
    bilevel = Image.new("1", (1, 1), 1)
    assert torch.all(_rgb_tensor(bilevel, None) == 1.0)


def test_gray_tensor_of_a_32bit_int_map_is_not_renormalised_by_its_maximum() -> None:
    deep = Image.fromarray(np.array([[0, 13107]], np.int32))
    torch.testing.assert_close(_gray_tensor(deep, (1, 2)), torch.tensor([[0.0, 0.2]]))
