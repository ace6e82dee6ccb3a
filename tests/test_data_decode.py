"""Tests of salience_lib.data.decode: image and annotation decoding, and errors naming file and CSV line."""

from __future__ import annotations

import re
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
