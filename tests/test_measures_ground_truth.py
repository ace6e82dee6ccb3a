"""Tests for salience_lib.measures.ground_truth: mask mass, pointing game, detection and localisation accumulators."""

import pytest
import torch

from salience_lib.measures.ground_truth import DetectionAccumulator, LocalisationAccumulator, mask_mass, pointing_game


def test_mask_mass_and_pointing_game_analytic():
    masks = torch.zeros(2, 16, 16)
    masks[:, :8, :8] = 1
    inside = torch.zeros(2, 4, 4)
    inside[:, 0, 0] = 1
    outside = torch.zeros(2, 4, 4)
    outside[:, 3, 3] = 1
    assert torch.allclose(mask_mass(inside, masks), torch.ones(2))
    assert torch.allclose(mask_mass(outside, masks), torch.zeros(2))
    assert torch.equal(mask_mass(torch.zeros(2, 4, 4), masks), torch.zeros(2))
    assert torch.equal(pointing_game(inside, masks, tolerance_at_224=0), torch.ones(2))
    assert torch.equal(pointing_game(outside, masks, tolerance_at_224=0), torch.zeros(2))
    # a peak just outside the mask is a hit once the tolerance reaches it (15 px at 224 ≈ 1 px at 16)
    near = torch.zeros(2, 16, 16)
    near[:, 8, 3] = 1
    assert torch.equal(pointing_game(near, masks, tolerance_at_224=0), torch.zeros(2))
    assert torch.equal(pointing_game(near, masks), torch.ones(2))


def test_detection_accumulator_auc_and_balanced_accuracy():
    groups = ("real", "seen", "unseen")
    acc = DetectionAccumulator(groups)
    labels = torch.tensor([0, 0, 1, 1, 1, 1])
    group = torch.tensor([0, 0, 1, 1, 2, 2])
    shortcut = torch.tensor([1, 0, 0, 1, 0, 1])
    p1 = torch.tensor([0.1, 0.6, 0.9, 0.8, 0.3, 0.7])
    acc.update(torch.stack([1 - p1, p1], dim=1), labels, group, shortcut)
    out = acc.compute()
    assert out["accuracy"].mean == pytest.approx(4 / 6) and out["n"] == 6
    assert out["auc_seen"] == pytest.approx(1.0)  # both seen fakes above both reals
    assert out["auc_unseen"] == pytest.approx(0.75)  # 0.3 beats 0.1 only; 0.7 beats both reals
    assert out["balanced_accuracy_seen"] == pytest.approx((0.5 + 1.0) / 2)
    # cue conflict: fakes without the cue (0.9 seen, 0.3 unseen) and reals with it (0.1)
    assert out["balanced_accuracy_cue_conflict"] == pytest.approx((1.0 + 0.5) / 2)


def test_localisation_skips_images_without_a_mask():
    acc = LocalisationAccumulator(("real", "seen"))
    masks = torch.zeros(3, 8, 8)
    masks[1:, :4, :4] = 1
    maps = torch.zeros(3, 4, 4)
    maps[:, 0, 0] = 1
    acc.update(maps, masks, torch.tensor([0, 1, 1]))
    out = acc.compute()
    assert set(out) == {"seen"} and out["seen"]["n"] == 2 and out["seen"]["pointing_game"].mean == 1.0


def test_detection_auc_per_generator_family_from_folder_groups():
    """CYBORG's folders give one group per family: each all-Synthetic family gets its AUC against every Real image."""
    groups = ("ffhq", "stylegan1", "stylegan2")  # a Real folder group and two generator families
    acc = DetectionAccumulator(groups)
    labels = torch.tensor([0, 0, 1, 1, 1, 1])
    group = torch.tensor([0, 0, 1, 1, 2, 2])
    p1 = torch.tensor([0.2, 0.4, 0.9, 0.3, 0.1, 0.15])
    acc.update(torch.stack([1 - p1, p1], dim=1), labels, group)
    out = acc.compute()
    assert out["auc"] == pytest.approx(3 / 8)  # pairs won: 0.9 beats 2 reals, 0.3 beats 1; of 4 × 2
    assert out["auc_by_group"] == {"stylegan1": pytest.approx(0.75), "stylegan2": pytest.approx(0.0)}
    assert "auc_seen" not in out  # no real/seen/unseen names: only the per-family AUCs
