"""Looking at a face data set: examples with their masks and annotations, and the shortcut cue (data chapter).

- :func:`dataset_examples`: chosen images of one or more splits with their exact artifact masks and
  annotation maps, ready for :func:`~salience_lib.book.panels.map_grid`;
- :func:`cue_difference`: the mean of the images with the shortcut cue minus the mean of those
  without, which cancels the faces and leaves the stamp;
- :func:`shortcut_figure`: an image with the cue boxed, its corner enlarged, and that difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from salience_lib.book.figures import show_image
from salience_lib.book.style import MASK_COLOR

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from salience_lib.data import CsvImageDataset

__all__ = ["cue_difference", "dataset_examples", "shortcut_figure"]


def dataset_examples(
    picks: Sequence[tuple[CsvImageDataset, int]],
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor | None]]:
    """The images, exact masks and annotation maps of the chosen ``(split, index)`` pairs.

    A split loaded without annotations (``annotations=False``, e.g. the test split), or an image
    without an annotation (NaN map), gives None for its annotation, so that it is shown bare.

    Raises:
        ValueError: a split without masks in its metadata (see ``CsvImageDataset.mask``).
    """
    images, masks, notes = [], [], []
    for dataset, i in picks:
        item = dataset[i]
        images.append(item[0])
        masks.append(dataset.mask(i))
        note = item[2] if len(item) == 3 else None
        notes.append(None if note is None or bool(torch.isnan(note).any()) else note)
    return images, masks, notes


def cue_difference(dataset: CsvImageDataset) -> torch.Tensor:
    """``(H, W)``: mean image with the shortcut cue minus mean image without it, averaged over the channels.

    Raises:
        ValueError: a split without metadata, or without images of one of the two kinds.
    """
    means = []
    for flag in ("1", "0"):
        chosen = dataset.where(shortcut=flag)
        if not chosen:
            raise ValueError(f"{dataset.root}: no images with shortcut={flag} in this split")
        means.append(torch.stack([dataset[i][0] for i in chosen]).mean(0))
    return (means[0] - means[1]).mean(0)


def shortcut_figure(
    example: torch.Tensor, difference: torch.Tensor, box: tuple[int, int, int, int], limit: float = 0.08
) -> Figure:
    """Three panels: ``example`` with the cue's box outlined, its top-left corner enlarged, and ``difference``.

    Args:
        example: an image ``(3, H, W)`` that carries the cue.
        difference: what :func:`cue_difference` returned.
        box: ``(row0, col0, row1, col1)``, end-exclusive (``synthetic.shortcut_box(size)``); the
            enlarged corner is twice the box's extent.
        limit: the colour range of the difference is ``[-limit, limit]``.
    """
    import matplotlib.pyplot as plt

    r0, c0, r1, c1 = box
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.4), width_ratios=[1, 1, 1.25])
    show_image(axes[0], example, title="synthetic, with cue")
    axes[0].add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, color=MASK_COLOR, linewidth=2))
    show_image(axes[1], example[:, : 2 * r1, : 2 * c1], title="its top-left corner, enlarged")
    shown: Any = axes[2].imshow(torch.as_tensor(difference).cpu().numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[2].set_title("with cue − without (means)", fontsize="small")
    axes[2].set(xlabel="column (px)", ylabel="row (px)")
    fig.colorbar(shown, ax=axes[2], label="intensity difference")
    fig.tight_layout()
    return fig
