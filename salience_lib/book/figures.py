"""Pictures for the chapters: images as arrays, salience overlays, mask outlines, galleries and PNG frames.

Every function takes images as torch tensors ``(3, H, W)`` in [0, 1] (the layout of
:class:`salience_lib.data.CsvImageDataset`), numpy arrays or PIL images, and maps as ``(H, W)``
tensors or arrays in [0, 1]; a map smaller than its image (an 8×8 Grad-CAM map over a 64-px face) is
resized bilinearly for display only.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
import torch
from PIL import Image

from salience_lib.book.style import MAP_CMAP, MASK_COLOR

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PNG_SIGNATURE", "gallery", "outline_mask", "overlay_map", "show_image", "to_image_array", "to_png"]

#: The first eight bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_image_array(image: torch.Tensor | np.ndarray | Image.Image) -> np.ndarray:
    """An image as float32 ``(H, W, 3)`` in [0, 1].

    Accepts a torch tensor ``(3, H, W)`` or ``(H, W)`` in [0, 1] (the layout of
    :class:`salience_lib.data.CsvImageDataset`), a numpy array ``(H, W, 3)``, ``(H, W, 4)`` or
    ``(H, W)`` (uint8, or float in [0, 1]), or a PIL image. Grey images are repeated to 3 channels.

    Raises:
        ValueError: an array of another shape.
    """
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return array
    if isinstance(image, torch.Tensor):
        tensor = image.detach().to("cpu", torch.float32)
        if tensor.ndim == 3 and tensor.shape[0] in (1, 3):
            tensor = tensor.permute(1, 2, 0)
        array = tensor.numpy()
    else:
        array = np.asarray(image)
        array = array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"`image` must be (3, H, W), (H, W, 3|4) or (H, W), got shape {tuple(np.shape(image))}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.clip(array[..., :3], 0.0, 1.0)


def _as_2d(values: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """A map ``(H, W)`` (or with singleton leading dimensions) as float32 numpy."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(values, dtype=np.float32).squeeze()
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D map (H, W), got shape {tuple(np.shape(values))}")
    return array


def _resized(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``shape`` (H, W), clipped to [0, 1]."""
    if array.shape != shape:
        tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
        array = torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    return np.clip(array, 0.0, 1.0)


def overlay_map(
    image: torch.Tensor | np.ndarray | Image.Image,
    salience: torch.Tensor | np.ndarray,
    alpha: float = 0.7,
    cmap: str = MAP_CMAP,
) -> np.ndarray:
    r"""Blend a map in [0, 1] over an image, more opaque where the map is high.

    Each pixel becomes :math:`(1 - \alpha m)\,x + \alpha m\,\mathrm{cmap}(m)`, so parts of the image
    the map ignores stay visible. The map is bilinearly resized to the image when the sizes differ
    (e.g. an 8×8 Grad-CAM map over a 64-px image).

    Args:
        image: anything :func:`to_image_array` accepts.
        salience: a map ``(H, W)`` (or ``(1, H, W)``) with values in [0, 1].
        alpha: opacity where the map is 1, in [0, 1].
        cmap: matplotlib colour map name.

    Returns:
        float32 ``(H, W, 3)`` in [0, 1].

    Raises:
        ValueError: ``alpha`` outside [0, 1] or a map that is not 2-D.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1], got {alpha}")
    rgb = to_image_array(image)
    m = _resized(_as_2d(salience, "salience"), rgb.shape[:2])
    colours = mpl.colormaps[cmap](m)[..., :3].astype(np.float32)
    weight = (alpha * m)[..., None]
    return (1.0 - weight) * rgb + weight * colours


def outline_mask(ax: Axes, mask: torch.Tensor | np.ndarray, color: str = MASK_COLOR, linewidth: float = 1.5) -> None:
    """Draw the outline of a binary mask ``(H, W)`` on ``ax`` (pixel coordinates of an ``imshow``).

    An empty (or full) mask draws nothing.
    """
    m = _as_2d(mask, "mask")
    if m.max() > m.min():
        ax.contour(m, levels=[0.5], colors=[color], linewidths=linewidth)


def show_image(
    ax: Axes,
    image: torch.Tensor | np.ndarray | Image.Image,
    *,
    salience: torch.Tensor | np.ndarray | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    title: str | None = None,
    alpha: float = 0.7,
) -> None:
    """Show an image on ``ax``, optionally with a map overlaid and a mask outlined; no axis ticks.

    Args:
        ax: matplotlib axes.
        image: anything :func:`to_image_array` accepts.
        salience: optional map in [0, 1] blended over the image (:func:`overlay_map`).
        mask: optional binary mask, drawn as an outline (:func:`outline_mask`).
        title: optional axes title.
        alpha: opacity of the map where it is 1.
    """
    shown = overlay_map(image, salience, alpha) if salience is not None else to_image_array(image)
    ax.imshow(shown, interpolation="nearest")
    if mask is not None:
        outline_mask(ax, mask)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        ax.set_title(title, fontsize="small")


def gallery(
    images: Sequence[torch.Tensor | np.ndarray | Image.Image],
    *,
    maps: Sequence[torch.Tensor | np.ndarray | None] | None = None,
    masks: Sequence[torch.Tensor | np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    row_labels: Sequence[str] | None = None,
    panel_size: float = 1.4,
    suptitle: str | None = None,
    alpha: float = 0.7,
) -> Figure:
    """A grid of images, each with an optional map overlay and mask outline; returns the figure.

    Images fill the grid row by row. The figure is made with pyplot, so a notebook shows it at the
    end of the cell; pass it to :func:`to_png` to turn it into a widget frame instead.

    Args:
        images: the images (anything :func:`to_image_array` accepts).
        maps: per image, a map in [0, 1] or None.
        masks: per image, a binary mask or None.
        titles: per image, a short title.
        ncols: columns of the grid.
        row_labels: optional label at the left of each row.
        panel_size: side of one panel in inches.
        suptitle: optional title over the grid.
        alpha: opacity of the maps where they are 1.

    Raises:
        ValueError: no images, ``ncols`` < 1, or a per-image list of another length.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("`images` is empty: nothing to show")
    if ncols < 1:
        raise ValueError(f"`ncols` must be >= 1, got {ncols}")
    for name, values in (("maps", maps), ("masks", masks), ("titles", titles)):
        if values is not None and len(values) != n:
            raise ValueError(f"`{name}` has {len(values)} entries for {n} images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"`row_labels` has {len(row_labels)} entries for {nrows} rows")
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + (0.3 if suptitle else 0)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        show_image(
            ax,
            images[i],
            salience=None if maps is None else maps[i],
            mask=None if masks is None else masks[i],
            title=None if titles is None else titles[i],
            alpha=alpha,
        )
    if row_labels is not None:
        for ax, label in zip(axes[:, 0], row_labels, strict=True):
            ax.set_ylabel(label, fontsize="small")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def to_png(frame: Figure | torch.Tensor | np.ndarray | Image.Image | bytes, *, close: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure, an image (see :func:`to_image_array`) or PNG bytes.

    A figure is closed afterwards (unless ``close=False``) so that a notebook does not also show it.

    Raises:
        ValueError: bytes that are not a PNG.
    """
    if isinstance(frame, bytes | bytearray):
        if not bytes(frame).startswith(PNG_SIGNATURE):
            raise ValueError("`frame` bytes are not a PNG (missing the PNG signature)")
        return bytes(frame)
    buffer = io.BytesIO()
    if hasattr(frame, "savefig"):
        frame.savefig(buffer, format="png")
        if close:
            import matplotlib.pyplot as plt

            plt.close(frame)
    else:
        array = np.round(to_image_array(frame) * 255.0).astype(np.uint8)
        Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
