"""Checks against ground truth, where a data set has it: detection accuracy, artifact masks, annotations.

The five measures need no ground truth. A generated data set has some — exact artifact masks,
generator families never seen in training (metadata groups ``real`` / ``seen`` / ``unseen``), a
shortcut cue whose link to the label is broken in the test split, and human-like annotation maps —
so the engine also asks, from the same clean pass:

* **detection**: accuracy; with groups, ROC AUC of seen and unseen families against real images
  (also on cue-free images) and balanced accuracy, including on *cue-conflict* images (synthetic
  without the cue, real with it);
* **localisation**: the share of salience mass inside the artifact mask (:func:`mask_mass`) and the
  pointing game (:func:`pointing_game`, Zhang et al., ECCV 2016);
* **annotation agreement**: similarity of each map to the human annotation of the same image
  (:func:`salience_lib.measures.stability.agreement_with_reference`), where annotations exist.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from salience_lib.maps import check_maps, resize_maps
from salience_lib.measures.accumulator import Accumulator, summary_of
from salience_lib.stats import roc_auc

__all__ = ["DetectionAccumulator", "LocalisationAccumulator", "mask_mass", "pointing_game"]


def mask_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    r"""Share of each map's salience inside its mask, :math:`\sum_{i \in M} S_i / \sum_i S_i`, ``(B,)``.

    Maps are upsampled (bilinear) to the mask size. An all-zero map scores 0 (it points at nothing).
    """
    up = resize_maps(check_maps(maps).float(), tuple(masks.shape[-2:])).clamp_min(0)
    total = up.flatten(1).sum(1)
    inside = (up * masks).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance_at_224: float = 15.0) -> torch.Tensor:
    """1 where the maximum of the (upsampled) map lies within the tolerance of the mask, ``(B,)``.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop" (ECCV 2016): a hit when the
    maximum is within 15 px of the object at 224 px; the tolerance scales with the image side.
    """
    size = tuple(masks.shape[-2:])
    up = resize_maps(check_maps(maps).float(), size)
    radius = round(tolerance_at_224 * size[0] / 224)
    grown = F.max_pool2d(masks[:, None].float(), 2 * radius + 1, stride=1, padding=radius)[:, 0] if radius else masks
    peak = up.flatten(1).argmax(1)
    return grown.flatten(1).gather(1, peak[:, None])[:, 0].float()


def _balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float | None:
    recalls = [(predicted[labels == c] == c).double().mean() for c in (0, 1) if bool((labels == c).any())]
    return float(torch.stack(recalls).mean()) if recalls else None


def _auc(positives: torch.Tensor, negatives: torch.Tensor) -> float | None:
    """ROC AUC, or None (recorded as null) when there is no image on one side."""
    return roc_auc(positives, negatives) if len(positives) and len(negatives) else None


class DetectionAccumulator(Accumulator):
    """Per image: label, predicted class, probability of class 1, group id and shortcut flag.

    Args:
        groups: names of the group ids (metadata ``group``); the AUCs and balanced accuracies need
            ``real`` and ``seen``/``unseen`` among them, the cue-free ones a shortcut flag (-1 = unknown).
    """

    def __init__(self, groups: Sequence[str] = ()) -> None:
        super().__init__()
        self.groups = tuple(groups)
        for name in ("label", "predicted", "p_synthetic", "group", "shortcut"):
            self.add_cat_state(name)

    def config(self) -> dict[str, object]:
        return {"groups": self.groups}

    def update(
        self,
        probabilities: torch.Tensor,
        labels: torch.Tensor,
        group: torch.Tensor | None = None,
        shortcut: torch.Tensor | None = None,
    ) -> None:
        """Add ``(B, K)`` probabilities and ``(B,)`` labels (and group ids, shortcut flags) of a batch."""
        unknown = torch.full_like(labels, -1)
        self._cat("label", labels)
        self._cat("predicted", probabilities.argmax(dim=1))
        self._cat("p_synthetic", probabilities[:, 1] if probabilities.shape[1] > 1 else probabilities[:, 0])
        self._cat("group", unknown if group is None else group)
        self._cat("shortcut", unknown if shortcut is None else shortcut.long())

    def compute(self) -> dict[str, object]:
        """``accuracy`` (summary), ``auc`` (Synthetic vs Real), ``auc_by_group`` (each all-Synthetic group —
        a generator family of CYBORG's folders — vs every Real image) and, where the groups are
        ``real``/``seen``/``unseen``, their AUCs and balanced accuracies (floats, or None without images)."""
        label, predicted = self.values("label").long(), self.values("predicted").long()
        out: dict[str, object] = {"accuracy": summary_of((predicted == label).double()), "n": self.count}
        group, p = self.values("group").long(), self.values("p_synthetic")
        out["auc"] = _auc(p[label == 1], p[label == 0])
        by_group = {
            name: _auc(p[members], p[label == 0])
            for g, name in enumerate(self.groups)
            if bool((members := group == g).any()) and bool((label[members] == 1).all())
        }
        if by_group:  # each all-Synthetic group (a generator family) against every Real image
            out["auc_by_group"] = by_group
        if "real" not in self.groups:
            return out
        cue_known = bool((self.values("shortcut") >= 0).all())
        cue = self.values("shortcut") == 1
        real = group == self.groups.index("real")
        for name in ("seen", "unseen"):
            if name not in self.groups:
                continue
            fake = group == self.groups.index(name)
            keep = fake | real
            out[f"auc_{name}"] = _auc(p[fake], p[real])
            out[f"balanced_accuracy_{name}"] = _balanced_accuracy(predicted[keep], label[keep])
            if cue_known:
                out[f"auc_{name}_cue_free"] = _auc(p[fake & ~cue], p[real & ~cue])
                chosen = (fake & ~cue) | (real & cue)
                out[f"balanced_accuracy_cue_conflict_{name}"] = _balanced_accuracy(predicted[chosen], label[chosen])
        if cue_known:
            conflict = ((label == 1) & ~cue) | (real & cue)
            out["balanced_accuracy_cue_conflict"] = _balanced_accuracy(predicted[conflict], label[conflict])
        return out


class LocalisationAccumulator(Accumulator):
    """Mask mass and pointing game of images that have an artifact mask, per group.

    Args:
        groups: names of the group ids.
    """

    def __init__(self, groups: Sequence[str] = ()) -> None:
        super().__init__()
        self.groups = tuple(groups)
        for name in ("mask_mass", "pointing_game", "group"):
            self.add_cat_state(name)

    def config(self) -> dict[str, object]:
        return {"groups": self.groups}

    def update(self, maps: torch.Tensor, masks: torch.Tensor, group: torch.Tensor) -> None:
        """Add the maps of images whose ``(B, H, W)`` mask is not empty (others are skipped)."""
        has = masks.flatten(1).amax(dim=1) > 0
        if not bool(has.any()):
            return
        maps, masks = maps[has], masks[has]
        self._cat("mask_mass", mask_mass(maps, masks))
        self._cat("pointing_game", pointing_game(maps, masks))
        self._cat("group", group[has])

    def compute(self) -> dict[str, object]:
        """Per group with masked images: ``mask_mass`` and ``pointing_game`` summaries and ``n``."""
        group = self.values("group").long()
        out: dict[str, object] = {}
        for g, name in enumerate(self.groups):
            chosen = group == g
            if bool(chosen.any()):
                out[name] = {
                    "mask_mass": summary_of(self.values("mask_mass")[chosen]),
                    "pointing_game": summary_of(self.values("pointing_game")[chosen]),
                    "n": int(chosen.sum()),
                }
        return out
