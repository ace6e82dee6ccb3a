"""Grad-CAM, Grad-CAM++, CAM and input gradients: each method's formula on the shared machinery."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from salience_lib.salience.base import (
    LayerMethod,
    SalienceMethod,
    Targets,
    class_scores,
    named_module,
    resolve_targets,
)

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "InputGradient", "class_activation_map"]


def class_activation_map(features: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Class activation map :math:`M_c(i, j) = \sum_k w_{c,k} A_k(i, j)` of class :math:`c` = ``targets``.

    Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016 (no bias, no ReLU,
    not normalised). Differentiable in ``features`` and ``weight``.

    Args:
        features: ``(B, C, h, w)`` last feature map :math:`A`.
        weight: ``(K, C)`` weight of the final linear layer.
        targets: ``(B,)`` integer class per image.

    Returns:
        ``(B, h, w)`` maps in the dtype of ``features``.

    Raises:
        ValueError: shapes that do not fit together.
    """
    if features.ndim != 4:
        raise ValueError(f"`features` must be (B, C, h, w), got shape {tuple(features.shape)}")
    if weight.ndim != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(f"`weight` must be (K, C) with C = {features.shape[1]}, got shape {tuple(weight.shape)}")
    if targets.shape != (features.shape[0],) or targets.is_floating_point():
        raise ValueError(
            f"`targets` must be integer of shape ({features.shape[0]},), got {targets.dtype} {tuple(targets.shape)}"
        )
    return torch.einsum("bc,bchw->bhw", weight[targets].to(features.dtype), features)


# --------------------------------------------------------------------------------------------------
# methods


class GradCAM(LayerMethod):
    r"""Grad-CAM: `Visual Explanations from Deep Networks via Gradient-based Localization
    <https://arxiv.org/abs/1610.02391>`_ (Selvaraju et al., ICCV 2017).

    .. math::
        w_k^c = \frac{1}{Z}\sum_{i,j} \frac{\partial y^c}{\partial A_{k,ij}}, \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A_k\Big)

    with :math:`y^c` the logit of class :math:`c` and :math:`A` the target layer's output; the map
    is then min–max normalised per image.

    Args:
        model: a classifier returning ``(B, classes)`` logits.
        target_layer: module or dotted name; ``None`` = for a token model the input of its last
            attention on its grid (:mod:`salience_lib.salience.tokens`: ViT ``encoder.layers[-1].ln_1``,
            Swin ``features[-1][-1].norm1``, Swin V2 ``features[-1][-2]``, MaxViT the last grid
            attention's ``attn_layer[0]``), else the last module (execution order) with a 4-D output
            whose spatial sides are both > 1 (ResNets ``layer4``, DenseNets ``features`` after the
            in-place ReLU, Inception-v3 ``Mixed_7c``, VGG/AlexNet ``avgpool``, RegNets ``trunk_output``;
            every torchvision classifier is tested: ``tests/test_salience_zoo.py``). Names may carry a
            ``DataParallel``/``torch.compile`` wrapper's ``module.``/``_orig_mod.`` prefix or not.
        autocast_dtype: optional ``torch.bfloat16``/``torch.float16`` mixed precision.
        reshape: ``(tokens) -> (B, C, h, w)`` for a target layer whose output is not a feature map.

    A wrapped model (``nn.DataParallel``, ``torch.compile``) is explained as the bare module inside
    it (:func:`salience_lib.models.checkpoints.unwrap_model`): same parameters, same numbers.

    Example:
        >>> with GradCAM(model) as cam:          # doctest: +SKIP
        ...     maps = cam(images, size=images.shape[-2:])
    """

    def _combine(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        assert gradients is not None
        weights = gradients.mean(dim=(2, 3))
        return F.relu(torch.einsum("bc,bchw->bhw", weights, activations))


class GradCAMPlusPlus(LayerMethod):
    r"""Grad-CAM++: `Improved Visual Explanations for Deep Convolutional Networks
    <https://arxiv.org/abs/1710.11063>`_ (Chattopadhay et al., WACV 2018).

    With :math:`g = \partial y^c / \partial A` and the exponential-score closed form,

    .. math::
        \alpha_{k,ij} = \frac{g_{k,ij}^2}{2 g_{k,ij}^2 + \sum_{a,b} A_{k,ab}\, g_{k,ij}^3}, \qquad
        w_k^c = \sum_{i,j} \alpha_{k,ij}\, \mathrm{ReLU}(g_{k,ij}), \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A_k\Big)

    (:math:`\alpha = 0` where the denominator is 0), as in torchcam and pytorch-grad-cam.
    """

    def _combine(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        assert gradients is not None
        g2 = gradients.pow(2)
        denominator = 2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * gradients.pow(3)
        safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
        weights = (alpha * F.relu(gradients)).sum(dim=(2, 3))
        return F.relu(torch.einsum("bc,bchw->bhw", weights, activations))


class CAM(LayerMethod):
    r"""Class activation map: `Learning Deep Features for Discriminative Localization
    <https://arxiv.org/abs/1512.04150>`_ (Zhou et al., CVPR 2016).

    .. math:: M_c = \sum_k w_{c,k} A_k

    with :math:`w` the weight of the final linear layer that follows global average pooling of
    :math:`A`. No ReLU (as in the paper); min–max normalised per image. Needs no gradient.

    Args:
        fc_layer: the final ``nn.Linear`` (module or dotted name); ``None`` = the last ``nn.Linear``
            of the model whose input size equals the target layer's channel count.
    """

    needs_gradient = False

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | str | None = None,
        fc_layer: nn.Module | str | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(model, target_layer, autocast_dtype)
        self.fc_layer: nn.Linear | None = None
        if fc_layer is not None:
            _, module = named_module(model, fc_layer)
            if not isinstance(module, nn.Linear):
                raise TypeError(f"`fc_layer` must be an nn.Linear, got {type(module).__name__}")
            self.fc_layer = module

    def _linear_for(self, channels: int) -> nn.Linear:
        if self.fc_layer is not None:
            if self.fc_layer.in_features != channels:
                raise ValueError(
                    f"`fc_layer` expects {self.fc_layer.in_features} input features but the target layer "
                    f"has {channels} channels"
                )
            return self.fc_layer
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear) and m.in_features == channels]
        if not linears:
            raise ValueError(
                f"CAM needs a final nn.Linear with {channels} input features after global average pooling "
                "of the target layer; none found (pass `fc_layer`, or use GradCAM)"
            )
        self.fc_layer = linears[-1]
        return self.fc_layer

    def _combine(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        fc = self._linear_for(activations.shape[1])
        weight = fc.weight.detach().float()
        if weight.shape[0] == 1:  # a sigmoid detector: the evidence for class 0 ("Real") is −z
            weight = torch.cat([-weight, weight])
        return class_activation_map(activations, weight, targets)


class InputGradient(SalienceMethod):
    r"""Vanilla gradient salience: `Deep Inside Convolutional Networks
    <https://arxiv.org/abs/1312.6034>`_ (Simonyan et al., 2014).

    .. math:: S_{ij} = \max_{\text{channel } c'} \left| \frac{\partial y^c}{\partial x_{c',ij}} \right|

    Maps are at input resolution unless ``size`` says otherwise.
    """

    def _raw_maps(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = images.detach().requires_grad_(True)
        with torch.enable_grad(), self._autocast(images.device):
            logits = self.network(inputs)
            if logits.ndim != 2:
                raise ValueError(f"the model must return logits of shape (B, classes), got {tuple(logits.shape)}")
            target_idx = resolve_targets(targets, logits)
            score = class_scores(logits, target_idx).sum()
            (gradients,) = torch.autograd.grad(score, inputs)
        return gradients.float().abs().amax(dim=1), logits
