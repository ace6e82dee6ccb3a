"""Tests for salience_lib.training.losses: the CYBORG loss, its CAM term and annotation pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from salience_lib.maps import minmax_normalise
from salience_lib.salience import class_activation_map
from salience_lib.training.losses import cyborg_loss, pool_annotations, xent_loss


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


def test_cyborg_cam_term_zero_when_annotation_equals_normalised_cam(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    cam = minmax_normalise(class_activation_map(feats, weight, targets))
    total, ce, mse = cyborg_loss(logits, feats, weight, targets, cam, alpha=0.5)
    assert mse.item() == 0.0
    torch.testing.assert_close(total, 0.5 * ce)
    # A human map at 2x resolution made of constant 2x2 blocks pools (area) back to the same map.
    big = cam.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    assert cyborg_loss(logits, feats, weight, targets, big)[2].item() == pytest.approx(0.0, abs=1e-12)


def test_cyborg_formula_and_alpha_one_is_ce(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    human = torch.rand(4, 8, 8, generator=generator)
    total, ce, mse = cyborg_loss(logits, feats, weight, targets, human, alpha=0.3)
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets))
    cam = minmax_normalise(class_activation_map(feats, weight, targets))
    torch.testing.assert_close(mse, F.mse_loss(cam, F.avg_pool2d(human[:, None], 2)[:, 0]))
    torch.testing.assert_close(total, 0.3 * ce + 0.7 * mse)
    total1, _, _ = cyborg_loss(logits, feats, weight, targets, human, alpha=1.0)
    torch.testing.assert_close(total1, F.cross_entropy(logits, targets))
    with pytest.raises(ValueError, match="alpha"):
        cyborg_loss(logits, feats, weight, targets, human, alpha=1.5)


def test_cyborg_gradients_flow_to_features_and_fc(generator) -> None:
    logits, feats, weight, targets = _loss_inputs(generator)
    feats.requires_grad_(True)
    weight.requires_grad_(True)
    human = torch.rand(4, 4, 4, generator=generator)
    _, _, mse = cyborg_loss(logits, feats, weight, targets, human, alpha=0.0)
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
