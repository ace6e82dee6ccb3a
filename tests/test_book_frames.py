import re

import numpy as np
import pytest
import torch

from salience_lib.book import frames
from salience_lib.inference import class_probabilities
from salience_lib.measures import degradation, geometric
from salience_lib.models import build_model
from salience_lib.salience import GradCAM


@pytest.fixture(scope="module")
def models():
    return {
        "XENT": build_model("small_cnn", image_size=32).eval(),
        "CYBORG": build_model("small_cnn", image_size=32).eval(),
    }


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_clean_prediction_probability_is_the_probability_of_the_clean_argmax(models, images):
    model = models["XENT"]
    changed = images.flip(-1)
    expected = class_probabilities(model, changed)[torch.arange(2), class_probabilities(model, images).argmax(1)]
    assert torch.allclose(frames.clean_prediction_probability(model, images, changed), expected)
    same = frames.clean_prediction_probability(model, images, images)
    assert torch.allclose(same, class_probabilities(model, images).amax(1))


def test_consistency_frame_scores_match_the_measure(models, images):
    fig = frames.consistency_frame(models, images, "hflip")
    titles = _titles(fig)
    assert len(titles) == 2 * 5 and titles[:2] == ["T x", "XENT S(Tx)"]
    assert titles[2].startswith("XENT T(S(x)), c = ") and titles[5] == "T x"
    assert fig._suptitle.get_text() == "T = hflip"
    with GradCAM(models["CYBORG"]) as cam:
        expected = geometric.geometric_consistency(cam, images, ["hflip"])["hflip"]
    shown = [float(re.search(r"c = (-?[0-9.]+)", t).group(1)) for t in titles if "CYBORG T(S(x))" in t]
    assert shown == pytest.approx(expected.tolist(), abs=0.006), "the titles give the measure's value per image"
    with pytest.raises(ValueError, match="empty"):
        frames.consistency_frame({}, images, "hflip")


def test_perturbation_frame_titles_give_ssim_and_the_clean_predictions_probability(models, images):
    noisy = images.flip(-2)
    fig = frames.perturbation_frame(models, images, noisy, suptitle="noisy")
    axes = np.array(fig.axes).reshape(3, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["perturbed", "XENT", "CYBORG"]
    assert [ax.get_title() for ax in axes[0]] == ["", ""]
    probability = frames.clean_prediction_probability(models["CYBORG"], images, noisy)
    assert axes[2, 1].get_title().endswith(f"p {float(probability[1]):.2f}")
    with pytest.raises(ValueError, match="perturbed"):
        frames.perturbation_frame(models, images, noisy[:1])


def test_degradation_frame_blurs_as_the_condition_says(models, images):
    fig = frames.degradation_frame(models, images, "background", seed=0)
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["XENT-guided", "CYBORG-guided"]
    with GradCAM(models["XENT"]) as cam:
        blurred = degradation.salience_guided_blur(images, cam(images), "background")
    after = frames.clean_prediction_probability(models["XENT"], images, blurred)
    assert axes[0, 0].get_title().endswith(f"→ {float(after[0]):.2f}")
    assert "random maps" in frames.degradation_frame(models, images, "random")._suptitle.get_text()
    with pytest.raises(ValueError, match="condition"):
        frames.degradation_frame(models, images, "everything")


def test_deletion_frames_one_frame_per_fraction_nothing_deleted_at_zero(models, images):
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1))
    rankings = {"XENT": (models["XENT"], maps), "random": (models["XENT"], maps.flip(-1))}
    blurred = degradation.deletion_blur(images)
    shown = frames.deletion_frames(rankings, images, blurred, fractions=(0.0, 1.0))
    assert len(shown) == 2 and shown[1]._suptitle.get_text() == "deletion: top 100% of pixels blurred"
    clean = class_probabilities(models["XENT"], images).amax(1)
    assert _titles(shown[0])[:2] == [f"p {p:.2f}" for p in clean.tolist()]
    everything = frames.clean_prediction_probability(models["XENT"], images, blurred)
    assert _titles(shown[1])[2:] == [f"p {p:.2f}" for p in everything.tolist()], "q = 1 blurs every pixel"
    with pytest.raises(ValueError, match="blurred"):
        frames.deletion_frames(rankings, images, blurred[:1])
    with pytest.raises(ValueError, match="empty"):
        frames.deletion_frames({}, images, blurred)
