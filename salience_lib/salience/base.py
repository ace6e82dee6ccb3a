"""The salience methods' common machinery: argument checks, target-layer search, hooks, explainers.

See :mod:`salience_lib.salience` for the call protocol every method follows.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from salience_lib.imaging import check_images
from salience_lib.inference import eval_mode
from salience_lib.maps import minmax_normalise, quantise, resize_maps
from salience_lib.models.checkpoints import unwrap_model, unwrap_name
from salience_lib.salience.tokens import Reshape, grid_reshape, partition_reshape, probe_layers

__all__ = ["Explanation", "Size", "SizedExplainer", "Targets", "locate_target_layer"]

logger = logging.getLogger(__name__)

Targets = int | Sequence[int] | torch.Tensor | None
Size = int | tuple[int, int] | None


# --------------------------------------------------------------------------------------------------
# model and argument plumbing


def resolve_targets(targets: Targets, logits: torch.Tensor) -> torch.Tensor:
    """``(B,)`` long tensor of class indices on the logits' device.

    A single-logit (sigmoid) detector has two classes: 0 = "Real" (z < 0 predicted), 1 = "Synthetic".
    """
    batch, classes = logits.shape[0], max(2, logits.shape[1])
    if targets is None:
        return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
    if isinstance(targets, int):
        out = torch.full((batch,), targets, dtype=torch.long, device=logits.device)
    else:
        out = torch.as_tensor(targets, device=logits.device)
        if out.is_floating_point() or out.dtype == torch.bool:
            raise TypeError(f"`targets` must hold integer class indices, got dtype {out.dtype}")
        out = out.long().reshape(-1)
        if out.numel() == 1 and batch > 1:
            out = out.expand(batch)
        if out.numel() != batch:
            raise ValueError(f"`targets` must have one class index per image ({batch}), got {out.numel()}")
    if bool(((out < 0) | (out >= classes)).any()):
        raise ValueError(f"`targets` must lie in [0, {classes - 1}], got {out.tolist()}")
    return out


def class_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` score of each image's target class: its logit, or for one logit z: z (class 1) and −z (class 0).

    SPEC §6: for a sigmoid detector p(Synthetic) = σ(z) and p(Real) = 1 − σ(z) = σ(−z), so the
    evidence for "Real" is −z.
    """
    if logits.shape[1] == 1:
        return logits[:, 0] * (2 * targets.to(logits.dtype) - 1)
    return logits.gather(1, targets[:, None])[:, 0]


def named_module(model: nn.Module, layer: nn.Module | str) -> tuple[str, nn.Module]:
    if isinstance(layer, str):
        try:
            return layer, model.get_submodule(layer)
        except AttributeError as err:
            names = [n for n, _ in model.named_modules() if n][-8:]
            raise ValueError(
                f"`target_layer` {layer!r} is not a submodule of the model (last module names: {names})"
            ) from err
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError("`target_layer` is a module that is not part of the model")
    raise TypeError(f"`target_layer` must be an nn.Module, a dotted module name or None, got {type(layer).__name__}")


def locate_target_layer(model: nn.Module, example: torch.Tensor) -> str:
    """Name of the last module, in execution order, whose output is 4-D with both spatial sides > 1.

    Probes the model with ``example`` (one image suffices) under ``no_grad`` in eval mode; every
    temporary hook is removed and training flags restored, even on error. (Grad-CAM's automatic
    choice prefers a token model's attention input: :func:`salience_lib.salience.tokens.probe_layers`.)

    Raises:
        ValueError: the model has no such module (for example a pure MLP).
    """
    _, name = probe_layers(model, example)
    if name is None:
        raise ValueError(
            "the model has no module whose output is a 4-D feature map (B, C, H, W) with H, W > 1; "
            "pass `target_layer` explicitly or use InputGradient"
        )
    return name


class Explanation(NamedTuple):
    """What one salience call computes: ``maps`` ``(B, h, w)`` in [0, 1] and the ``(B, K)`` float32 logits."""

    maps: torch.Tensor
    logits: torch.Tensor


# --------------------------------------------------------------------------------------------------
# base classes


class SalienceMethod(abc.ABC):
    """Shared call protocol: argument checks, eval mode, optional autocast, resize and normalise."""

    #: whether the method needs the gradient of the class score (refused under ``torch.inference_mode``)
    needs_gradient = True

    def __init__(self, model: nn.Module, autocast_dtype: torch.dtype | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if autocast_dtype not in (None, torch.float16, torch.bfloat16):
            raise ValueError(f"`autocast_dtype` must be None, torch.float16 or torch.bfloat16, got {autocast_dtype}")
        self.model = model
        self.network = unwrap_model(model)  # what runs: DataParallel's / torch.compile's bare module
        self.autocast_dtype = autocast_dtype
        self._closed = False

    def __enter__(self) -> SalienceMethod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the model; later calls raise. Hooks never outlive a call, so nothing else to undo."""
        self._closed = True

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def __call__(self, images: torch.Tensor, targets: Targets = None, size: Size = None) -> torch.Tensor:
        return self.explain(images, targets, size).maps

    def explain(self, images: torch.Tensor, targets: Targets = None, size: Size = None) -> Explanation:
        """Maps and the logits of the same forward pass (one model pass gives both).

        Measures that need the model's probabilities on an image they also explain use these logits
        instead of a second forward (:func:`salience_lib.inference.probabilities`). Works under
        ``torch.no_grad()`` (gradients are enabled where needed); NaN or inf in the images or the
        weights gives NaN maps (never zeros): the measures refuse them.

        Raises:
            RuntimeError: closed, or a gradient method called inside ``torch.inference_mode()``.
        """
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} was closed; create a new one")
        if self.needs_gradient and torch.is_inference_mode_enabled():
            raise RuntimeError(
                f"{type(self).__name__} needs gradients, which torch.inference_mode() disables: call it outside "
                "inference_mode (under torch.no_grad() it works: it enables gradients where it needs them)"
            )
        images = check_images(images)
        if images.is_inference():  # made under inference_mode: autograd cannot record it, a copy can
            images = images.clone()
        with eval_mode(self.model):
            raw, logits = self._raw_maps(images, targets)
        # An image whose logits hold NaN or inf gets a NaN map (0·x is 0 for finite x, else NaN): a
        # broken pass never yields a plausible map (input gradients stay finite through ReLU), no sync.
        raw = raw.float() + (logits.detach().float() * 0).sum(dim=1)[:, None, None]
        if size is not None:
            raw = resize_maps(raw, size)
        return Explanation(minmax_normalise(raw).detach(), logits.detach().float())

    def at(self, size: Size = None, bits: int | None = None) -> SizedExplainer:
        """This method bound to an output ``size``: an explainer ``images -> maps`` with ``explain``.

        ``bits=8``: its maps are the 8-bit maps the authors saved (:func:`salience_lib.maps.quantise`).
        """
        return SizedExplainer(self, size, bits)

    @abc.abstractmethod
    def _raw_maps(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-normalised maps ``(B, h, w)`` for ``images`` and the forward pass's ``(B, K)`` logits."""


class LayerMethod(SalienceMethod):
    """A method that reads activations (and gradients) of one target layer (``needs_gradient``: :meth:`_combine`'s)."""

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | str | None = None,
        autocast_dtype: torch.dtype | None = None,
        reshape: Reshape | None = None,
    ) -> None:
        super().__init__(model, autocast_dtype)
        self.target_layer_name: str | None = None
        self.target_layer: nn.Module | None = None
        self.reshape = reshape
        if target_layer is not None:
            layer = unwrap_name(model, target_layer) if isinstance(target_layer, str) else target_layer
            self.target_layer_name, self.target_layer = named_module(self.network, layer)
            if reshape is None:  # a MaxViT partition attention layer: never its windows read as a picture
                self.reshape = partition_reshape(self.network, self.target_layer_name)

    def _ensure_layer(self, images: torch.Tensor) -> nn.Module:
        if self.target_layer is None:
            token_layer, feature_map = probe_layers(self.network, images[:1])  # one probing forward
            if token_layer is not None and self.reshape is None:  # the last attention's input, on its grid
                name, self.reshape = token_layer, grid_reshape(self.network, token_layer)
            elif feature_map is not None:
                name = feature_map
            else:
                name = locate_target_layer(self.network, images[:1])  # raises, naming the problem
            self.target_layer_name, self.target_layer = name, self.network.get_submodule(name)
            logger.info("%s: target layer %r", type(self).__name__, name)
        return self.target_layer

    def _as_grid(self, tensor: torch.Tensor) -> torch.Tensor:
        grid = tensor if self.reshape is None else self.reshape(tensor)
        if grid.ndim != 4:
            raise ValueError(
                f"target layer {self.target_layer_name!r} must output a 4-D tensor (B, C, H, W), got shape "
                f"{tuple(tensor.shape)}; for token models pass `reshape` (e.g. salience.tokens_to_grid)"
            )
        return grid

    def _raw_maps(self, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
        layer = self._ensure_layer(images)
        store: dict[str, torch.Tensor] = {}
        needs_gradient = self.needs_gradient

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor | None:
            if not isinstance(output, torch.Tensor):
                got = type(output).__name__
                raise ValueError(f"target layer {self.target_layer_name!r} must output a tensor, got {got}")
            self._as_grid(output)  # the shape check, before any work
            if not needs_gradient:
                store["activations"] = output.detach()
                return None
            # Cut the graph here: the backward pass stops at this layer, and everything after it is
            # recorded even if the caller (or we, for speed) disabled autograd for the layers before.
            leaf = output.detach().requires_grad_(True)
            torch.set_grad_enabled(True)
            # A clone, so that an in-place op after the layer (DenseNet's F.relu(inplace)) is legal;
            # the activations are read from it after the forward pass: the features the classifier
            # actually pools (post-ReLU for DenseNet), as torchcam sees them.
            passed = leaf.clone()
            store["activations"] = passed
            return passed

        previous = torch.is_grad_enabled()
        handle = layer.register_forward_hook(hook)
        try:
            with self._autocast(images.device):
                torch.set_grad_enabled(False)
                logits = self.network(images)
            if "activations" not in store:
                raise ValueError(f"target layer {self.target_layer_name!r} was not called during the forward pass")
            if logits.ndim != 2:
                raise ValueError(f"the model must return logits of shape (B, classes), got {tuple(logits.shape)}")
            target_idx = resolve_targets(targets, logits)
            activations = store["activations"]
            gradients = None
            if needs_gradient:
                with torch.enable_grad():
                    score = class_scores(logits, target_idx).sum()
                    (gradients,) = torch.autograd.grad(score, activations)
                gradients = gradients.float()
                gradients = self._as_grid(gradients)
            return self._combine(self._as_grid(activations.detach()).float(), gradients, target_idx), logits
        finally:
            handle.remove()
            torch.set_grad_enabled(previous)

    @abc.abstractmethod
    def _combine(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        """The method's formula: ``(B, C, h, w)`` activations (and gradients) → ``(B, h, w)`` maps."""


class SizedExplainer:
    """A salience method bound to an output size: ``explainer(images) -> maps`` and ``explain(images)``.

    The measures call explainers as ``images -> maps``; when one also has ``explain`` and its
    ``model`` is the measured model, they take the probabilities from the same pass.
    """

    def __init__(self, method: SalienceMethod, size: Size = None, bits: int | None = None) -> None:
        self.method, self.size, self.bits = method, size, bits

    @property
    def model(self) -> nn.Module:
        """The explained model."""
        return self.method.model

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.explain(images).maps

    def explain(self, images: torch.Tensor) -> Explanation:
        """Maps at ``size`` (predicted class; 8-bit with ``bits=8``) and logits of one pass."""
        explained = self.method.explain(images, size=self.size)
        if self.bits is None:
            return explained
        return Explanation(quantise(explained.maps, self.bits), explained.logits)
