"""Tests for salience_lib.protocol: each "paper" piece against the authors' steps, re-implemented here
with their libraries (numpy, skimage, PIL, torchvision), per image, as their scripts do it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.measure import shannon_entropy
from skimage.metrics import structural_similarity
from skimage.util import random_noise
from torchvision.transforms.functional import to_pil_image

from salience_lib.engine.settings import EngineSettings, SettingsError
from salience_lib.imaging import salt_and_pepper
from salience_lib.inference import get_score
from salience_lib.maps import quantise, to_uint8
from salience_lib.measures.entropy import salience_entropy
from salience_lib.measures.stability import pairwise_similarity
from salience_lib.protocol import PAPER, PAPER_TRANSFORMS, PROTOCOLS, REFINED, Protocol, get_protocol
from salience_lib.runtime.distributed import indexed_salt_and_pepper
from salience_lib.similarity import ssim
from salience_lib.transforms import get_transform


def test_registry_and_description() -> None:
    assert set(PROTOCOLS) == {"paper", "refined"} and get_protocol("paper") is PAPER
    assert get_protocol(REFINED) is REFINED
    with pytest.raises(ValueError, match=r"--protocol.*'paperr'.*paper"):
        get_protocol("paperr")
    described = PAPER.describe()
    assert described["transforms"] == list(PAPER_TRANSFORMS) and described["map_bits"] == 8
    different = {k for k, v in PAPER.describe().items() if REFINED.describe()[k] != v}
    assert different >= {"map_bits", "noise", "score", "transforms", "blur_levels", "blur_border", "salient_mode"}
    assert all(name in described for name in PAPER.assumed)


def test_engine_settings_default_to_paper_and_key_every_step() -> None:
    paper, refined = EngineSettings(), EngineSettings(protocol="refined")
    assert paper.protocol == "paper" and paper.chosen_protocol is PAPER
    assert paper.measured()["protocol_steps"] == PAPER.describe()
    assert paper.measured() != refined.measured()  # the protocol is part of every cache key
    with pytest.raises(SettingsError, match="--protocol"):
        EngineSettings(protocol="ours")


def test_protocol_is_frozen() -> None:
    with pytest.raises(AttributeError):
        PAPER.map_bits = None  # type: ignore[misc]
    assert isinstance(PAPER, Protocol)


# ---------------------------------------------------------------------------------------------
# maps: 8 bits by truncation, as torchvision's to_pil_image saves them


def test_to_uint8_equals_to_pil_image(generator: torch.Generator) -> None:
    maps = torch.rand(6, 7, 7, generator=generator)
    maps[0] = 1.0
    maps[1, 0, 0] = 0.99999
    theirs = np.stack([np.array(to_pil_image(m).convert("L")) for m in maps])
    np.testing.assert_array_equal(to_uint8(maps).numpy(), theirs)
    np.testing.assert_array_equal((quantise(maps, 8) * 255).round().byte().numpy(), theirs)


def test_quantise_keeps_nan_for_the_checks() -> None:
    maps = torch.tensor([[[0.5, float("nan")]]])
    assert torch.isnan(quantise(maps, 8)[0, 0, 1]) and quantise(maps, None) is maps
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(maps)


# ---------------------------------------------------------------------------------------------
# (a) entropy: skimage's shannon_entropy of the 8-bit map, divided by log2 49 for 7×7 maps


def test_histogram_entropy_of_8bit_maps_equals_the_authors(generator: torch.Generator) -> None:
    maps = torch.rand(16, 7, 7, generator=generator) ** 3
    maps[0] = 0.0
    ours = salience_entropy(quantise(maps, 8), "histogram")
    theirs = [shannon_entropy(np.array(to_pil_image(m).convert("L")) / 255) / math.log2(49) for m in maps]
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6)
    assert math.isclose(math.log2(49), 5.6147, abs_tol=1e-4)  # their notebook's 5.614


# ---------------------------------------------------------------------------------------------
# (d) stability: skimage's SSIM (defaults) of two 7×7 uint8 maps — one window, data range 255


def test_stability_ssim_of_7x7_uint8_maps_equals_the_authors(generator: torch.Generator) -> None:
    maps = torch.rand(3, 5, 7, 7, generator=generator)  # 3 runs × 5 images
    matrix = pairwise_similarity(quantise(maps.flatten(0, 1), 8).view(3, 5, 7, 7), ssim)  # (3, 3, 5)
    for i in range(5):
        for a, b in ((0, 1), (0, 2), (1, 2)):
            one, two = (np.array(to_pil_image(maps[r, i]).convert("L")) for r in (a, b))
            assert math.isclose(float(matrix[a, b, i]), structural_similarity(one, two), abs_tol=1e-5)


# ---------------------------------------------------------------------------------------------
# (b) noise: skimage's random_noise(mode="s&p"), every element independently


def _noise_statistics(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """Share of elements changed, share of pixels with all 3 channels changed, salt share."""
    changed = after != before
    return changed.mean(), changed.all(axis=-1).mean(), (after[changed] == 1).mean()


@pytest.mark.parametrize("amount", [0.05, 0.25, 0.75])
def test_per_channel_noise_has_the_statistics_of_skimage(amount: float) -> None:
    image = np.full((96, 96, 3), 0.5)
    theirs = _noise_statistics(image, random_noise(image, mode="s&p", amount=amount, rng=0))
    batch = torch.full((1, 3, 96, 96), 0.5)
    ours_torch = salt_and_pepper(batch, amount, torch.Generator().manual_seed(1), per_channel=True)
    indexed = indexed_salt_and_pepper(torch.tensor([7]), seed=3, per_channel=True)(batch, amount)
    for noisy in (ours_torch, indexed):
        ours = _noise_statistics(image, noisy[0].permute(1, 2, 0).double().numpy())
        n = image.size
        assert abs(ours[0] - amount) < 4 * math.sqrt(amount * (1 - amount) / n)
        assert abs(ours[0] - theirs[0]) < 8 * math.sqrt(amount * (1 - amount) / n)
        assert abs(ours[1] - amount**3) < 0.02 and abs(theirs[1] - amount**3) < 0.02  # not one draw per pixel
        assert abs(ours[2] - 0.5) < 0.05 and abs(theirs[2] - 0.5) < 0.05


def test_per_pixel_noise_is_grey_and_exact_in_count() -> None:
    batch = torch.full((2, 3, 32, 32), 0.5)
    noisy = salt_and_pepper(batch, 0.25, torch.Generator().manual_seed(0))
    changed = noisy != batch
    assert (changed.all(dim=1) == changed.any(dim=1)).all()  # whole pixels
    assert changed.any(dim=1).flatten(1).sum(dim=1).tolist() == [256, 256]


def test_indexed_per_channel_noise_depends_on_the_image_index_only() -> None:
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    whole = indexed_salt_and_pepper(torch.arange(4), 0, per_channel=True)(images, 0.1)
    half = indexed_salt_and_pepper(torch.arange(2, 4), 0, per_channel=True)(images[2:], 0.1)
    torch.testing.assert_close(whole[2:], half)
    assert torch.equal(indexed_salt_and_pepper(torch.arange(4), 0, per_channel=True)(images, 0.0), images)


# ---------------------------------------------------------------------------------------------
# the score: sigmoid of the logit of class 1 (their PAScore)


def test_sigmoid_synthetic_is_the_authors_pascore(generator: torch.Generator) -> None:
    logits = torch.randn(8, 2, generator=generator)
    score = get_score(PAPER.score)
    scores = score.scores(logits)
    targets = score.targets(scores)
    torch.testing.assert_close(scores.gather(1, targets[:, None])[:, 0], torch.sigmoid(logits)[:, 1])
    refined = get_score(REFINED.score)
    torch.testing.assert_close(refined.scores(logits), torch.softmax(logits, dim=1))
    assert torch.equal(refined.targets(refined.scores(logits)), logits.argmax(dim=1))
    one = torch.randn(8, 1, generator=generator)  # a one-logit detector: sigmoid(z) either way
    torch.testing.assert_close(score.scores(one)[:, 1], torch.sigmoid(one)[:, 0])


# ---------------------------------------------------------------------------------------------
# (c) the authors' 12 transforms: cv2 flips and rotations, 16-px shifts with BORDER_REPLICATE at 224


_THEIR_CROPS = {  # their Transformations notebook: [y0, y1, x0, x1] of the 16-px replicate-padded image
    "x-16_y-16": (32, 256, 32, 256), "x-16_y0": (16, 240, 32, 256), "x-16_y16": (0, 224, 32, 256),
    "x0_y-16": (32, 256, 16, 240), "x0_y16": (0, 224, 16, 240), "x16_y-16": (32, 256, 0, 224),
    "x16_y0": (16, 240, 0, 224), "x16_y16": (0, 224, 0, 224),
}  # fmt: skip


def test_paper_transforms_are_the_authors_twelve(generator: torch.Generator) -> None:
    image = torch.rand(1, 1, 224, 224, generator=generator)
    array = image[0, 0].numpy()
    padded = np.pad(array, 16, mode="edge")
    theirs = [padded[y0:y1, x0:x1] for y0, y1, x0, x1 in _THEIR_CROPS.values()]
    theirs += [array[:, ::-1], array[::-1, :], np.rot90(array, -1), np.rot90(array, 1)]
    ours = [get_transform(name)(image)[0][0, 0].numpy() for name in PAPER_TRANSFORMS]
    assert len(ours) == 12
    for mine in ours:  # the same set (the authors' names for directions differ from ours)
        assert sum(np.array_equal(mine, t) for t in theirs) == 1
    for t in theirs:
        assert sum(np.array_equal(mine, t) for mine in ours) == 1
