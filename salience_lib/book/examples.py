"""Hand-made maps for the chapters' worked examples, where the right answer is known by construction.

- :func:`gaussian_blob`: a Gaussian bump on a square grid (a model-free "explainer" output, or a
  salient region to shift by a known amount);
- :func:`hand_made_maps`: a set of 2-D maps from one hot pixel to a uniform map, min–max
  normalised as a salience method returns them, at the native size and upsampled;
- :func:`show_maps`: a row of bare maps in the book's map colour map, each with a title;
- :func:`plot_against_formula`: values computed by the library as markers over their closed form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from salience_lib.book.style import MAP_CMAP, PALETTE
from salience_lib.maps import minmax_normalise, resize_maps

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["gaussian_blob", "hand_made_maps", "plot_against_formula", "show_maps"]


def gaussian_blob(side: int, centre: tuple[float, float], sigma: float) -> torch.Tensor:
    r"""``exp(-((r - r_0)^2 + (c - c_0)^2) / (2\sigma^2))`` on a ``side`` × ``side`` grid of pixel indices.

    Args:
        side: the grid's side in pixels.
        centre: ``(r_0, c_0)`` in pixels (fractional values are fine; ``(side - 1) / 2`` is the middle).
        sigma: the standard deviation in pixels.

    Returns:
        float32 ``(side, side)`` in (0, 1], 1 at the centre if it is a pixel.

    Raises:
        ValueError: ``side`` < 1 or ``sigma`` <= 0.
    """
    if side < 1 or sigma <= 0:
        raise ValueError(f"`side` must be >= 1 and `sigma` > 0, got {side} and {sigma}")
    row, col = torch.meshgrid(
        torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32), indexing="ij"
    )
    return torch.exp(-((row - centre[0]) ** 2 + (col - centre[1]) ** 2) / (2 * sigma**2))


def hand_made_maps(side: int = 8, upsample_to: int = 64, seed: int = 0) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Seven maps from focused to spread: their names, the maps, and the maps upsampled.

    The maps, in order: ``one hot pixel``, ``small blob`` (σ = 1 px), ``wide blob`` (σ = 2.5 px),
    ``two flat halves``, ``ramp``, ``noise`` (uniform, seeded) and ``uniform``. Each is min–max
    normalised, except ``uniform``, which stays at 1 (min–max would make it all zero; both give the
    same entropies). The upsampled maps are bilinearly resized to ``upsample_to`` px, normalised
    again and clipped to [0, 1] (``uniform`` again at 1).

    Returns:
        names, ``(7, side, side)`` and ``(7, upsample_to, upsample_to)`` float32.

    Raises:
        ValueError: ``side`` < 2.
    """
    if side < 2:
        raise ValueError(f"`side` must be >= 2, got {side}")
    row, col = torch.meshgrid(
        torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32), indexing="ij"
    )
    middle = (side - 1) / 2
    made = {
        "one hot pixel": ((row == side // 2 - 1) & (col == side // 2)).float(),
        "small blob": gaussian_blob(side, (middle, middle), 1.0),
        "wide blob": gaussian_blob(side, (middle, middle), 2.5),
        "two flat halves": (col >= side // 2).float(),
        "ramp": col / (side - 1),
        "noise": torch.rand(side, side, generator=torch.Generator().manual_seed(seed)),
        "uniform": torch.ones(side, side),
    }
    native = minmax_normalise(torch.stack(list(made.values())))
    native[-1] = 1.0
    upsampled = minmax_normalise(resize_maps(native, upsample_to)).clamp(0, 1)
    upsampled[-1] = 1.0
    return list(made), native, upsampled


def show_maps(maps: torch.Tensor | Sequence[torch.Tensor], titles: Sequence[str], panel_size: float = 1.6) -> Figure:
    """A row of maps in [0, 1], drawn in the map colour map without ticks, each with its title.

    Raises:
        ValueError: no maps, or titles of another length.
    """
    import matplotlib.pyplot as plt

    if len(maps) == 0:
        raise ValueError("`maps` is empty: nothing to show")
    if len(titles) != len(maps):
        raise ValueError(f"`titles` has {len(titles)} entries for {len(maps)} maps")
    fig, axes = plt.subplots(1, len(maps), figsize=(panel_size * len(maps), panel_size + 0.7), squeeze=False)
    for ax, shown, title in zip(axes[0], maps, titles, strict=True):
        ax.imshow(torch.as_tensor(shown).detach().cpu().numpy(), cmap=MAP_CMAP, vmin=0, vmax=1)
        ax.set_title(title, fontsize="small")
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def plot_against_formula(
    ax: Axes,
    x: Sequence[float] | torch.Tensor,
    checks: Mapping[str, tuple[Sequence[float] | torch.Tensor, Sequence[float] | torch.Tensor]],
    markers: str = "os^D",
) -> float:
    """Per label, the computed values as markers and the closed form as a thin black line through them.

    The legend names each computed curve and, once, the formulas.

    Args:
        ax: matplotlib axes.
        x: the x values.
        checks: label -> (computed values, the formula's values), both as long as ``x``.
        markers: one marker per label, in turn.

    Returns:
        The largest absolute difference between a computed value and its formula.

    Raises:
        ValueError: no checks, or values of another length than ``x``.
    """
    if not checks:
        raise ValueError("`checks` is empty: nothing to plot")
    xs = torch.as_tensor(x, dtype=torch.float64).cpu()
    largest = 0.0
    for k, (label, (computed, formula)) in enumerate(checks.items()):
        a = torch.as_tensor(computed, dtype=torch.float64).detach().cpu().reshape(-1)
        b = torch.as_tensor(formula, dtype=torch.float64).detach().cpu().reshape(-1)
        if a.numel() != xs.numel() or b.numel() != xs.numel():
            raise ValueError(f"`checks[{label!r}]` must hold {xs.numel()} computed and formula values each")
        ax.plot(xs, a, markers[k % len(markers)], ms=3, color=PALETTE[2 + 2 * k % (len(PALETTE) - 2)], label=label)
        ax.plot(xs, b, "-", lw=1, color="black", label="formulas" if k == len(checks) - 1 else None)
        largest = max(largest, float((a - b).abs().max()))
    return largest
