"""Running a model for measurement: eval mode that restores every flag, and class probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SCORES", "Score", "class_probabilities", "eval_mode", "get_score", "probabilities"]


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


@dataclass(frozen=True)
class Score:
    r"""What a measure records of the model's output on a (perturbed) image: per-class scores and whose.

    * ``softmax_predicted`` (ours): :func:`probabilities` — softmax, or :math:`(1-\sigma(z), \sigma(z))`
      for one logit — of the class predicted on the clean image;
    * ``sigmoid_synthetic`` (the authors' ``PAScore``: ``sigmoid(output)[:, 1]``): the element-wise
      sigmoid of every logit, of class 1 ("Synthetic") whatever was predicted. It is not a
      probability distribution (two classes' scores need not sum to 1) and, for two logits, not
      the softmax probability :math:`\sigma(z_1 - z_0)`. A one-logit model gives
      :math:`(1-\sigma(z), \sigma(z))` as with softmax, so its "Synthetic" score is :math:`\sigma(z)`.

    Element-wise sigmoid and softmax are both monotone in each logit, so either way the predicted class
    (the argmax, which decides a flip) is the argmax of the logits.
    """

    name: str
    activation: str  # "softmax" or "sigmoid"
    target: str  # "predicted" or "synthetic"

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` float32 scores of ``(B, K)`` logits (see the class docstring)."""
        if self.activation == "softmax" or (logits.ndim == 2 and logits.shape[1] == 1):
            return probabilities(logits)
        if logits.ndim != 2:
            raise ValueError(f"the model must return logits of shape (B, classes), got {tuple(logits.shape)}")
        return torch.sigmoid(logits.float())

    def targets(self, clean_scores: torch.Tensor) -> torch.Tensor:
        """``(B,)`` the class whose score is recorded: the clean prediction, or class 1 ("Synthetic")."""
        if self.target == "predicted":
            return clean_scores.argmax(dim=1)
        return torch.ones(clean_scores.shape[0], dtype=torch.long, device=clean_scores.device)

    def model_scores(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` of ``model(images)``, in eval mode and without autograd."""
        with torch.no_grad(), eval_mode(model):
            return self.scores(model(images))


SCORES: dict[str, Score] = {
    "softmax_predicted": Score("softmax_predicted", "softmax", "predicted"),
    "sigmoid_synthetic": Score("sigmoid_synthetic", "sigmoid", "synthetic"),
}


def get_score(score: str | Score) -> Score:
    """The :class:`Score` of that name (:data:`SCORES`), or ``score`` itself."""
    if isinstance(score, Score):
        return score
    if score not in SCORES:
        raise ValueError(f"unknown `score` {score!r}; choose from {list(SCORES)}")
    return SCORES[score]
