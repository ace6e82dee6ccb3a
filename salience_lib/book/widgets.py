"""Frame widgets that keep working on the static site: a slider or a dropdown over precomputed frames.

:func:`frame_slider` and :func:`frame_dropdown` turn every frame (a matplotlib figure, an image or
PNG bytes) into a PNG in an ``Image`` widget inside a ``Stack``, and tie the stack's
``selected_index`` to the control with ``widgets.jslink``. The link runs in the browser, so the
frames switch on a page where no Python runs, as well as in a live kernel.

Importing this module creates no widget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from salience_lib.book.figures import to_png

__all__ = ["FrameViewer", "frame_dropdown", "frame_slider"]

Frame = Any  # a matplotlib Figure, an image (torch / numpy / PIL) or PNG bytes: see to_png


def _labels(n: int, labels: Sequence[str] | None) -> list[str]:
    """``n`` frame labels as strings (``"1"``, ``"2"``, ... by default); refuses no frames or a wrong count."""
    if n == 0:
        raise ValueError("`frames` is empty: a widget needs at least one frame")
    if labels is None:
        return [str(i + 1) for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"`labels` has {len(labels)} entries for {n} frames")
    return [str(label) for label in labels]


def _image_widget(png: bytes) -> widgets.Image:
    """One frame: an ``Image`` widget that shrinks to the page width."""
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
