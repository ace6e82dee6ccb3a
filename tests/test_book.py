import importlib
import io

import ipywidgets as widgets
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from ipywidgets.embed import embed_data
from ipywidgets.widgets.widget_link import Link
from PIL import Image

from salience_lib import book
from salience_lib.stats import Summary

PNG = b"\x89PNG\r\n\x1a\n"


def _frames(n: int, side: int = 8) -> list[np.ndarray]:
    """n distinct uint8 images."""
    return [np.full((side, side, 3), 20 * i, dtype=np.uint8) for i in range(n)]


def _decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_import_has_no_side_effects():
    before = dict(mpl.rcParams)
    n_widgets = len(widgets.widget._instances)
    importlib.reload(book)
    assert dict(mpl.rcParams) == before
    assert len(widgets.widget._instances) == n_widgets


def test_recipe_colours_are_fixed_and_colour_blind_safe():
    assert book.RECIPE_COLORS == {"xent": "#D55E00", "cyborg": "#0072B2"}
    assert set(book.RECIPE_COLORS.values()) <= set(book.PALETTE)
    assert book.RECIPE_LABELS == {"xent": "XENT", "cyborg": "CYBORG"}
    assert book.MASK_COLOR in book.PALETTE


def test_use_style_is_idempotent():
    with mpl.rc_context():
        book.use_style()
        first = dict(mpl.rcParams)
        book.use_style()
        assert dict(mpl.rcParams) == first
        assert mpl.rcParams["image.cmap"] == book.MAP_CMAP
        cycle = [mpl.colors.to_hex(c).upper() for c in mpl.rcParams["axes.prop_cycle"].by_key()["color"]]
        assert cycle[:2] == [book.RECIPE_COLORS["cyborg"], book.RECIPE_COLORS["xent"]]


def test_to_image_array_layouts():
    chw = torch.rand(3, 5, 7)
    assert np.allclose(book.to_image_array(chw), chw.permute(1, 2, 0).numpy())
    u8 = np.full((4, 4, 3), 255, np.uint8)
    assert np.allclose(book.to_image_array(u8), 1.0)
    grey = book.to_image_array(np.zeros((4, 6)))
    assert grey.shape == (4, 6, 3) and grey.dtype == np.float32
    rgba = book.to_image_array(Image.new("RGBA", (3, 2)))
    assert rgba.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="image"):
        book.to_image_array(np.zeros((2, 3, 5)))


def test_overlay_map_blends_where_the_map_is_high():
    image = torch.full((3, 16, 16), 0.5)
    assert np.allclose(book.overlay_map(image, torch.zeros(16, 16)), 0.5)
    full = book.overlay_map(image, torch.ones(16, 16), alpha=1.0)
    expected = np.asarray(mpl.colormaps[book.MAP_CMAP](1.0)[:3], dtype=np.float32)
    assert np.allclose(full, expected, atol=1e-6)
    small = torch.zeros(4, 4)
    small[0, 0] = 1.0
    resized = book.overlay_map(image, small)  # a 4x4 map over a 16x16 image
    assert resized.shape == (16, 16, 3)
    assert not np.allclose(resized[0, 0], 0.5) and np.allclose(resized[-1, -1], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        book.overlay_map(image, small, alpha=1.5)
    with pytest.raises(ValueError, match="salience"):
        book.overlay_map(image, torch.zeros(2, 4, 4))


def test_to_png_figure_array_and_bytes():
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [0, 1])
    png = book.to_png(fig)
    assert _decode(png).shape == (50, 100, 3)
    assert not plt.fignum_exists(fig.number), "a converted figure is closed"
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(_decode(book.to_png(image)), image)
    assert book.to_png(png) == png
    with pytest.raises(ValueError, match="PNG"):
        book.to_png(b"GIF89a")


def test_gallery_grid_and_checks():
    images = [torch.rand(3, 8, 8) for _ in range(5)]
    masks = [torch.zeros(8, 8)] * 4 + [torch.eye(8)]
    fig = book.gallery(images, masks=masks, maps=[None] * 4 + [torch.rand(2, 2)], ncols=3, titles=list("abcde"))
    try:
        axes = fig.get_axes()
        assert len(axes) == 6
        assert [ax.get_title() for ax in axes[:5]] == list("abcde")
        assert not axes[5].axison
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="maps"):
        book.gallery(images, maps=[None])
    with pytest.raises(ValueError, match="empty"):
        book.gallery([])
    with pytest.raises(ValueError, match="row_labels"):
        book.gallery(images, ncols=3, row_labels=["one"])


def _state(widget: widgets.Widget) -> dict:
    """The widget state a static page embeds: every live widget, as papermill saves it into the notebook."""
    return embed_data(views=[widget])["manager_state"]["state"]


@pytest.mark.parametrize(
    ("make", "control_model"),
    [(book.frame_slider, "SelectionSliderModel"), (book.frame_dropdown, "DropdownModel")],
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
    viewer = book.frame_slider(_frames(3))
    assert viewer.labels == ["1", "2", "3"]
    with pytest.raises(ValueError, match="empty"):
        book.frame_slider([])
    with pytest.raises(ValueError, match="labels"):
        book.frame_dropdown(_frames(2), labels=["only one"])


def test_live_explorer_renders_on_demand_and_caches():
    calls = []

    def render(i: int) -> np.ndarray:
        calls.append(i)
        return _frames(3)[i]

    box = book.live_explorer(render, ["a", "b", "c"])
    assert calls == [0] and _decode(bytes(box.image.value))[0, 0, 0] == 0
    box.control.value = 2
    assert calls == [0, 2] and _decode(bytes(box.image.value))[0, 0, 0] == 40
    box.control.value = 0
    assert calls == [0, 2], "frames are rendered once"


def test_compare_recipes_uses_recipe_colours():
    fig, ax = plt.subplots()
    try:
        values = {"xent": [0.7, 0.72, 0.75, 0.71, 0.74], "cyborg": torch.tensor([0.6, 0.62, 0.61, 0.65, 0.6])}
        summaries = book.compare_recipes(ax, values, "entropy")
        assert set(summaries) == {"xent", "cyborg"} and all(isinstance(s, Summary) for s in summaries.values())
        assert summaries["xent"].n == 5 and summaries["xent"].ci_low <= 0.726 <= summaries["xent"].ci_high
        dots = [c for c in ax.collections if c.get_offsets().shape[0] == 5]
        colours = [mpl.colors.to_hex(c.get_facecolor()[0]).upper() for c in dots]
        assert colours == [book.RECIPE_COLORS["xent"], book.RECIPE_COLORS["cyborg"]]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["XENT", "CYBORG"]
        assert ax.get_ylabel() == "entropy"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        book.compare_recipes(ax, {}, "y")
