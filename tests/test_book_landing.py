"""The landing page's figure: the same faces, one row of maps per model."""

import numpy as np
import pytest
import torch

from salience_lib.book.landing import recipe_maps_figure
from salience_lib.inference import class_probabilities
from salience_lib.salience import GradCAM, InputGradient
from tests.helpers import TinyCNN


@pytest.fixture(scope="module")
def models():
    return {"XENT": TinyCNN(classes=2, seed=0).eval(), "CYBORG": TinyCNN(classes=2, seed=1).eval()}


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _panels(fig):
    """The figure's image panels: one axes per image per row, row by row."""
    return [ax for ax in fig.axes if ax.images]


def test_one_row_of_faces_then_one_row_per_model_titled_with_the_prediction(models, images):
    masks = torch.zeros(3, 16, 16)
    masks[:, 2:6, 2:6] = 1
    fig = recipe_maps_figure(models, images, masks=masks, titles=["real", "seen", "unseen"])
    axes = _panels(fig)
    assert len(axes) == 3 * 3
    assert [ax.get_ylabel() for ax in axes[::3]] == ["face", "XENT", "CYBORG"]
    assert [ax.get_title() for ax in axes[:3]] == ["real", "seen", "unseen"]
    probabilities = class_probabilities(models["CYBORG"], images)
    expected = [f"{['real', 'synthetic'][int(p.argmax())]} {float(p.max()):.2f}" for p in probabilities]
    assert [ax.get_title() for ax in axes[6:]] == expected
    assert len(axes[0].collections) > 0, "the masks are outlined on the face row"
    assert len(axes[3].collections) == 0


def test_the_map_rows_show_each_models_own_grad_cam(models, images):
    fig = recipe_maps_figure(models, images)
    shown = _panels(fig)[3].images[0].get_array()  # XENT's map over the first face
    plain = _panels(fig)[0].images[0].get_array()
    with GradCAM(models["XENT"]) as cam:
        has_salience = bool(cam(images[:1]).max() > 0)
    assert not np.allclose(shown, plain) or not has_salience
    other = recipe_maps_figure(models, images, method=InputGradient)
    assert not np.allclose(_panels(other)[3].images[0].get_array(), shown)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"models": {}}, "`models` is empty"),
        ({"models": {"face": TinyCNN(classes=2)}}, "label of the image row"),
        ({"images": torch.rand(3, 16, 16)}, "non-empty batch"),
        ({"masks": torch.zeros(2, 16, 16)}, "`masks` has 2 entries for 3 images"),
        ({"titles": ["one"]}, "`titles` has 1 entries"),
    ],
)
def test_bad_arguments_raise_clear_errors(models, images, kwargs, match):
    arguments = {"models": models, "images": images} | kwargs
    with pytest.raises(ValueError, match=match):
        recipe_maps_figure(**arguments)
