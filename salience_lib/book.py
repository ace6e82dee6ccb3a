"""What the book's chapters share: one plot style, image overlays, galleries and frame widgets.

Colours are fixed here so that a recipe looks the same in every chapter: :data:`RECIPE_COLORS`
(XENT vermillion, CYBORG blue, from the Okabe–Ito palette, which stays distinguishable with the
common colour-vision deficiencies). Salience and annotation maps use the perceptually uniform
``inferno`` colour map (:data:`MAP_CMAP`); artifact masks are outlined in :data:`MASK_COLOR`.

Widgets come in two kinds:

- :func:`frame_slider` and :func:`frame_dropdown` precompute every frame as a PNG and switch between
  them in the browser (a ``Stack`` of ``Image`` widgets whose ``selected_index`` is tied to the
  control by ``widgets.jslink``). They keep working on the static site, where no Python runs.
- :func:`live_explorer` renders frames on demand with a Python callback: it needs a live kernel,
  and a static page shows only its first frame.

Importing this module has no side effects: matplotlib's style changes only when a chapter calls
:func:`use_style`, and no widget exists until one of the functions below makes it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import matplotlib as mpl
import numpy as np
import torch
from PIL import Image

from salience_lib.stats import Summary, summarise

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "MAP_CMAP",
    "MASK_COLOR",
    "PALETTE",
    "RECIPE_COLORS",
    "RECIPE_LABELS",
    "FrameViewer",
    "compare_recipes",
    "frame_dropdown",
    "frame_slider",
    "gallery",
    "live_explorer",
    "outline_mask",
    "overlay_map",
    "show_image",
    "to_image_array",
    "to_png",
    "use_style",
]

#: Okabe & Ito (2008) colour-blind-safe palette, in the order used for categorical colours.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

#: The colour of each training recipe, in every chapter.
RECIPE_COLORS: dict[str, str] = {"xent": "#D55E00", "cyborg": "#0072B2"}

#: How each recipe is written in figures and tables.
RECIPE_LABELS: dict[str, str] = {"xent": "XENT", "cyborg": "CYBORG"}

#: Colour map for salience and annotation maps (perceptually uniform, readable in grey).
MAP_CMAP = "inferno"

#: Outline colour for exact artifact masks (sky blue: visible on skin, hair and dark maps).
MASK_COLOR = "#56B4E9"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def use_style(context: str = "notebook") -> None:
    """Apply the book's plot style (seaborn ``ticks`` theme, the palette above, PNG-friendly sizes).

    Call once near the top of a chapter; calling it again is harmless.

    Args:
        context: seaborn context (``"paper"``, ``"notebook"``, ``"talk"``).
    """
    import seaborn as sns

    sns.set_theme(context=context, style="ticks", palette=list(PALETTE))
    mpl.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "savefig.bbox": "tight",
            "figure.figsize": (6.4, 4.0),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": "medium",
            "image.cmap": MAP_CMAP,
            "image.interpolation": "nearest",
        }
    )


# ---------------------------------------------------------------------------------------------
# images and overlays


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


# ---------------------------------------------------------------------------------------------
# comparing the recipes


def compare_recipes(
    ax: Axes,
    values: Mapping[str, Sequence[float] | torch.Tensor | np.ndarray],
    ylabel: str,
    *,
    title: str | None = None,
    seed: int = 0,
) -> dict[str, Summary]:
    """Per recipe: every value as a dot, and the mean with its 95% bootstrap CI; same colours everywhere.

    Meant for a handful to a few hundred values per recipe (e.g. one value per trained model).

    Args:
        ax: matplotlib axes.
        values: recipe name (``"xent"``, ``"cyborg"``, or any other) -> values.
        ylabel: what the values are (the y-axis label).
        title: optional axes title.
        seed: seeds the bootstrap and the horizontal jitter of the dots.

    Returns:
        recipe -> :class:`salience_lib.stats.Summary` (mean, CI, n).

    Raises:
        ValueError: no recipes, or a recipe without values.
    """
    if not values:
        raise ValueError("`values` is empty: give at least one recipe")
    rng = np.random.default_rng(seed)
    summaries: dict[str, Summary] = {}
    names = list(values)
    for x, name in enumerate(names):
        data = np.asarray(torch.as_tensor(values[name]).detach().cpu(), dtype=np.float64).reshape(-1)
        summary = summarise(data, seed=seed)
        summaries[name] = summary
        color = RECIPE_COLORS.get(name, PALETTE[(x + 2) % len(PALETTE)])
        jitter = rng.uniform(-0.12, 0.12, data.size)
        ax.scatter(x + jitter, data, s=18, color=color, alpha=0.55 if data.size > 20 else 0.85, linewidths=0)
        ax.errorbar(
            x + 0.3,
            summary.mean,
            yerr=[[summary.mean - summary.ci_low], [summary.ci_high - summary.mean]],
            fmt="D",
            color=color,
            capsize=4,
            markersize=6,
        )
    ax.set_xticks(range(len(names)), [RECIPE_LABELS.get(n, n) for n in names])
    ax.set_xlim(-0.5, len(names) - 0.3)
    ax.set_xlabel("recipe (dots: values; diamond: mean with 95% bootstrap CI)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return summaries


# ---------------------------------------------------------------------------------------------
# widgets

Frame = Any  # a matplotlib Figure, an image (torch / numpy / PIL) or PNG bytes: see to_png


def _labels(n: int, labels: Sequence[str] | None) -> list[str]:
    if n == 0:
        raise ValueError("`frames` is empty: a widget needs at least one frame")
    if labels is None:
        return [str(i + 1) for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"`labels` has {len(labels)} entries for {n} frames")
    return [str(label) for label in labels]


def _image_widget(png: bytes) -> widgets.Image:
    return widgets.Image(value=png, format="png", layout=widgets.Layout(max_width="100%", height="auto"))


class FrameViewer(widgets.VBox):
    """A control above a ``Stack`` of precomputed PNG frames, linked in the browser (no kernel needed).

    Made by :func:`frame_slider` and :func:`frame_dropdown`. On the page it is an ordinary ``VBox``.

    Attributes:
        control: the slider or dropdown; its ``index`` is the frame shown.
        stack: a ``Stack`` with one ``Image`` widget per frame.
        link: the ``widgets.jslink`` from ``control.index`` to ``stack.selected_index``.
        pngs: the frames' PNG bytes.
        labels: the frames' labels.
    """

    def __init__(self, control: widgets.Widget, frames: Sequence[Frame], labels: list[str]) -> None:
        pngs = [to_png(frame) for frame in frames]
        stack = widgets.Stack(children=[_image_widget(png) for png in pngs], selected_index=0)
        super().__init__([control, stack], layout=widgets.Layout(width="100%"))
        self.add_class("salience-frames")
        self.control, self.stack, self.pngs, self.labels = control, stack, pngs, labels
        self.link = widgets.jslink((control, "index"), (stack, "selected_index"))


def frame_slider(
    frames: Sequence[Frame], labels: Sequence[str] | None = None, description: str = "frame"
) -> FrameViewer:
    """A slider that switches between precomputed frames, in a live kernel and on a static page.

    Every frame becomes a PNG in an ``Image`` widget inside a ``Stack``; a ``SelectionSlider``
    (showing the current label) drives ``stack.selected_index`` through ``widgets.jslink``, which
    runs in the browser, so the static site needs no kernel. Figures are closed once converted.

    Args:
        frames: matplotlib figures, images (see :func:`to_image_array`) or PNG bytes.
        labels: one label per frame (default ``"1"``, ``"2"``, ...).
        description: text at the left of the slider.

    Returns:
        A :class:`FrameViewer` (slider above the frames).

    Raises:
        ValueError: no frames, or a different number of labels.
    """
    names = _labels(len(frames), labels)
    slider = widgets.SelectionSlider(
        options=[(name, i) for i, name in enumerate(names)],
        value=0,
        description=description,
        continuous_update=True,
        readout=True,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="95%"),
    )
    return FrameViewer(slider, frames, names)


def frame_dropdown(
    frames: Sequence[Frame], labels: Sequence[str] | None = None, description: str = "show"
) -> FrameViewer:
    """Like :func:`frame_slider`, with a dropdown menu of the labels instead of a slider."""
    names = _labels(len(frames), labels)
    dropdown = widgets.Dropdown(
        options=[(name, i) for i, name in enumerate(names)],
        value=0,
        description=description,
        style={"description_width": "initial"},
    )
    return FrameViewer(dropdown, frames, names)


def live_explorer(render: Callable[[int], Frame], labels: Sequence[str], description: str = "frame") -> widgets.VBox:
    """A slider whose frames are computed on demand by ``render(index)`` (needs a live kernel).

    Frames are cached once rendered. On a static page only the first frame shows and the slider
    does nothing: use :func:`frame_slider` for the book's pages.

    Args:
        render: returns frame ``index`` (a figure, an image or PNG bytes).
        labels: one label per frame; their number sets the slider's range.
        description: text at the left of the slider.

    Returns:
        A ``VBox`` (slider above one ``Image``) with attributes ``control`` and ``image``.

    Raises:
        ValueError: no labels.
    """
    names = _labels(len(labels), labels)
    cache: dict[int, bytes] = {}

    def frame(index: int) -> bytes:
        if index not in cache:
            cache[index] = to_png(render(index))
        return cache[index]

    slider = widgets.SelectionSlider(
        options=[(name, i) for i, name in enumerate(names)],
        value=0,
        description=description,
        continuous_update=False,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="95%"),
    )
    image = _image_widget(frame(0))

    def update(change: dict[str, Any]) -> None:
        image.value = frame(int(change["new"]))

    slider.observe(update, names="value")
    box = widgets.VBox([slider, image], layout=widgets.Layout(width="100%"))
    box.control, box.image = slider, image
    return box
