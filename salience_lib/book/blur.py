"""The single-pass degradation protocol in pictures and in its three conditions (the degradation chapter).

- :func:`blur_sigmas`: the blur σ the protocol gives every pixel, guided by a map in one mode;
- :func:`plot_blur_schedule`: σ against the salience level for both modes, in px at 224 and at the
  images' size;
- :func:`blur_pipeline`: one image through the protocol (map, σ per pixel, blurred image per mode);
- :func:`single_pass` and :func:`effect_means`: the three conditions a faithful explainer orders
  (blur the salient regions, random regions, the background) and each one's mean effect.

σ values are defined at 224 px, as in the paper, and scaled with the image side
(:func:`salience_lib.measures.degradation.level_sigmas`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from salience_lib.book.figures import show_image
from salience_lib.book.style import PALETTE
from salience_lib.blur import blur_levels
from salience_lib.protocol import Protocol, get_protocol
from salience_lib.measures import degradation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CONDITIONS", "blur_pipeline", "blur_sigmas", "effect_means", "plot_blur_schedule", "single_pass"]

#: The single pass's conditions: blur guided by the map in mode ``background``, by a random map in
#: mode ``salient``, by the map in mode ``salient``; a faithful explainer hurts least to most.
CONDITIONS: tuple[str, str, str] = ("background", "random", "salient")

#: The protocol's map smoothing σ, in px at 224 px.
SMOOTHING_SIGMA = 5.0
#: The side at which the protocol's σ values are defined.
REFERENCE_SIZE = 224


def blur_sigmas(
    maps: torch.Tensor, size: tuple[int, int], mode: str = "background", protocol: str | Protocol = "paper"
) -> torch.Tensor:
    """``(B, H, W)`` float64: each pixel's blur σ, in px at ``size``, when ``maps`` guide the single pass.

    The levels come from :func:`salience_lib.blur.blur_levels` with the protocol's pieces, as
    :func:`~salience_lib.measures.degradation.salience_guided_blur` computes them, and each level is
    mapped to its σ (:func:`~salience_lib.measures.degradation.level_sigmas`).

    Raises:
        ValueError: a mode other than ``background`` or ``salient``.
    """
    if mode not in ("background", "salient"):
        raise ValueError(f"`mode` must be 'background' or 'salient', got {mode!r}")
    chosen = get_protocol(protocol)
    scale = min(size) / REFERENCE_SIZE
    salient = mode == "salient"
    levels = blur_levels(
        maps, size, SMOOTHING_SIGMA * scale, degradation.N_LEVELS, upsample=chosen.upsample,
        rescale=chosen.blur_levels, border=chosen.blur_border, bits=chosen.blur_bits,
        invert=salient and chosen.salient_mode == "invert_map",
    ).cpu()  # fmt: skip
    if salient and chosen.salient_mode == "invert_levels":
        levels = (degradation.N_LEVELS - 1) - levels
    return degradation.level_sigmas(scale)[levels]


def plot_blur_schedule(ax: Axes, size: int) -> None:
    """σ against the salience level s for both modes; left axis px at 224, right axis px at ``size``."""
    levels = torch.linspace(0, 10, degradation.N_LEVELS)
    sigmas = degradation.level_sigmas()
    scale = size / REFERENCE_SIZE
    ax.plot(levels, sigmas, color=PALETTE[7], label="mode background: σ = (10 − s)⁴ / 1000")
    ax.plot(levels, sigmas.flip(0), color=PALETTE[2], linestyle="--", label="mode salient: σ = s⁴ / 1000")
    ax.set(xlabel="salience level s (0 = least, 10 = most salient)", ylabel=f"blur σ (px at {REFERENCE_SIZE} px)")
    right = ax.secondary_yaxis("right", functions=(lambda v: v * scale, lambda v: v / scale))
    right.set_ylabel(f"blur σ (px at {size} px)")
    ax.legend(frameon=False, fontsize="small")


def blur_pipeline(
    image: torch.Tensor, salience: torch.Tensor, map_title: str = "salience", protocol: str | Protocol = "paper"
) -> Figure:
    """Six panels: the image, its map, then per mode the σ of every pixel and the blurred image (``protocol``'s blur).

    Args:
        image: ``(3, H, W)`` in [0, 1].
        salience: its map ``(h, w)`` (any resolution).
        map_title: the title of the map's panel (e.g. ``"Grad-CAM (XENT)"``).

    Raises:
        ValueError: an image that is not ``(3, H, W)`` or a map that is not 2-D.
    """
    import matplotlib.pyplot as plt

    if image.ndim != 3 or salience.ndim != 2:
        raise ValueError(
            f"need an image (3, H, W) and a map (h, w), got {tuple(image.shape)} and {tuple(salience.shape)}"
        )
    size = tuple(image.shape[-2:])
    top = 10 * min(size) / REFERENCE_SIZE
    fig, axes = plt.subplots(1, 6, figsize=(13, 2.6), layout="constrained")
    show_image(axes[0], image, title="image")
    show_image(axes[1], image, salience=salience, title=map_title)
    for k, mode in enumerate(("background", "salient")):
        shown = axes[2 + 2 * k].imshow(
            blur_sigmas(salience[None], size, mode, protocol)[0].numpy(), cmap="Greys", vmin=0, vmax=top
        )
        axes[2 + 2 * k].set_title(f"σ, {mode}", fontsize="small")
        axes[2 + 2 * k].set_axis_off()
        guide = salience[None].to(image.device)
        blurred = degradation.salience_guided_blur(image[None], guide, mode, protocol=protocol)[0]
        show_image(axes[3 + 2 * k], blurred, title=f"mode {mode}")
    fig.colorbar(shown, ax=list(axes), label=f"blur σ (px at {min(size)} px)", shrink=0.85)
    return fig


def single_pass(
    model: torch.nn.Module, explainer: Any, images: torch.Tensor, noise: torch.Tensor,
    protocol: str | Protocol = "paper",
) -> dict[str, degradation.DegradationResult]:
    """The three :data:`CONDITIONS` of the single pass for one model, each a ``degradation_effect``.

    ``background`` and ``salient`` blur guided by ``explainer(images)`` in that mode; ``random``
    blurs in mode ``salient`` guided by ``noise`` (e.g. :func:`~salience_lib.measures.degradation.random_maps`
    at the explainer's native resolution).

    Raises:
        ValueError: what :func:`~salience_lib.measures.degradation.degradation_effect` refuses.
    """
    return {
        condition: degradation.degradation_effect(
            model,
            explainer,
            images,
            "salient" if condition == "random" else condition,
            maps=noise if condition == "random" else None,
            protocol=protocol,
        )
        for condition in CONDITIONS
    }


def effect_means(result: degradation.DegradationResult, condition: str) -> dict[str, float]:
    """Mean ``Δp``, ``flip rate`` and ``map similarity`` of one condition, named ``"<quantity> <condition>"``.

    ``Δp`` is the drop of the clean prediction's probability, ``flip rate`` the share of predictions
    that change, ``map similarity`` the SSIM of the new map to the clean one.
    """
    return {
        f"Δp {condition}": float(result.probability_drop.mean()),
        f"flip rate {condition}": float(result.flipped.float().mean()),
        f"map similarity {condition}": float(result.similarity.mean()),
    }
