"""The "paper" protocol's guided blur against the authors' code (Crum et al. 2023, Explain2Me).

:func:`authors_blur_image` is their ``blur_image`` (``Measures/Degradation/main.py``) written again here
in numpy/scipy, as they run it: per image, per colour channel, one ``scipy.ndimage.gaussian_filter`` of
the whole ``uint8`` channel per level present. Their map is torchcam's min–max map truncated to 8 bits
(``to_pil_image(...).convert("L")``), resized by PIL's bicubic to the input side, and inverted
(``255 − cam``) for mode "object" (our ``salient``) before the blur smooths it. Their constants are
pixels at 224 px; at 64 and 112 px both sides scale them by ``side/224`` (our generalisation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from salience_lib.blur import blur_levels, upsample_maps
from salience_lib.maps import minmax_normalise, resize_maps, to_uint8
from salience_lib.measures.degradation import level_sigmas, salience_guided_blur
from salience_lib.protocol import PAPER


def authors_blur_image(channel: np.ndarray, cam: np.ndarray, scale: float) -> np.ndarray:
    """Their ``blur_image(im, stacked_img, max_blur=10, curved=True)`` of one ``uint8`` channel."""
    blurred = channel.copy()
    smoothed = ndimage.gaussian_filter(cam, 5 * scale)  # uint8 in, uint8 out
    with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero map: 0 / 0
        scaled = smoothed / (smoothed.max() / 10)
    scaled = np.around(scaled, decimals=1)
    for value in np.unique(scaled):
        amount = round(10 - value, 1)
        amount = (1 / (10**3)) * (amount**4)  # get_curve(10, amount, order=4)
        if amount != 0:
            where = np.where(scaled == value)
            blurred[where] = ndimage.gaussian_filter(channel, amount * scale)[where]
    return blurred


def authors_degrade(image: np.ndarray, cam: np.ndarray, mode: str, scale: float) -> np.ndarray:
    """Their per-channel loop: ``(3, H, W)`` uint8 image, ``(H, W)`` uint8 cam at the input size."""
    stacked = cam if mode == "background" else 255 - cam  # "object": inverted before smoothing
    return np.stack([authors_blur_image(channel, stacked, scale) for channel in image])


def authors_cam(maps: torch.Tensor, side: int) -> np.ndarray:
    """Their "upscaled" cams: the min–max map truncated to 8 bits, PIL bicubic to ``side`` (``(B, side, side)``)."""
    small = to_uint8(minmax_normalise(maps)).numpy()
    return np.stack([np.array(Image.fromarray(m).resize((side, side), resample=Image.BICUBIC)) for m in small])


def _images(batch: int, side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, 3, side, side)).astype(np.uint8)


def _compare(images: np.ndarray, maps: torch.Tensor, mode: str, exact: bool = False) -> np.ndarray:
    """``|ours − theirs|`` in grey levels, ``(B, 3, H, W)``."""
    side = images.shape[-1]
    cams = authors_cam(maps, side)
    theirs = np.stack([authors_degrade(i, c, mode, side / 224) for i, c in zip(images, cams, strict=True)])
    unit = torch.from_numpy(images).float() / 255
    ours = salience_guided_blur(unit, maps, mode, protocol="paper", exact=exact)
    return np.abs(torch.round(ours * 255).numpy().astype(int) - theirs.astype(int))


@pytest.mark.parametrize("side", [64, 112])
@pytest.mark.parametrize("mode", ["background", "salient"])
def test_paper_blur_equals_the_authors_blur_image(side, mode):
    """Random 8-bit images and random maps already at the input size (PIL's resize is then a copy)."""
    images = _images(3, side, seed=side)
    maps = torch.rand(3, side, side, generator=torch.Generator().manual_seed(side + 1))
    diff = _compare(images, maps, mode)
    assert (diff <= 1).mean() >= 0.99, "within 1/255 on at least 99% of the pixels"
    assert (diff == 0).mean() > 0.99 and diff.max() <= 2
    assert (_compare(images, maps, mode, exact=True) == 0).all(), "exact=True: every pixel"


@pytest.mark.parametrize("side", [64, 112])
@pytest.mark.parametrize("mode", ["background", "salient"])
def test_paper_blur_of_native_maps_upsampled_by_pil_bicubic(side, mode):
    """7×7 maps, as Grad-CAM's of a ResNet: the guide is PIL's bicubic of the 8-bit map, as their cam."""
    images = _images(2, side, seed=side + 2)
    maps = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(side + 3)) ** 2
    up = torch.round(upsample_maps(to_uint8(minmax_normalise(maps)).float() / 255, (side, side), "pil_bicubic") * 255)
    assert np.array_equal(up.numpy().astype(np.uint8), authors_cam(maps, side)), "PIL's bicubic, every pixel"
    diff = _compare(images, maps, mode)
    assert (diff <= 1).mean() >= 0.99 and (diff == 0).mean() > 0.99
    assert (_compare(images, maps, mode, exact=True) == 0).all()


@pytest.mark.parametrize("mode", ["background", "salient"])
def test_zero_map_blurs_nothing_as_in_their_code(mode):
    """Their code divides 0 by 0: NaN levels match no pixel (and scipy skips a NaN σ), so the image is
    returned as is — here without the NaN: the top level, σ = 0."""
    images = _images(2, 64, seed=5)
    maps = torch.zeros(2, 7, 7)
    diff = _compare(images, maps, mode)
    assert (diff == 0).all()
    ours = salience_guided_blur(torch.from_numpy(images).float() / 255, maps, mode, protocol="paper")
    assert torch.equal(torch.round(ours * 255).to(torch.uint8), torch.from_numpy(images))


def test_paper_levels_are_theirs_and_the_protocol_name_is_not_read():
    side = 112
    maps = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(9))
    cams = authors_cam(maps, side)
    levels = blur_levels(maps, (side, side), 5 * side / 224, upsample="pil_bicubic", rescale="max",
                         border="reflect", bits=8)  # fmt: skip
    for cam, ours in zip(cams, levels, strict=True):
        smoothed = ndimage.gaussian_filter(cam, 5 * side / 224)
        assert np.array_equal(ours.numpy(), np.rint(np.around(smoothed / (smoothed.max() / 10), 1) * 10))
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(10))
    renamed = dataclasses.replace(PAPER, name="mine")
    assert torch.equal(salience_guided_blur(images, maps, protocol=renamed), salience_guided_blur(images, maps))


@pytest.mark.parametrize("mode", ["background", "salient"])
def test_refined_blur_is_unchanged(mode):
    """"refined" is this project's blur as before: bilinear float map, replicate border, min–max levels,
    mode salient by ``10 − s`` — the per-level scipy loop with ``mode="nearest"`` on float images."""
    side, scale = 48, 48 / 224
    generator = torch.Generator().manual_seed(11)
    images = torch.rand(2, 3, side, side, generator=generator, dtype=torch.float64)
    maps = torch.rand(2, 6, 6, generator=generator)
    ours = salience_guided_blur(images, maps, mode, protocol="refined").numpy()
    up = resize_maps(maps, (side, side)).numpy()
    sigmas = level_sigmas(scale).numpy()
    for b in range(2):
        smoothed = ndimage.gaussian_filter(up[b].astype(np.float64), 5 * scale, mode="nearest")
        levels = np.round((smoothed - smoothed.min()) / np.ptp(smoothed) * 100).astype(int)
        levels = 100 - levels if mode == "salient" else levels
        expected = images[b].numpy().copy()
        for level in np.unique(levels):
            where = levels == level
            blurred = ndimage.gaussian_filter(images[b].numpy(), (0, sigmas[level], sigmas[level]), mode="nearest")
            expected[:, where] = blurred[:, where]
        assert np.abs(ours[b] - expected).max() < 1e-6
