"""Token models (ViT, DeiT, Swin): where Grad-CAM looks, and how their tokens become a spatial grid.

A vision transformer has no last convolutional block. As pytorch-grad-cam and torchcam do with a
reshape transform, the automatic target is the **input of the last block's attention** — the output
of its first norm (torchvision ViT: ``encoder.layers[-1].ln_1``; Swin: ``features[-1][-1].norm1``)
— with the tokens put back on their grid: the class token dropped, ``(B, N, C)`` → ``(B, C, g, g)``,
and channels-last outputs ``(B, H, W, C)`` permuted to ``(B, C, H, W)``. Never the patch embedding:
its maps carry no class evidence (a randomly initialised or trained ViT alike gives near-constant
maps there). Models whose attention input is not a grid of tokens (MaxViT's window partitions)
need an explicit ``target_layer`` and ``reshape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from salience_lib.inference import eval_mode

__all__ = ["Reshape", "locate_token_layer", "probe_layers", "tokens_to_grid"]

Reshape = Callable[[torch.Tensor], torch.Tensor]


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "LayerNorm" in type(module).__name__  # not a CNN's BatchNorm


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


def probe_layers(model: nn.Module, example: torch.Tensor) -> tuple[str | None, str | None]:
    """One probing forward of ``example`` (no_grad, eval mode; hooks removed after) that finds both targets.

    Returns ``(token layer, feature map)``: the norm whose output is the last attention's input
    (None for a model without attention), and the last module, in execution order, whose output is
    4-D with both spatial sides > 1 (None if there is none).
    """
    last_norm: list[str] = []
    chosen: list[str] = []
    maps: list[str] = []
    handles = []

    def record_map(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-1] > 1 and output.shape[-2] > 1:
                maps.append(name)

        return hook

    def record_attention(*_: object) -> None:
        if last_norm:
            chosen.append(last_norm[-1])

    try:
        for name, module in model.named_modules():
            if not name:
                continue
            handles.append(module.register_forward_hook(record_map(name)))
            if _is_norm(module):
                handles.append(module.register_forward_hook(lambda *_, n=name: last_norm.append(n)))
            elif _is_attention(module):
                handles.append(module.register_forward_pre_hook(record_attention))
        with torch.no_grad(), eval_mode(model):
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return (chosen[-1] if chosen else None), (maps[-1] if maps else None)


def locate_token_layer(model: nn.Module, example: torch.Tensor) -> str | None:
    """Name of the norm whose output is the last attention's input, or None for a model without attention."""
    return probe_layers(model, example)[0]
