"""Batched salience methods: Grad-CAM, Grad-CAM++, CAM and input gradients.

Every method is a callable ``method(images, targets=None, size=None) -> (B, H, W)``:

* ``images``: ``(B, C, H, W)`` floating tensor on the model's device;
* ``targets``: class index per image (int, sequence or ``(B,)`` tensor); ``None`` = predicted class;
* ``size``: ``None`` returns maps at the target layer's resolution, ``(h, w)`` (or an int) bilinearly
  upsamples on the device before normalisation.

Maps are float32, min–max normalised per map to [0, 1]; a map without spatial variation (for
example an all-zero Grad-CAM) is all zero, never NaN.

While a method runs, the model is put in eval mode (BatchNorm statistics must not move) and every
submodule's ``training`` flag is restored afterwards; ``requires_grad`` flags are never changed.
Hooks live only for the duration of one call, so nothing leaks between calls; the objects are also
context managers (``with GradCAM(model) as cam: ...``) and refuse calls after :meth:`close`.

For the layer-based methods the forward pass up to the target layer runs without autograd
bookkeeping and the backward pass stops at the target layer: the cost is one forward plus the
backward through the layers after the target (the floor for Grad-CAM).
"""

from salience_lib.salience.base import Explanation, SizedExplainer, locate_target_layer
from salience_lib.salience.methods import CAM, GradCAM, GradCAMPlusPlus, InputGradient, class_activation_map
from salience_lib.salience.tokens import locate_token_layer, tokens_to_grid

__all__ = [
    "CAM",
    "Explanation",
    "GradCAM",
    "GradCAMPlusPlus",
    "InputGradient",
    "SizedExplainer",
    "class_activation_map",
    "locate_target_layer",
    "locate_token_layer",
    "tokens_to_grid",
]
