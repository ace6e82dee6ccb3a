"""Small models, explainers and fault injectors shared by the tests (not fixtures: plain, importable objects)."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv → ReLU → conv (the 4-D ``features``) → GAP → linear: CAM and Grad-CAM both apply."""

    def __init__(self, channels: int = 8, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


class MLP(nn.Module):
    """No 4-D feature map anywhere: layer-based salience must refuse it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class _RegionGate(nn.Module):
    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.region


class RegionTextureModel(nn.Module):
    """Decides only from the high-frequency energy inside a known region (top-left quadrant).

    logit_1 = 10 · mean over the region of (Laplacian of the grey image)², logit_0 = −logit_1:
    blurring the region lowers its score; blurring elsewhere cannot change it. The last 4-D module
    (Grad-CAM's target) is the gated energy map, so a faithful explainer lights up the region only.
    """

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False, padding_mode="replicate")
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.conv.weight.data.copy_(laplacian.view(1, 1, 3, 3))
        self.conv.weight.requires_grad_(False)
        self.square = _Square()
        self.gate = _RegionGate(region_mask(size)[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = self.gate(self.square(self.conv(x.mean(dim=1, keepdim=True))))
        score = energy.sum(dim=(1, 2, 3)) / self.gate.region.sum() * 10
        return torch.stack([-score, score], dim=1)


def region_mask(size: int = 32) -> torch.Tensor:
    """The region :class:`RegionTextureModel` looks at, ``(H, W)``."""
    mask = torch.zeros(size, size)
    mask[: size // 2, : size // 2] = 1
    return mask


def channel_mean(images: torch.Tensor) -> torch.Tensor:
    """A pointwise explainer: equivariant to every geometric transform."""
    return images.mean(dim=1)


def fixed_position(images: torch.Tensor) -> torch.Tensor:
    """A deliberately non-equivariant explainer: always the same off-centre blob, whatever the image."""
    batch, _, height, width = images.shape
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None, :]
    blob = torch.exp(-((ys - height * 0.25) ** 2 + (xs - width * 0.3) ** 2) / (2 * (height / 8) ** 2))
    return blob.expand(batch, height, width).clone()


def full_disk_for(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make flushing any temporary file of ``name`` (``.<name>.*``) fail with ENOSPC, as on a full disk.

    Patches ``os.fsync`` as :mod:`salience_lib.runtime.files` sees it; reads ``/proc/self/fd`` (Linux).
    """
    from salience_lib.runtime import files

    real = os.fsync

    def fsync(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
