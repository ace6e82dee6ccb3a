"""Tests for the engine's input checks (salience_lib.engine.step/run): NaN/inf and out-of-range images,
NaN weights and NaN logits are errors naming the model, the measure and the images — never scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from salience_lib.data.synthetic import generate_dataset
from salience_lib.engine import evaluate
from tests.helpers import TinyCNN

SIZE = 32


def _data(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _evaluate(models: dict[str, nn.Module], images: torch.Tensor, **options: object) -> dict:
    data = TensorDataset(images, torch.tensor([0, 1] * (images.shape[0] // 2)))
    return evaluate(models, data, batch_size=4, device="cpu", map_size=16, progress=False, **options)


class NanOnSalt(nn.Module):
    """TinyCNN whose logits turn NaN on any image with a pure-white pixel: only the salt-and-pepper passes."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCNN(8, 2, seed=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        salted = (x == 1.0).all(dim=1).flatten(1).any(dim=1)
        logits = self.inner(x)
        return torch.where(salted[:, None], torch.full_like(logits, float("nan")), logits)


class NanLogits(nn.Module):
    """Finite weights, NaN logits for every image (broken arithmetic, not broken weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCNN(8, 2, seed=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        return logits + torch.log(-torch.ones_like(logits))  # log(-1) = NaN


def test_nan_pixel_is_an_error_naming_model_and_measure() -> None:
    """A NaN pixel used to give an all-zero map (entropy −0.0, consistency 1.0); now: model, check and image."""
    images = _data()
    images[5, 1, 10, 10] = float("nan")
    with pytest.raises(ValueError, match=r"^model x/0, measure all \(input check\): image #5: `images` contain NaN"):
        _evaluate({"x/0": TinyCNN(8, 2, seed=0)}, images, measures=("entropy", "geometric"))


def test_nan_weights_are_an_error_not_a_perfect_score() -> None:
    model = TinyCNN(8, 2, seed=0)
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"^model bad/0, measure all: its weights contain NaN or inf \(1 of \d+ "
                                         r"parameters: fc\.weight\)"):
        _evaluate({"bad/0": model}, _data(), measures=("entropy",))


def test_nan_logits_are_an_error_naming_model_and_measure() -> None:
    with pytest.raises(ValueError, match=r"^model nan/0, measure all \(clean Grad-CAM pass\): images #0, #1, #2, #3: "
                                         r"the model's logits contain NaN"):
        _evaluate({"nan/0": NanLogits()}, _data(), measures=("entropy",))


def test_nan_in_a_perturbed_pass_names_the_measure() -> None:
    """Clean passes are finite here; only the salt-and-pepper passes are not — the error says so.

    (Whole-pixel noise, ``protocol="refined"``: ``NanOnSalt`` sees its grey pixels from the first severity.)
    """
    with pytest.raises(ValueError, match=r"^model salt/0, measure out_of_set \(salt_and_pepper\): the model's logits "
                                         r"on the salt_and_pepper images at severity 0\.01 contain NaN.*#0–#3"):
        _evaluate({"salt/0": NanOnSalt()}, _data(), measures=("out_of_set",), protocol="refined")


@pytest.mark.parametrize("kind", ["0_255", "imagenet_normalised"])
def test_images_outside_unit_range_are_rejected_at_the_engine_input(kind: str) -> None:
    """0–255 floats or normalised tensors used to be measured, with saturated probabilities."""
    images = _data() * 255 if kind == "0_255" else (_data() - 0.45) / 0.225
    with pytest.raises(ValueError, match=r"^model x/0, measure all \(input check\): images #0, #1, #2, #3: `images` "
                                         r"must hold values in \[0, 1\].*normalise inside the model"):
        _evaluate({"x/0": TinyCNN(8, 2, seed=0)}, images, measures=("entropy",))


class NanForFirst(nn.Module):
    """TinyCNN whose logits are NaN for the first image of every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCNN(8, 2, seed=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).index_fill(0, torch.tensor([0]), float("nan"))


def test_a_folder_passes_the_checks_and_errors_name_the_image_file(tmp_path: Path) -> None:
    """Generated data (PNG / 255) are in [0, 1]; from a data folder an error names the image by its path."""
    root = generate_dataset(tmp_path / "faces", 24, size=SIZE, seed=0, progress=False)
    options = {"limit": 4, "batch_size": 4, "device": "cpu", "map_size": 16, "progress": False,
               "measures": ("entropy",)}  # fmt: skip
    assert evaluate({"ok/0": TinyCNN(8, 2, seed=0)}, root, **options)["models"]["ok/0"]["accuracy"]["n"] == 4
    with pytest.raises(ValueError, match=r"clean Grad-CAM pass\): image #0 \(test/.*\.png\): the model's logits"):
        evaluate({"bad/0": NanForFirst()}, root, **options)
