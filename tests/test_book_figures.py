import io

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from salience_lib.book import figures
from salience_lib.book.style import MAP_CMAP


def _decode(png: bytes) -> np.ndarray:
    assert png.startswith(figures.PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_to_image_array_layouts():
    chw = torch.rand(3, 5, 7)
    assert np.allclose(figures.to_image_array(chw), chw.permute(1, 2, 0).numpy())
    u8 = np.full((4, 4, 3), 255, np.uint8)
    assert np.allclose(figures.to_image_array(u8), 1.0)
    grey = figures.to_image_array(np.zeros((4, 6)))
    assert grey.shape == (4, 6, 3) and grey.dtype == np.float32
    rgba = figures.to_image_array(Image.new("RGBA", (3, 2)))
    assert rgba.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="image"):
        figures.to_image_array(np.zeros((2, 3, 5)))


def test_overlay_map_blends_where_the_map_is_high():
    image = torch.full((3, 16, 16), 0.5)
    assert np.allclose(figures.overlay_map(image, torch.zeros(16, 16)), 0.5)
    full = figures.overlay_map(image, torch.ones(16, 16), alpha=1.0)
    expected = np.asarray(mpl.colormaps[MAP_CMAP](1.0)[:3], dtype=np.float32)
    assert np.allclose(full, expected, atol=1e-6)
    small = torch.zeros(4, 4)
    small[0, 0] = 1.0
    resized = figures.overlay_map(image, small)  # a 4x4 map over a 16x16 image
    assert resized.shape == (16, 16, 3)
    assert not np.allclose(resized[0, 0], 0.5) and np.allclose(resized[-1, -1], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        figures.overlay_map(image, small, alpha=1.5)
    with pytest.raises(ValueError, match="salience"):
        figures.overlay_map(image, torch.zeros(2, 4, 4))


def test_to_png_figure_array_and_bytes():
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [0, 1])
    png = figures.to_png(fig)
    assert _decode(png).shape == (50, 100, 3)
    assert not plt.fignum_exists(fig.number), "a converted figure is closed"
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(_decode(figures.to_png(image)), image)
    assert figures.to_png(png) == png
    with pytest.raises(ValueError, match="PNG"):
        figures.to_png(b"GIF89a")


def test_gallery_grid_and_checks():
    images = [torch.rand(3, 8, 8) for _ in range(5)]
    masks = [torch.zeros(8, 8)] * 4 + [torch.eye(8)]
    fig = figures.gallery(images, masks=masks, maps=[None] * 4 + [torch.rand(2, 2)], ncols=3, titles=list("abcde"))
    try:
        axes = fig.get_axes()
        assert len(axes) == 6
        assert [ax.get_title() for ax in axes[:5]] == list("abcde")
        assert not axes[5].axison
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="maps"):
        figures.gallery(images, maps=[None])
    with pytest.raises(ValueError, match="empty"):
        figures.gallery([])
    with pytest.raises(ValueError, match="row_labels"):
        figures.gallery(images, ncols=3, row_labels=["one"])
