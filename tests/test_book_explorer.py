"""The live explorer: every control change redraws, and the number shown is the library's own."""

import ipywidgets as widgets
import pytest
import torch
from torch import nn

from salience_lib.book.explorer import MEASURES, METHODS, explore
from salience_lib.book.figures import PNG_SIGNATURE
from salience_lib.measures import degradation, entropy, geometric, out_of_set
from salience_lib.salience import GradCAM, GradCAMPlusPlus
from tests.helpers import TinyCNN


class FlatHead(nn.Module):
    """A 4-D feature map, then flatten and a linear layer: Grad-CAM applies, CAM does not."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 16 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


@pytest.fixture(scope="module")
def models():
    return {"XENT": TinyCNN(classes=2, seed=0).eval(), "CYBORG": TinyCNN(classes=2, seed=1).eval()}


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def explorer(models, images):
    return explore(models, images, seed=5)


def _direct(models, images, settings):
    """The number the explorer should show, from the library's measure functions called directly."""
    model = models[settings["model"]]
    image = images[settings["image"]][None]
    method = {"Grad-CAM": GradCAM, "Grad-CAM++": GradCAMPlusPlus}[settings["method"]]
    with method(model) as explain:
        measure = settings["measure"]
        if measure == "entropy":
            return entropy.salience_entropy(explain(image), settings["kind"])[0]
        if measure == "out_of_set":
            noise = torch.Generator().manual_seed(5)
            curve = out_of_set.perturbation_curve(model, explain, image, "salt_and_pepper",
                                                  (0.0, settings["fraction"]), generator=noise)
            return curve.similarity[0, -1]
        if measure == "geometric":
            name = settings["transform"]
            return geometric.geometric_consistency(explain, image, [name])[name][0]
        if measure == "degradation":
            return degradation.degradation_effect(model, explain, image, settings["mode"]).probability_drop[0]
        curve = degradation.deletion_curve(model, explain(image), image, (0.0, settings["deleted"]))
        return curve.probability[0, -1]


def test_it_builds_a_widget_with_every_control(explorer, models, images):
    assert type(explorer).__name__ == "Explorer" and isinstance(explorer, widgets.VBox)  # test_book reloads the class
    assert set(explorer.controls) == {"image", "model", "method", "measure", "kind", "fraction", "transform", "mode",
                                      "deleted"}
    assert isinstance(explorer.picture, widgets.Image) and explorer.png.startswith(PNG_SIGNATURE)
    assert list(explorer.controls["method"].options) == list(METHODS)  # TinyCNN has a linear head: CAM applies
    assert [key for _, key in explorer.controls["measure"].options] == list(MEASURES)
    assert explorer.value == pytest.approx(float(_direct(models, images, explorer.settings())), abs=1e-6)
    assert f"{explorer.value:.4f}" in explorer.readout.value


@pytest.mark.parametrize(
    "changes",
    [
        {"image": 1},
        {"model": "CYBORG"},
        {"method": "Grad-CAM++"},
        {"kind": "spatial"},
        {"measure": "out_of_set"},
        {"measure": "out_of_set", "fraction": 0.5},
        {"measure": "geometric"},
        {"measure": "geometric", "transform": "rotate:30"},
        {"measure": "degradation"},
        {"measure": "degradation", "mode": "salient"},
        {"measure": "deletion"},
        {"measure": "deletion", "deleted": 0.7},
    ],
)
def test_a_control_change_redraws_and_shows_the_library_number(explorer, models, images, changes):
    *first, (name, value) = changes.items()
    for key, earlier in first:  # get to the measure whose parameter is changed
        explorer.controls[key].value = earlier
    before = explorer.png
    explorer.controls[name].value = value
    assert explorer.png != before, f"changing {name} to {value!r} did not redraw"
    assert explorer.settings()[name] == value
    expected = float(_direct(models, images, explorer.settings()))
    assert explorer.value == pytest.approx(expected, abs=1e-6)
    assert f"{explorer.value:.4f}" in explorer.readout.value


def test_only_the_parameter_of_the_measure_is_shown(explorer):
    explorer.controls["measure"].value = "geometric"
    shown = [name for name in ("kind", "fraction", "transform", "mode", "deleted")
             if explorer.controls[name].layout.display != "none"]
    assert shown == ["transform"]


def test_the_noise_shown_is_the_noise_measured(explorer, images):
    explorer.controls["measure"].value = "out_of_set"
    noisy = out_of_set.salt_and_pepper(images[:1], 0.1, torch.Generator().manual_seed(5))
    with GradCAM(explorer.models["XENT"]) as cam:
        curve = out_of_set.perturbation_curve(explorer.models["XENT"], cam, images[:1], "salt_and_pepper", (0.0, 0.1),
                                              generator=torch.Generator().manual_seed(5))
        assert explorer.value == pytest.approx(float(curve.similarity[0, -1]))
        from salience_lib.similarity import ssim

        assert float(ssim(cam(noisy), cam(images[:1]))[0]) == pytest.approx(explorer.value, abs=1e-6)


def test_frames_render_each_setting_and_restore_the_controls(explorer):
    before = explorer.settings()
    pngs, labels = explorer.frames([{"measure": "entropy"}, {"measure": "geometric", "transform": "hflip"}])
    assert len(pngs) == len(labels) == 2 and pngs[0] != pngs[1]
    assert all(png.startswith(PNG_SIGNATURE) for png in pngs)
    assert labels[1].startswith("(c) geometric transform, hflip: ")
    assert explorer.settings() == before
    with pytest.raises(KeyError, match="no control named"):
        explorer.frames([{"colour": "red"}])


def test_it_accepts_load_runs_pairs_and_lists(models, images):
    pairs = explore({name: (model, {"loss": "xent"}) for name, model in models.items()}, list(images[:2]))
    assert list(pairs.controls["model"].options) == list(models)
    listed = explore(list(models.values()), images[:1], image_labels=["a face"])
    assert list(listed.controls["model"].options) == ["model 1", "model 2"]
    assert listed.controls["image"].options == (("a face", 0),)


def test_cam_is_offered_only_where_it_applies(images):
    flat = explore({"flat": FlatHead().eval()}, images)
    assert "CAM" not in flat.controls["method"].options
    with pytest.raises(ValueError, match="CAM needs a linear head"):
        explore({"flat": FlatHead().eval()}, images, methods=["CAM"])


@pytest.mark.parametrize(
    ("args", "options", "error", "match"),
    [
        ({}, {}, ValueError, "`models` is empty"),
        ({"m": "not a model"}, {}, TypeError, "must be a torch.nn.Module"),
        (None, {"measure": "stability"}, ValueError, "unknown `measure`"),
        (None, {"methods": ["LRP"]}, ValueError, "unknown salience `methods`"),
        (None, {"methods": []}, ValueError, "unknown salience `methods`"),
        (None, {"image_labels": ["one"]}, ValueError, "`image_labels` has 1 entries for 3 images"),
    ],
)
def test_bad_arguments_raise_clear_errors(models, images, args, options, error, match):
    with pytest.raises(error, match=match):
        explore(models if args is None else args, images, **options)


@pytest.mark.parametrize(
    ("bad", "match"),
    [(torch.rand(3, 32, 32), "non-empty batch"), (torch.rand(0, 3, 32, 32), "non-empty batch"),
     (torch.rand(2, 1, 32, 32), "non-empty batch"), (torch.rand(2, 3, 32, 32) * 255, r"lie in \[0, 1\]"),
     ([], "non-empty batch")],
)
def test_bad_images_raise_clear_errors(models, bad, match):
    with pytest.raises(ValueError, match=match):
        explore(models, bad)

