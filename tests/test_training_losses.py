"""Tests for salience_lib.training.losses: the authors' CYBORG loss, the pooled variant, their pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from salience_lib.maps import minmax_normalise
from salience_lib.models import build_model
from salience_lib.salience import class_activation_map
from salience_lib.training.losses import (
    cam_feature_layer,
    cyborg_loss,
    cyborg_pooled_loss,
    forward_with_features,
    pil_annotations,
    pool_annotations,
    xent_loss,
)


def test_cam_matches_loop(generator) -> None:
    feats = torch.randn(3, 5, 4, 6, generator=generator, dtype=torch.float64)
    weight = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 1, 1])
    cam = class_activation_map(feats, weight, targets)
    for b in range(3):
        ref = sum(weight[targets[b], k] * feats[b, k] for k in range(5))
        torch.testing.assert_close(cam[b], ref)


def test_cam_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="features"):
        class_activation_map(torch.zeros(2, 3, 4), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="weight"):
        class_activation_map(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        class_activation_map(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3), torch.zeros(2))


def _loss_inputs(generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    logits = torch.randn(4, 2, generator=generator)
    feats = torch.rand(4, 8, 4, 4, generator=generator)
    weight = torch.randn(2, 8, generator=generator)
    targets = torch.tensor([0, 1, 0, 1])
    return logits, feats, weight, targets


# ---------------------------------------------------------------------------------------------
# the authors' loss (``cyborg``) against a per-sample re-implementation of train_cam.py


def _human_maps(n: int, size: int, seed: int) -> np.ndarray:
    """8-bit maps: a blob at a random place plus noise (never constant after resizing)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    maps = []
    for _ in range(n):
        cy, cx = rng.random(2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05) + 0.2 * rng.random((size, size))
        maps.append(np.round(255 * blob / blob.max()).astype(np.uint8))
    return np.stack(maps)


def _authors_loss(
    model: torch.nn.Module, hook_at: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, human: np.ndarray, alpha: float
) -> tuple[float, float, float]:
    """train_cam.py's steps, one sample at a time in numpy float64, the map resized by Pillow itself."""
    kept = {}
    handle = hook_at.register_forward_hook(lambda _m, _i, out: kept.update(features=out))
    with torch.no_grad():
        outputs = model(x)
    handle.remove()
    logits = outputs.double().numpy()
    feats = kept["features"].double().numpy()
    params = model.fc.weight.detach().double().numpy()
    pred = logits.argmax(axis=1)
    labels = y.numpy()
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ce = -np.mean(log_softmax[np.arange(len(labels)), labels])
    squared = []
    for b in range(len(labels)):
        nc, h, w = feats[b].shape
        cam = (params[pred[b]] @ feats[b].reshape(nc, h * w)).reshape(h, w)  # sum_k w[pred, k] F_k
        cam = cam - cam.min()
        cam = cam / cam.max()
        hmap = Image.fromarray(human[b], "L").resize((w, h), Image.Resampling.BILINEAR)  # transforms.Resize
        hmap = np.asarray(hmap, dtype=np.float64) / 255  # ToTensor
        hmap = hmap - hmap.min()
        hmap = hmap / hmap.max()
        squared.append((cam - hmap) ** 2)
    mse = float(np.mean(squared))
    return alpha * ce + (1 - alpha) * mse, ce, mse


@pytest.mark.parametrize(
    ("arch", "hooked"), [("resnet18", "features.layer4.1.conv2"), ("small_cnn", "features.block4.0")]
)
def test_cyborg_loss_equals_authors_steps(arch, hooked) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 2, image_size=64).train()  # training mode, as in their loop
    layer = cam_feature_layer(model, arch)
    assert layer is model.get_submodule(hooked)
    x = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    human = _human_maps(6, 64, seed=2)
    annotations = torch.from_numpy(human).float() / 255
    logits, feats = forward_with_features(model, x, layer)
    assert feats.shape[-2:] == ((2, 2) if arch == "resnet18" else (8, 8))
    total, ce, mse = cyborg_loss(logits, feats, model.fc.weight, y, annotations, alpha=0.3)
    ref_total, ref_ce, ref_mse = _authors_loss(model, layer, x, y, human, alpha=0.3)
    assert ce.item() == pytest.approx(ref_ce, rel=1e-5)
    assert mse.item() == pytest.approx(ref_mse, rel=1e-4, abs=1e-6)
    assert total.item() == pytest.approx(ref_total, rel=1e-4)
    assert mse.item() > 0.01  # a real comparison, not two zero maps


def test_feature_point_resnet_conv3_and_densenet_pre_relu() -> None:
    torch.manual_seed(0)
    resnet50 = build_model("resnet50", 2)
    assert cam_feature_layer(resnet50, "resnet50") is resnet50.features.layer4[-1].conv3
    resnet18 = build_model("resnet18", 2)  # BasicBlock: no conv3, its last convolution is conv2
    assert cam_feature_layer(resnet18, "resnet18") is resnet18.features.layer4[-1].conv2
    small = build_model("small_cnn", 2, image_size=64)
    assert isinstance(cam_feature_layer(small, "small_cnn"), torch.nn.Conv2d)
    assert cam_feature_layer(build_model("mobilenet_v3_small", 2), "mobilenet_v3_small") is not None

    densenet = build_model("densenet121", 2).eval()
    layer = cam_feature_layer(densenet, "densenet121")
    assert layer is densenet.features[0]  # torchvision's `features`, ending in norm5
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, hooked = forward_with_features(densenet, x, layer)
        pooled_logits, pooled = densenet.forward_features(x)
    assert (hooked < 0).any()  # before the final ReLU
    torch.testing.assert_close(hooked, densenet.features[0](densenet.normalize(x)))
    torch.testing.assert_close(torch.relu(hooked), pooled)  # the ReLU comes after, out of place
    torch.testing.assert_close(logits, pooled_logits)
    # ResNet-50: the hooked conv3 output differs from the pooled (BN + residual + ReLU) features.
    with torch.no_grad():
        _, conv3 = forward_with_features(resnet50.eval(), x, resnet50.features.layer4[-1].conv3)
    assert conv3.shape == resnet50.forward_features(x)[1].shape and (conv3 < 0).any()


def test_inception_feature_point_is_mixed_7c() -> None:
    torch.manual_seed(0)
    inception = build_model("inception_v3", 2, image_size=299)
    assert cam_feature_layer(inception, "inception_v3") is inception.features.Mixed_7c


def test_forward_with_features_removes_its_hook_and_checks_the_layer() -> None:
    model = build_model("small_cnn", 2, image_size=32)
    layer = cam_feature_layer(model, "small_cnn")
    x = torch.rand(2, 3, 32, 32)
    forward_with_features(model, x, layer)
    assert not layer._forward_hooks
    with pytest.raises(RuntimeError, match="ran 0 times"):
        forward_with_features(model, x, torch.nn.Conv2d(3, 3, 1))
    assert not layer._forward_hooks


def test_gradient_flows_through_the_cam_term() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", 2, image_size=32).train()
    layer = cam_feature_layer(model, "small_cnn")
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    human = torch.from_numpy(_human_maps(4, 32, seed=1)).float() / 255
    logits, feats = forward_with_features(model, x, layer)
    _, _, mse = cyborg_loss(logits, feats, model.fc.weight, torch.tensor([0, 1, 0, 1]), human, alpha=0.0)
    grads = torch.autograd.grad(mse, [layer.weight, model.fc.weight, model.features[0][0].weight])
    assert all(g.abs().sum() > 0 for g in grads)
    assert model.fc.bias.grad is None  # the CAM has no bias


def test_cyborg_uses_the_predicted_class_not_the_label(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    human = torch.rand(4, 16, 16, generator=generator)
    predicted = logits.argmax(1)
    flipped = 1 - predicted  # labels that disagree with every prediction
    by_pred = cyborg_loss(logits, feats, weight, flipped, human)[2]
    assert by_pred.item() == cyborg_loss(logits, feats, weight, predicted, human)[2].item()  # label-free
    by_label = cyborg_loss(logits, feats, weight, flipped, human, cam_class="true")[2]
    cam = minmax_normalise(class_activation_map(feats, weight, flipped))
    torch.testing.assert_close(by_label, F.mse_loss(cam, pil_annotations(human, (4, 4))))
    assert by_label.item() != by_pred.item()
    with pytest.raises(ValueError, match="cam_class"):
        cyborg_loss(logits, feats, weight, targets, human, cam_class="label")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="human_map"):
        cyborg_loss(logits, feats, weight, targets, human, human_map="nearest")  # type: ignore[arg-type]


def test_pil_annotations_is_pillow_bilinear_then_minmax() -> None:
    human = _human_maps(3, 40, seed=3)
    ours = pil_annotations(torch.from_numpy(human).float() / 255, (7, 5))
    for b in range(3):
        ref = np.asarray(Image.fromarray(human[b], "L").resize((5, 7), Image.Resampling.BILINEAR), dtype=np.float64)
        ref = (ref - ref.min()) / (ref.max() - ref.min())
        np.testing.assert_allclose(ours[b].numpy(), ref, atol=1e-6)
    assert torch.equal(pil_annotations(torch.full((1, 40, 40), 0.5), (7, 7)), torch.zeros(1, 7, 7))  # not 0/0
    with pytest.raises(ValueError, match="annotations"):
        pil_annotations(torch.zeros(2, 1, 8, 8), (4, 4))


# ---------------------------------------------------------------------------------------------
# the earlier variant, ``cyborg_pooled`` (these tests are the former tests of ``cyborg_loss``)


def test_cyborg_pooled_keeps_the_earlier_numbers() -> None:
    """The values the earlier ``cyborg_loss`` gave on this batch (version 0.1.0), bit for bit."""
    g = torch.Generator().manual_seed(1234)
    logits, feats = torch.randn(4, 2, generator=g), torch.rand(4, 8, 4, 4, generator=g)
    weight, targets = torch.randn(2, 8, generator=g), torch.tensor([0, 1, 0, 1])
    annotations = torch.rand(4, 16, 16, generator=g)
    total, ce, mse = cyborg_pooled_loss(logits, feats, weight, targets, annotations, 0.5)
    assert (total.item(), ce.item(), mse.item()) == (0.42178109288215637, 0.7579257488250732, 0.08563642203807831)


def test_cyborg_pooled_cam_term_zero_when_annotation_equals_normalised_cam(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    cam = minmax_normalise(class_activation_map(feats, weight, targets))
    total, ce, mse = cyborg_pooled_loss(logits, feats, weight, targets, cam, alpha=0.5)
    assert mse.item() == 0.0
    torch.testing.assert_close(total, 0.5 * ce)
    # A human map at 2x resolution made of constant 2x2 blocks pools (area) back to the same map.
    big = cam.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    assert cyborg_pooled_loss(logits, feats, weight, targets, big)[2].item() == pytest.approx(0.0, abs=1e-12)


def test_cyborg_pooled_formula_and_alpha_one_is_ce(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    human = torch.rand(4, 8, 8, generator=generator)
    total, ce, mse = cyborg_pooled_loss(logits, feats, weight, targets, human, alpha=0.3)
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets))
    cam = minmax_normalise(class_activation_map(feats, weight, targets))
    torch.testing.assert_close(mse, F.mse_loss(cam, F.avg_pool2d(human[:, None], 2)[:, 0]))
    torch.testing.assert_close(total, 0.3 * ce + 0.7 * mse)
    for loss in (cyborg_pooled_loss, cyborg_loss):
        total1, _, _ = loss(logits, feats, weight, targets, human, alpha=1.0)
        torch.testing.assert_close(total1, F.cross_entropy(logits, targets))
        with pytest.raises(ValueError, match="alpha"):
            loss(logits, feats, weight, targets, human, alpha=1.5)


def test_cyborg_pooled_gradients_flow_to_features_and_fc(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    feats.requires_grad_(True)
    weight.requires_grad_(True)
    human = torch.rand(4, 4, 4, generator=generator)
    for loss in (cyborg_pooled_loss, cyborg_loss):
        _, _, mse = loss(logits, feats, weight, targets, human, alpha=0.0)
        g_feats, g_weight = torch.autograd.grad(mse, (feats, weight))
        assert g_feats.abs().sum() > 0
        assert g_weight.abs().sum() > 0


def test_xent_loss_is_float32_cross_entropy(generator) -> None:
    logits, _, _, targets = _loss_inputs(generator)
    loss = xent_loss(logits.bfloat16(), targets)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(logits.bfloat16().float(), targets))


def test_pool_annotations_area_down_bilinear_up_and_shape_check(generator) -> None:
    human = torch.rand(2, 8, 8, generator=generator)
    torch.testing.assert_close(pool_annotations(human, (4, 4)), F.avg_pool2d(human[:, None], 2)[:, 0])
    up = pool_annotations(torch.ones(2, 2, 2), (4, 4))  # smaller than the target: upsampled
    assert up.shape == (2, 4, 4)
    torch.testing.assert_close(up, torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="annotations"):
        pool_annotations(torch.zeros(2, 1, 8, 8), (4, 4))
