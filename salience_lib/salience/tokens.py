"""Token models (ViT, DeiT, Swin, MaxViT): where Grad-CAM looks, and how their tokens become a spatial grid.

A vision transformer has no last convolutional block. As pytorch-grad-cam and torchcam do with a
reshape transform, the automatic target is the **input of the last attention**: the module whose
output the last attention module receives — in a pre-norm block its first norm (torchvision ViT:
``encoder.layers[-1].ln_1``; Swin: ``features[-1][-1].norm1``; MaxViT: the last grid attention's
``attn_layer[0]``), in Swin V2's post-norm blocks the previous block (``features[-1][-2]``) — with
the tokens put back on their grid: the class token dropped, ``(B, N, C)`` → ``(B, C, g, g)``,
channels-last outputs ``(B, H, W, C)`` permuted to ``(B, C, H, W)``, and MaxViT's window/grid
partitions ``(B, windows, P·P, C)`` departitioned with the layer's own inverse. Never the patch
embedding: its maps carry no class evidence (a randomly initialised or trained ViT alike gives
near-constant maps there). Models laid out otherwise pass ``target_layer`` and ``reshape``.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable

import torch
from torch import nn

from salience_lib.inference import eval_mode

__all__ = ["Reshape", "grid_reshape", "locate_token_layer", "partition_reshape", "probe_layers", "tokens_to_grid"]

Reshape = Callable[[torch.Tensor], torch.Tensor]


def _is_attention(module: nn.Module) -> bool:
    # torchvision: MultiheadAttention (ViT), ShiftedWindowAttention(V2) (Swin), RelativePositionalMultiHeadAttention
    # (MaxViT); timm: Attention, WindowAttention, ...
    named = re.search(r"Attention(V\d+)?$", type(module).__name__) is not None
    return isinstance(module, nn.MultiheadAttention) or named


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "LayerNorm" in type(module).__name__  # not a CNN's BatchNorm


def _is_partition_layer(module: nn.Module) -> bool:
    """torchvision MaxViT's ``PartitionAttentionLayer``: attention over window or grid partitions."""
    return all(hasattr(module, a) for a in ("partition_op", "departition_op", "departition_swap", "p", "grid_size"))


def tokens_to_grid(tokens: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """``(B, N, C)`` tokens (``N`` = g² or g² + 1 with a leading class token) or channels-last
    ``(B, H, W, C)`` → ``(B, C, h, w)``.

    Raises:
        ValueError: a token count that is not a square (with or without one class token).
    """
    if tokens.ndim == 4:
        return tokens.permute(0, 3, 1, 2) if channels_last else tokens
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be (B, N, C) or (B, H, W, C), got shape {tuple(tokens.shape)}")
    n = tokens.shape[1]
    for extra in (0, 1):
        side = math.isqrt(n - extra)
        if side * side == n - extra and side > 1:
            grid = tokens[:, extra:]
            return grid.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)
    raise ValueError(f"{n} tokens are not a square grid (with or without a class token); pass `reshape`")


def _departition(layer: nn.Module) -> Reshape:
    """MaxViT: ``(B, windows, P·P, C)`` partitioned tokens of ``layer`` → ``(B, C, H, W)``, by its own inverse."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 4:
            raise ValueError(f"MaxViT partitioned tokens must be (B, windows, P·P, C), got {tuple(tokens.shape)}")
        rows, cols = layer.grid_size[0] // layer.p, layer.grid_size[1] // layer.p
        return layer.departition_op(layer.departition_swap(tokens), layer.p, rows, cols)

    return reshape


def partition_reshape(model: nn.Module, layer_name: str) -> Reshape | None:
    """MaxViT: the departitioning of a layer inside a partition attention layer's ``attn_layer``/``mlp_layer``.

    Those layers see ``(B, windows, P·P, C)`` window (or grid) partitions, not a picture; the
    returned reshape puts them back on the ``(B, C, H, W)`` grid with the layer's own inverse.
    None for any other layer.
    """
    parts = layer_name.split(".")
    for depth in range(len(parts) - 1, 0, -1):  # innermost enclosing module first
        parent = model.get_submodule(".".join(parts[:depth]))
        if _is_partition_layer(parent):
            return _departition(parent) if parts[depth] in ("attn_layer", "mlp_layer") else None
    return None


def grid_reshape(model: nn.Module, layer_name: str) -> Reshape:
    """How the output of a token layer (e.g. from :func:`probe_layers`) becomes a ``(B, C, h, w)`` grid.

    Inside a torchvision MaxViT partition attention layer: :func:`partition_reshape`; otherwise
    :func:`tokens_to_grid`.
    """
    return partition_reshape(model, layer_name) or tokens_to_grid


def probe_layers(model: nn.Module, example: torch.Tensor) -> tuple[str | None, str | None]:
    """One probing forward of ``example`` (no_grad, eval mode; hooks removed after) that finds both targets.

    Returns ``(token layer, feature map)``: the module whose output the last attention module
    receives as its (first) input — the most recent module that returned that very tensor, or, if
    no module did (an input computed by functional code), the last norm run before that attention
    — (None for a model without attention); and the last module, in execution order, whose output
    is 4-D with both spatial sides > 1 (None if there is none).
    """
    last_norm: list[str] = []
    producers: dict[int, tuple[str, weakref.ref]] = {}  # id(output) -> (latest module returning it, the tensor)
    chosen: list[str] = []
    maps: list[str] = []
    handles = []

    def record_output(name: str, norm: bool) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                return
            producers[id(output)] = (name, weakref.ref(output))
            if norm:
                last_norm.append(name)
            if output.ndim == 4 and output.shape[-1] > 1 and output.shape[-2] > 1:
                maps.append(name)

        return hook

    def record_attention(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        name, ref = producers.get(id(first), (None, None))
        if ref is not None and ref() is first:
            chosen.append(name)
        elif last_norm:
            chosen.append(last_norm[-1])

    try:
        for name, module in model.named_modules():
            if not name:
                continue
            handles.append(module.register_forward_hook(record_output(name, _is_norm(module))))
            if _is_attention(module):
                handles.append(module.register_forward_pre_hook(record_attention, with_kwargs=True))
        with torch.no_grad(), eval_mode(model):
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return (chosen[-1] if chosen else None), (maps[-1] if maps else None)


def locate_token_layer(model: nn.Module, example: torch.Tensor) -> str | None:
    """Name of the module whose output is the last attention's input, or None for a model without attention."""
    return probe_layers(model, example)[0]
