import pytest
import torch

from salience_lib.measures.geometric import GeometricAccumulator, geometric_consistency
from salience_lib.salience import GradCAM
from salience_lib.similarity import pearson
from salience_lib.transforms import DEFAULT_TRANSFORMS
from tests.helpers import TinyCNN, channel_mean, fixed_position

ALL = [*DEFAULT_TRANSFORMS, "rotate:-15", "scale:1.2", "scale:0.8", "shift:3,-2"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(0))


def test_pointwise_explainer_is_perfectly_consistent(images):
    scores = geometric_consistency(channel_mean, images, ALL)
    assert list(scores) == ALL
    for name, values in scores.items():
        assert torch.allclose(values, torch.ones(3), atol=1e-4), name


def test_non_equivariant_explainer_scores_clearly_lower(images):
    scores = geometric_consistency(fixed_position, images, ALL)
    for name in ["hflip", "vflip", "rot90", "rot-90", "rotate:30"]:
        assert scores[name].max() < 0.8, name
    assert torch.stack(list(scores.values())).mean() < 0.9


def test_other_similarity_and_real_explainer(images):
    scores = geometric_consistency(channel_mean, images, ["hflip", "shift_e"], similarity=pearson)
    assert all(torch.allclose(v, torch.ones(3), atol=1e-4) for v in scores.values())
    cam_scores = geometric_consistency(GradCAM(TinyCNN()), images)
    assert all(v.shape == (3,) and torch.isfinite(v).all() for v in cam_scores.values())


def test_unknown_transform_is_refused(images):
    with pytest.raises(ValueError, match="unknown transform"):
        geometric_consistency(channel_mean, images, ["spin"])
    with pytest.raises(ValueError, match="at least one"):
        geometric_consistency(channel_mean, images, [])


def test_accumulator_merge(images):
    first = geometric_consistency(fixed_position, images[:2], ["hflip", "shift_n"])
    second = geometric_consistency(fixed_position, images[2:], ["hflip", "shift_n"])
    whole = geometric_consistency(fixed_position, images, ["hflip", "shift_n"])
    a, b, c = (GeometricAccumulator(["hflip", "shift_n"]) for _ in range(3))
    a.update(first)
    b.update(second)
    c.update(whole)
    assert a.merge(b).compute() == c.compute()
    with pytest.raises(ValueError, match="do not match"):
        c.update({"vflip": whole["hflip"]})


# -- NaN and out-of-range images never become scores (SPEC §9) ---------------------------------------


def test_nan_pixel_is_an_error_not_a_perfect_consistency(images):
    """A NaN pixel used to give all-zero maps, which score 1.0 on every transform."""
    broken = images.clone()
    broken[1, 0, 4, 4] = float("nan")
    cam = GradCAM(TinyCNN()).at(None)
    with pytest.raises(ValueError, match=r"`images` contain NaN or inf values for 1 of 3 images \(batch positions 1\)"):
        geometric_consistency(cam, broken, ["hflip"])


def test_nan_weights_are_an_error_not_a_perfect_consistency(images):
    model = TinyCNN()
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"explainer output on the clean images.*NaN"):
        geometric_consistency(GradCAM(model).at(None), images, ["hflip"])


def test_0_255_images_are_rejected_by_geometric_consistency(images):
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\].*normalise inside the model"):
        geometric_consistency(channel_mean, images * 255, ["hflip"])
