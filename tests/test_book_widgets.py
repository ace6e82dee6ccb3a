import io

import ipywidgets as widgets
import numpy as np
import pytest
from ipywidgets.embed import embed_data
from ipywidgets.widgets.widget_link import Link
from PIL import Image

from salience_lib.book import widgets as book_widgets

PNG = b"\x89PNG\r\n\x1a\n"


def _frames(n: int, side: int = 8) -> list[np.ndarray]:
    """n distinct uint8 images."""
    return [np.full((side, side, 3), 20 * i, dtype=np.uint8) for i in range(n)]


def _decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _state(widget: widgets.Widget) -> dict:
    """The widget state a static page embeds: every live widget, as papermill saves it into the notebook."""
    return embed_data(views=[widget])["manager_state"]["state"]


@pytest.mark.parametrize(
    ("make", "control_model"),
    [(book_widgets.frame_slider, "SelectionSliderModel"), (book_widgets.frame_dropdown, "DropdownModel")],
)
def test_frame_widgets_switch_in_the_browser(make, control_model):
    viewer = make(_frames(4), labels=["a", "b", "c", "d"], description="pick")
    assert isinstance(viewer, widgets.VBox)
    assert viewer.children == (viewer.control, viewer.stack)
    assert isinstance(viewer.stack, widgets.Stack) and viewer.stack.selected_index == 0
    assert len(viewer.stack.children) == 4 and len(viewer.pngs) == 4
    assert all(isinstance(c, widgets.Image) and bytes(c.value).startswith(PNG) for c in viewer.stack.children)
    assert [_decode(p)[0, 0, 0] for p in viewer.pngs] == [0, 20, 40, 60]
    assert viewer.control.description == "pick" and [o[0] for o in viewer.control.options] == list("abcd")
    # jslink: a Link widget between control.index and stack.selected_index, i.e. no Python callback.
    assert isinstance(viewer.link, Link)
    assert viewer.link.source == (viewer.control, "index")
    assert viewer.link.target == (viewer.stack, "selected_index")
    state = _state(viewer)
    assert state[viewer.control.model_id]["model_name"] == control_model
    stack = state[viewer.stack.model_id]
    assert stack["model_name"] == "StackModel" and stack["state"]["selected_index"] == 0
    images = [ref.removeprefix("IPY_MODEL_") for ref in stack["state"]["children"]]
    assert [state[i]["model_name"] for i in images] == ["ImageModel"] * 4
    link = state[viewer.link.model_id]
    assert link["model_name"] == "LinkModel"
    assert link["state"]["source"] == [f"IPY_MODEL_{viewer.control.model_id}", "index"]
    assert link["state"]["target"] == [f"IPY_MODEL_{viewer.stack.model_id}", "selected_index"]


def test_frame_widget_checks_and_default_labels():
    viewer = book_widgets.frame_slider(_frames(3))
    assert viewer.labels == ["1", "2", "3"]
    with pytest.raises(ValueError, match="empty"):
        book_widgets.frame_slider([])
    with pytest.raises(ValueError, match="labels"):
        book_widgets.frame_dropdown(_frames(2), labels=["only one"])
