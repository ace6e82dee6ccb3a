"""Running a model for measurement: eval mode that restores every flag, and class probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["class_probabilities", "eval_mode", "probabilities"]


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


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    r"""Class probabilities ``(B, K)`` in float32 from ``(B, K)`` logits.

    :math:`\mathrm{softmax}(z)` for :math:`K \ge 2`; a single-logit (sigmoid) detector gives
    :math:`(1 - \sigma(z), \sigma(z))` — "Real", "Synthetic" — never a softmax over one logit (always 1).

    Raises:
        ValueError: logits that are not ``(B, K)``.
    """
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"the model must return logits of shape (B, classes), got {tuple(logits.shape)}")
    logits = logits.float()
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1 - positive, positive], dim=1)
    return torch.softmax(logits, dim=1)


def class_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """:func:`probabilities` of ``model(images)``, in eval mode and without autograd."""
    with torch.no_grad(), eval_mode(model):
        return probabilities(model(images))
