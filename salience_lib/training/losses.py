r"""The training losses: cross-entropy (XENT) and CYBORG's human-salience-guided loss.

Per batch of logits :math:`z`, labels :math:`y` and human annotation maps :math:`H`:

.. math::

    L_\text{xent} = \mathrm{CE}(z, y), \qquad
    L_\text{cyborg} = \alpha\,\mathrm{CE}(z, y)
        + (1 - \alpha)\,\mathrm{MSE}\big(\mathrm{minmax}(M_y),\ \mathrm{pool}_{h \times w}(H)\big)

with :math:`M_y = \sum_k w_{y,k} A_k` the class activation map of the true class at feature resolution
:math:`h \times w` (``fc`` weights :math:`w`, last feature map :math:`A`, no bias), min–max normalised per
map, and the human map average-pooled to :math:`h \times w`. Source: Boyd et al., "CYBORG: Blending Human
Saliency Into the Loss Improves Deep Learning-Based Synthetic Face Detection", WACV 2023 (their
:math:`\alpha = 0.5`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from salience_lib.maps import minmax_normalise, resize_maps
from salience_lib.salience import class_activation_map

__all__ = ["cyborg_loss", "pool_annotations", "xent_loss"]


def pool_annotations(annotations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""Human maps ``(B, H, W)`` to ``size`` ``(h, w)``: :math:`\mathrm{pool}_{h \times w}(H)` of the CYBORG loss.

    Area (adaptive average) pooling, so each feature cell gets the mean annotation over the pixels it
    covers (Boyd et al., WACV 2023, compare the CAM with the human map at the CAM's resolution). A map
    smaller than ``size`` on either side is upsampled bilinearly instead
    (:func:`salience_lib.maps.resize_maps`). Returns float32 ``(B, h, w)``.

    Raises:
        ValueError: ``annotations`` is not 3-D.
    """
    if annotations.ndim != 3:
        raise ValueError(f"`annotations` must be (B, H, W), got shape {tuple(annotations.shape)}")
    ann = annotations.float()
    if ann.shape[-2] >= size[0] and ann.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(ann[:, None], size)[:, 0]
    return resize_maps(ann, size)


def xent_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r""":math:`L_\text{xent} = \mathrm{CE}(z, y)`, mean cross-entropy computed in float32.

    Args:
        logits: ``(B, K)``, any floating dtype (autocast outputs are upcast).
        targets: ``(B,)`` true classes.
    """
    return F.cross_entropy(logits.float(), targets)


def cyborg_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    fc_weight: torch.Tensor,
    targets: torch.Tensor,
    annotations: torch.Tensor,
    alpha: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""CYBORG loss :math:`\alpha\,\mathrm{CE} + (1-\alpha)\,\mathrm{MSE}(\mathrm{minmax}(M_y), \mathrm{pool}(H))`.

    Boyd et al., "CYBORG: Blending Human Saliency Into the Loss Improves Deep Learning-Based Synthetic
    Face Detection", WACV 2023. :math:`M_y` is :func:`class_activation_map` of the true class at feature
    resolution, min–max normalised per map (:func:`salience_lib.maps.minmax_normalise`; a constant map
    becomes zero); the human map :math:`H \in [0, 1]` is average-pooled to the feature resolution
    (:func:`pool_annotations`). Computed in float32 whatever the autocast dtype of the inputs.

    Args:
        logits: ``(B, K)``.
        features: ``(B, C, h, w)`` last feature map (the input of global average pooling).
        fc_weight: ``(K, C)`` final linear layer weight.
        targets: ``(B,)`` true classes.
        annotations: ``(B, H, W)`` human salience maps in [0, 1].
        alpha: weight of the cross-entropy term, in [0, 1]; 1 gives plain cross-entropy.

    Returns:
        ``(total, ce, cam_mse)``, three scalar tensors.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    ce = xent_loss(logits, targets)
    cam = minmax_normalise(class_activation_map(features.float(), fc_weight.float(), targets))
    human = pool_annotations(annotations, (cam.shape[-2], cam.shape[-1]))
    cam_mse = F.mse_loss(cam, human)
    return alpha * ce + (1.0 - alpha) * cam_mse, ce, cam_mse
