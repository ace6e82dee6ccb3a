"""Tests for salience_lib.measures.probe: one model pass per perturbed image when the explainer allows it."""

import torch

from salience_lib.measures.degradation import degradation_effect
from salience_lib.measures.out_of_set import perturbation_curve
from salience_lib.measures.probe import probe
from salience_lib.salience import GradCAM
from tests.helpers import TinyCNN, channel_mean
from tests.test_engine import CountingModel


def test_explain_returns_the_forward_logits_and_a_sized_explainer_binds_the_size():
    model = TinyCNN(8, 2, seed=0).eval()
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cam = GradCAM(model)
    explained = cam.explain(images, size=16)
    assert torch.allclose(explained.logits, model(images), atol=1e-6)
    assert torch.equal(explained.maps, cam(images, size=16))
    sized = cam.at(16)
    assert sized.model is model and torch.equal(sized(images), explained.maps)


def test_probe_uses_one_pass_with_a_grad_cam_of_the_model_and_two_otherwise():
    model = CountingModel(TinyCNN(8, 2, seed=0))
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    maps, probs = probe(model, GradCAM(model).at(None))(images)
    assert model.images == 4 + 1  # + 1 image: locating the target layer once
    assert torch.allclose(probs.sum(1), torch.ones(4)) and maps.shape == (4, 8, 8)
    model.images = 0
    probe(model, channel_mean)(images)
    assert model.images == 4  # the explainer does not run the model; the probabilities take one forward
    other = GradCAM(TinyCNN(8, 2, seed=1)).at(None)
    model.images = 0
    probe(model, other)(images)
    assert model.images == 4  # a Grad-CAM of another model: its logits are not this model's


def test_measures_share_the_clean_pass_and_count_one_pass_per_perturbation():
    model = CountingModel(TinyCNN(8, 2, seed=0))
    cam = GradCAM(model).at(None)
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    cam(images[:1])
    model.images = 0
    curve = perturbation_curve(model, cam, images, "gaussian_noise", (0.0, 0.1, 0.2))
    assert model.images == 4 * 3  # clean (= severity 0) + two noisy copies
    assert torch.allclose(curve.similarity[:, 0], torch.ones(4))
    clean = cam.explain(images)
    model.images = 0
    degradation_effect(model, cam, images, "salient", reference_size=16, clean_maps=clean.maps,
                       clean_probabilities=torch.softmax(clean.logits, 1))  # fmt: skip
    assert model.images == 4  # the degraded copy only
