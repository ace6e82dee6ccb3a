r"""The training losses: cross-entropy (XENT) and CYBORG's human-salience-guided loss, two variants.

Per batch of logits :math:`z`, labels :math:`y`, human annotation maps :math:`H` and a feature map
:math:`A` (``B, C, h, w``) whose channels match the final linear layer's weight :math:`w`:

.. math::

    L_\text{xent} = \mathrm{CE}(z, y), \qquad
    L_\text{cyborg} = \alpha\,\mathrm{CE}(z, y)
        + (1 - \alpha)\,\mathrm{MSE}\big(\mathrm{minmax}(M_{\hat y}),\
          \mathrm{minmax}(\mathrm{PIL}^\text{bilinear}_{h \times w}(H))\big)

with :math:`M_c = \sum_k w_{c,k} A_k` the class activation map (no bias) of the PREDICTED class
:math:`\hat y = \arg\max z`, min–max normalised per map, and the human map resized by PIL's bilinear
``Image.resize`` of the 8-bit map (:func:`salience_lib.resize.pil_resize`), then min–max normalised.
:math:`\alpha = 0.5`. Source: Boyd et al., "CYBORG: Blending Human Saliency Into the Loss Improves
Deep Learning-Based Synthetic Face Detection", WACV 2023, and their ``training_code/train_cam.py``
(github.com/BoydAidan/CYBORG-Loss): ``params[pred[ids]] @ features``, ``cam - min``, ``/ max``,
``nn.MSELoss()(cams, hmap)``; the map from ``dataset_Loader_cam.py``: ``transforms.Resize([7, 7])``
(PIL bilinear) of the opened 8-bit map, ``ToTensor``, ``- min``, ``/ max``.

Where :math:`A` comes from (:func:`cam_feature_layer`, as their forward hooks): ResNet
``layer4[-1].conv3`` (``conv2`` for the BasicBlock ResNets), before BN, residual and ReLU; DenseNet
``features`` before the final ReLU (they call ``model.features(data)``); Inception-v3 ``Mixed_7c``;
the small CNN its last convolution, before its norm and ReLU. Other architectures: the pooled features.

Two departures, both where their code would give NaN: a constant CAM or human map min–max normalises
to zeros (:func:`salience_lib.maps.minmax_normalise`), not 0/0; and DenseNet's features are hooked in
the one forward pass rather than recomputed by a second ``model.features(data)`` call, which in their
code also updates the BatchNorm running statistics a second time per batch (the loss and gradients
are the same).

The earlier variant, ``cyborg_pooled`` (:func:`cyborg_pooled_loss`): CAM of the TRUE class at the
pooled features, human map area-pooled to :math:`h \times w` and not renormalised.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from salience_lib.maps import minmax_normalise, resize_maps
from salience_lib.resize import pil_resize
from salience_lib.salience import class_activation_map

__all__ = [
    "cam_feature_layer",
    "cyborg_loss",
    "cyborg_pooled_loss",
    "forward_with_features",
    "pil_annotations",
    "pool_annotations",
    "xent_loss",
]

_RESNETS = ("resnet", "resnext", "wide_resnet")


def pool_annotations(annotations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""Human maps ``(B, H, W)`` to ``size`` ``(h, w)``: :math:`\mathrm{pool}_{h \times w}(H)` of ``cyborg_pooled``.

    Area (adaptive average) pooling, so each feature cell gets the mean annotation over the pixels it
    covers. A map smaller than ``size`` on either side is upsampled bilinearly instead
    (:func:`salience_lib.maps.resize_maps`). Not renormalised. Returns float32 ``(B, h, w)``.

    Raises:
        ValueError: ``annotations`` is not 3-D.
    """
    if annotations.ndim != 3:
        raise ValueError(f"`annotations` must be (B, H, W), got shape {tuple(annotations.shape)}")
    ann = annotations.float()
    if ann.shape[-2] >= size[0] and ann.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(ann[:, None], size)[:, 0]
    return resize_maps(ann, size)


def pil_annotations(annotations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""The authors' human-map target: :math:`\mathrm{minmax}(\mathrm{PIL}^\text{bilinear}_{h \times w}(H))`.

    As their ``dataset_Loader_cam.py``: the 8-bit map (mode ``L``) resized with PIL's bilinear filter
    (antialiased when shrinking, rounded to 8 bits: :func:`salience_lib.resize.pil_resize` with
    ``bits=8``, equal to Pillow on every pixel), divided by 255, then min–max normalised per map (a
    constant map becomes zeros where theirs is 0/0). ``annotations`` in [0, 1] are read as 8-bit levels
    ``round(255 H)`` (exact for 8-bit maps, which their heatmaps are). Returns float32 ``(B, h, w)``.

    Raises:
        ValueError: ``annotations`` is not 3-D.
    """
    if annotations.ndim != 3:
        raise ValueError(f"`annotations` must be (B, H, W), got shape {tuple(annotations.shape)}")
    return minmax_normalise(pil_resize(annotations.float(), size, "bilinear", bits=8))


def xent_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r""":math:`L_\text{xent} = \mathrm{CE}(z, y)`, mean cross-entropy computed in float32.

    Args:
        logits: ``(B, K)``, any floating dtype (autocast outputs are upcast).
        targets: ``(B,)`` true classes.
    """
    return F.cross_entropy(logits.float(), targets)


def cam_feature_layer(model: nn.Module, arch: str) -> nn.Module:
    """The module whose output is the authors' CAM feature map :math:`A` for a ``build_model`` model.

    ``train_cam.py`` hooks ResNet-50 ``layer4[-1].conv3`` and Inception-v3 ``Mixed_7c``, and takes
    DenseNet-121's ``model.features(data)``. Here: ``resnet*``/``resnext*``/``wide_resnet*``: the last
    convolution of the last block (``conv3`` of a Bottleneck, ``conv2`` of a BasicBlock), before its
    BN, the residual sum and the ReLU; ``densenet*``: torchvision's ``features`` (ending in ``norm5``),
    before the final ReLU; ``inception_v3``: ``Mixed_7c``; ``small_cnn``: its last ``Conv2d``, before
    its BatchNorm and ReLU; any other architecture: ``model.features`` (the pooled features). Every
    choice has as many channels as ``model.fc`` has inputs.

    Args:
        model: a :class:`salience_lib.models.SalienceClassifier` built by ``build_model(arch, ...)``.
        arch: the name it was built with.
    """
    features = model.features
    if arch == "small_cnn":
        return features[-1][0]
    if arch.startswith(_RESNETS):
        block = features.layer4[-1]
        return block.conv3 if hasattr(block, "conv3") else block.conv2
    if arch.startswith("densenet"):
        return features[0]
    if arch == "inception_v3":
        return features.Mixed_7c
    return features


def forward_with_features(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass: ``(logits (B, K), output of layer)``, the layer's output kept by a forward hook.

    The hook lives for this call only (removed in ``finally``); ``layer = model.features`` needs no
    hook (:meth:`~salience_lib.models.SalienceClassifier.forward_features`). Gradients flow through
    the returned features.

    Raises:
        RuntimeError: ``layer`` did not run exactly once in the forward pass.
    """
    if layer is model.features:
        return model.forward_features(x)
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if len(outputs) != 1:
        raise RuntimeError(f"the CAM feature layer ran {len(outputs)} times in one forward pass, expected once")
    return logits, outputs[0]


def cyborg_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    fc_weight: torch.Tensor,
    targets: torch.Tensor,
    annotations: torch.Tensor,
    alpha: float = 0.5,
    *,
    cam_class: Literal["predicted", "true"] = "predicted",
    human_map: Literal["pil_bilinear", "area"] = "pil_bilinear",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""CYBORG loss :math:`\alpha\,\mathrm{CE} + (1-\alpha)\,\mathrm{MSE}(\mathrm{minmax}(M_c), T(H))`.

    Boyd et al., WACV 2023, as their ``train_cam.py`` computes it by default (module docstring):
    :math:`M_c` is :func:`class_activation_map` of the predicted class :math:`c = \arg\max z` (detached:
    the index carries no gradient), min–max normalised per map (a constant map becomes zero); the
    target :math:`T(H)` is :func:`pil_annotations` (PIL bilinear 8-bit resize to the CAM's size,
    min–max). Computed in float32 whatever the autocast dtype of the inputs.

    Args:
        logits: ``(B, K)``.
        features: ``(B, C, h, w)`` the CAM feature map (for the authors' loss: the output of
            :func:`cam_feature_layer`, e.g. from :func:`forward_with_features`).
        fc_weight: ``(K, C)`` final linear layer weight.
        targets: ``(B,)`` true classes.
        annotations: ``(B, H, W)`` human salience maps in [0, 1].
        alpha: weight of the cross-entropy term, in [0, 1]; 1 gives plain cross-entropy.
        cam_class: ``"predicted"`` (the authors') or ``"true"`` (the label's CAM).
        human_map: ``"pil_bilinear"`` (:func:`pil_annotations`, the authors') or ``"area"``
            (:func:`pool_annotations`: area-pooled, not renormalised).

    Returns:
        ``(total, ce, cam_mse)``, three scalar tensors.

    Raises:
        ValueError: ``alpha`` outside [0, 1], an unknown ``cam_class`` or ``human_map``, bad shapes.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    if cam_class not in ("predicted", "true"):
        raise ValueError(f"`cam_class` must be 'predicted' or 'true', got {cam_class!r}")
    if human_map not in ("pil_bilinear", "area"):
        raise ValueError(f"`human_map` must be 'pil_bilinear' or 'area', got {human_map!r}")
    ce = xent_loss(logits, targets)
    classes = logits.detach().float().argmax(dim=1) if cam_class == "predicted" else targets
    cam = minmax_normalise(class_activation_map(features.float(), fc_weight.float(), classes))
    size = (cam.shape[-2], cam.shape[-1])
    human = pil_annotations(annotations, size) if human_map == "pil_bilinear" else pool_annotations(annotations, size)
    cam_mse = F.mse_loss(cam, human)
    return alpha * ce + (1.0 - alpha) * cam_mse, ce, cam_mse


def cyborg_pooled_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    fc_weight: torch.Tensor,
    targets: torch.Tensor,
    annotations: torch.Tensor,
    alpha: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The earlier CYBORG variant (``--loss cyborg_pooled``): true class, area-pooled map, no renormalisation.

    :math:`\alpha\,\mathrm{CE} + (1-\alpha)\,\mathrm{MSE}(\mathrm{minmax}(M_y), \mathrm{pool}_{h \times w}(H))`
    with :math:`M_y` the CAM of the true class at the pooled features (the input of global average
    pooling) and :func:`pool_annotations`. This project's reading of the paper before the authors' code
    was checked; kept so that the book can compare the two. Arguments and returns as :func:`cyborg_loss`.
    """
    return cyborg_loss(logits, features, fc_weight, targets, annotations, alpha, cam_class="true", human_map="area")
