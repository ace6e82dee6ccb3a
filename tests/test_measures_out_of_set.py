import pytest
import torch

from salience_lib.measures.entropy import salience_entropy
from salience_lib.measures.out_of_set import (
    SALT_AND_PEPPER_FRACTIONS,
    MeanMapAccumulator,
    PerturbationAccumulator,
    normalised_auc,
    perturbation_curve,
    salt_and_pepper,
    similarity_to_mean_map,
)
from salience_lib.salience import GradCAM
from tests.helpers import TinyCNN, channel_mean


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_paper_schedule():
    assert SALT_AND_PEPPER_FRACTIONS == (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)


def test_auc_of_constant_curves():
    grid = torch.tensor(SALT_AND_PEPPER_FRACTIONS, dtype=torch.float64)
    assert torch.allclose(normalised_auc(grid, torch.ones(3, 8)), torch.ones(3, dtype=torch.float32))
    assert torch.allclose(normalised_auc(grid, torch.zeros(3, 8)), torch.zeros(3))
    with pytest.raises(ValueError, match="increasing"):
        normalised_auc(torch.tensor([1.0, 1.0]), torch.ones(2))


def test_curve_starts_at_one_and_falls(images):
    model = TinyCNN()
    cam = GradCAM(model)
    curve = perturbation_curve(model, lambda x: cam(x, size=16), images, generator=torch.Generator().manual_seed(0))
    assert curve.similarity.shape == (4, 8) and curve.probability.shape == (4, 8)
    assert torch.allclose(curve.similarity[:, 0], torch.ones(4), atol=1e-6)
    assert torch.allclose(curve.probability_change[:, 0], torch.zeros(4), atol=1e-6)
    assert (curve.similarity[:, -1] < 0.9).all()
    assert ((curve.auc() >= 0) & (curve.auc() <= 1)).all()


def test_pointwise_explainer_tracks_noise_exactly(images):
    """With the channel mean as explainer, the map *is* the image: similarity falls as noise grows."""
    model = TinyCNN()
    curve = perturbation_curve(model, channel_mean, images, "gaussian_noise", [0.0, 0.1, 0.5])
    means = curve.similarity.mean(0)
    assert means[0] > means[1] > means[2]


def test_families_and_errors(images):
    model = TinyCNN()
    for family in ["salt_and_pepper", "gaussian_noise", "gaussian_blur"]:
        assert perturbation_curve(model, channel_mean, images, family).similarity.shape[0] == 4
    custom = perturbation_curve(model, channel_mean, images, lambda x, s, g: x * (1 - s), [0.0, 0.5])
    assert custom.similarity.shape == (4, 2)
    with pytest.raises(ValueError, match="unknown perturbation `family` 'fog'"):
        perturbation_curve(model, channel_mean, images, "fog")
    with pytest.raises(ValueError, match="severities"):
        perturbation_curve(model, channel_mean, images, lambda x, s, g: x)
    with pytest.raises(ValueError, match="strictly increasing"):
        perturbation_curve(model, channel_mean, images, "salt_and_pepper", [0.5, 0.1])


def test_salt_and_pepper_reexport(images):
    assert (salt_and_pepper(images, 1.0) != images).any()


def test_accumulator_merge_equals_one_pass(images):
    model = TinyCNN()
    severities = [0.0, 0.1, 0.5]
    curve = perturbation_curve(
        model, channel_mean, images, "gaussian_noise", severities, generator=torch.Generator().manual_seed(1)
    )
    whole = PerturbationAccumulator("gaussian_noise", severities)
    whole.update(curve)
    parts = [PerturbationAccumulator("gaussian_noise", severities) for _ in range(2)]
    for part, idx in zip(parts, [slice(0, 1), slice(1, 4)], strict=True):
        part.update(
            type(curve)(
                curve.family,
                curve.severities,
                curve.similarity[idx],
                curve.probability[idx],
                curve.clean_probability[idx],
                curve.targets[idx],
            )
        )
    merged = parts[0].merge(parts[1]).compute()
    assert merged["auc"] == whole.compute()["auc"] and merged["n"] == 4
    with pytest.raises(ValueError, match="does not match"):
        PerturbationAccumulator("salt_and_pepper", severities).update(curve)


def test_distribution_shift_tools(images):
    maps = torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(0))
    acc = MeanMapAccumulator((8, 8))
    acc.update(maps[:2])
    other = MeanMapAccumulator((8, 8))
    other.update(maps[2:])
    mean_map = acc.merge(other).compute()
    assert torch.allclose(mean_map, maps.mean(0), atol=1e-6)
    sims = similarity_to_mean_map(maps, mean_map)
    assert sims.shape == (6,)
    assert torch.allclose(similarity_to_mean_map(mean_map[None], mean_map), torch.ones(1), atol=1e-6)
    with pytest.raises(ValueError, match="mean_map"):
        similarity_to_mean_map(maps, mean_map[:4])
    with pytest.raises(ValueError, match=r"maps of size \(4, 8\) given to a mean map of size \(8, 8\)"):
        acc.update(maps[:, :4])
    with pytest.raises(ValueError, match="no in-set image"):
        MeanMapAccumulator((8, 8)).compute()
    assert salience_entropy(maps).shape == (6,)


# -- NaN and out-of-range images never become scores (SPEC §9) ---------------------------------------


def _nan_weights() -> TinyCNN:
    model = TinyCNN()
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    return model


def test_nan_weights_are_an_error_not_a_perfect_score(images):
    """NaN weights used to give all-zero maps: similarity 1.0 at every severity, AUC 1, no error."""
    model = _nan_weights()
    with pytest.raises(ValueError, match=r"the model's logits on the clean images contain NaN or inf values for 4"):
        perturbation_curve(model, GradCAM(model).at(None), images)


@pytest.mark.parametrize("one_pass", [True, False])
def test_nan_logits_are_an_error_even_when_maps_are_finite(images, one_pass):
    """A NaN bias leaves the gradients (and channel_mean) finite; the logits are NaN: an error naming them."""
    model = TinyCNN()
    with torch.no_grad():
        model.fc.bias[1] = float("nan")
    explainer = GradCAM(model).at(None) if one_pass else channel_mean
    with pytest.raises(ValueError, match=r"the model's (logits|probabilities) on the clean images contain NaN"):
        perturbation_curve(model, explainer, images)


def test_nan_in_a_perturbed_pass_names_the_family_and_severity(images):
    def poison(x: torch.Tensor, severity: float, generator: object = None) -> torch.Tensor:
        return x if severity < 0.5 else x.clone().fill_(float("nan"))

    model = TinyCNN()
    with pytest.raises(ValueError, match=r"on the poison images at severity 0\.5 contain NaN"):
        perturbation_curve(model, GradCAM(model).at(None), images, poison, (0.0, 0.5))


def test_0_255_images_are_rejected_by_salt_and_pepper(images):
    """0–255 floats used to be accepted: salt 1.0 and pepper 0.0 in an image whose white is 255."""
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\].*normalise inside the model"):
        salt_and_pepper(images * 255, 0.1)


@pytest.mark.parametrize("family", ["salt_and_pepper", "gaussian_noise", "gaussian_blur"])
def test_normalised_images_are_rejected_by_perturbation_curve(images, family):
    model = TinyCNN()
    normalised = (images - 0.45) / 0.225
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\].*load_checkpoint\(normalize="):
        perturbation_curve(model, channel_mean, normalised, family)
