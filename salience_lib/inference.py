"""Running a model for measurement: eval mode that restores every flag, and class probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["class_probabilities", "eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; afterwards restore every submodule's own ``training`` flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def class_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities ``(B, classes)`` in float32, in eval mode and without autograd."""
    with torch.no_grad(), eval_mode(model):
        return torch.softmax(model(images).float(), dim=1)
