import pytest
import torch

from salience_lib.measures.degradation import (
    DegradationAccumulator,
    DeletionAccumulator,
    degradation_effect,
    deletion_blur,
    deletion_curve,
    level_sigmas,
    random_maps,
    salience_guided_blur,
)
from salience_lib.salience import GradCAM
from salience_lib.similarity import ssim
from tests.helpers import RegionTextureModel, TinyCNN, region_mask

SIZE = 32


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def oracle(images: torch.Tensor) -> torch.Tensor:
    """Salience exactly on the model's region, at a coarse native resolution."""
    coarse = torch.nn.functional.avg_pool2d(region_mask(SIZE)[None, None], 4)[0, 0]
    return coarse.expand(images.shape[0], *coarse.shape).clone()


def test_level_sigmas_follow_the_paper():
    sigmas = level_sigmas()
    assert sigmas.shape == (101,)
    assert sigmas[0] == pytest.approx(10.0) and sigmas[-1] == 0.0
    assert sigmas[50] == pytest.approx(5**4 / 1000)
    assert torch.allclose(level_sigmas(0.5), sigmas * 0.5)


def test_background_mode_keeps_salient_region_sharp(images):
    maps = oracle(images)
    background = salience_guided_blur(images, maps, "background", reference_size=SIZE, protocol="refined")
    salient = salience_guided_blur(images, maps, "salient", reference_size=SIZE, protocol="refined")
    inside = region_mask(SIZE).bool()
    core = torch.zeros_like(inside)
    core[2:12, 2:12] = True  # well inside the region, away from the smoothed edge
    assert torch.allclose(background[..., core], images[..., core])
    assert (salient[..., core] - images[..., core]).abs().mean() > 0.05
    far = torch.zeros_like(inside)
    far[24:, 24:] = True
    assert (background[..., far] - images[..., far]).abs().mean() > 0.05
    assert torch.allclose(salient[..., far], images[..., far])


def test_faithful_explainer_hurts_more_when_salient_is_blurred(images):
    model = RegionTextureModel(SIZE)
    cam = GradCAM(model)
    explainer = lambda x: cam(x)  # noqa: E731
    maps = explainer(images)
    assert maps[:, :16, :16].mean() > 5 * maps[:, 16:, 16:].mean(), "Grad-CAM should find the region"
    salient = degradation_effect(model, explainer, images, "salient", reference_size=SIZE, protocol="refined")
    background = degradation_effect(model, explainer, images, "background", reference_size=SIZE, protocol="refined")
    rand = random_maps(6, maps.shape[-2:], torch.Generator().manual_seed(0))
    random_effect = degradation_effect(
        model, explainer, images, "salient", maps=rand, reference_size=SIZE, protocol="refined"
    )
    assert (salient.probability_drop > background.probability_drop).all()
    assert salient.probability_drop.mean() > random_effect.probability_drop.mean() + 0.05
    assert background.probability_drop.abs().max() < 0.05
    guided = deletion_curve(model, maps, images, reference_size=SIZE).auc()
    baseline = deletion_curve(model, rand, images, reference_size=SIZE).auc()
    assert guided.mean() < baseline.mean()


def test_result_fields_and_bad_input(images):
    model = TinyCNN(classes=2)
    cam = GradCAM(model)
    result = degradation_effect(model, cam, images, "background")
    assert result.flipped.dtype == torch.bool and result.similarity.shape == (6,)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        salience_guided_blur(images, oracle(images), "object")
    with pytest.raises(ValueError, match="`maps` has 2 maps"):
        salience_guided_blur(images, oracle(images)[:2])
    with pytest.raises(ValueError, match="fractions"):
        deletion_curve(model, oracle(images), images, fractions=[0.0, 1.5])


def test_deletion_endpoints(images):
    model = RegionTextureModel(SIZE)
    curve = deletion_curve(model, oracle(images), images, reference_size=SIZE)
    clean = torch.softmax(model(images), 1).amax(1)
    assert torch.allclose(curve.probability[:, 0], clean, atol=1e-6)
    assert (curve.probability[:, -1] < curve.probability[:, 0]).all()


def test_accumulators_merge(images):
    model = TinyCNN(classes=2)
    cam = GradCAM(model)
    whole = DegradationAccumulator("salient")
    whole.update(degradation_effect(model, cam, images, "salient"))
    a, b = DegradationAccumulator("salient"), DegradationAccumulator("salient")
    a.update(degradation_effect(model, cam, images[:3], "salient"))
    b.update(degradation_effect(model, cam, images[3:], "salient"))
    merged, expected = a.merge(b).compute(), whole.compute()
    assert merged.keys() == expected.keys() and merged["n"] == expected["n"] == 6
    for name in ("probability_drop", "flipped", "similarity"):
        # the blur picks whole-image or tiled work per batch: equal up to float32 rounding
        for field in ("mean", "ci_low", "ci_high"):
            assert getattr(merged[name], field) == pytest.approx(getattr(expected[name], field), abs=1e-6)
    with pytest.raises(ValueError, match="mode"):
        DegradationAccumulator("background").update(degradation_effect(model, cam, images, "salient"))
    deletion = DeletionAccumulator()
    deletion.update(deletion_curve(model, cam(images), images))
    summary = deletion.compute()
    assert len(summary["mean_curve"]) == 11 and summary["n"] == 6


def test_precomputed_clean_maps_and_probabilities_give_the_same_result(images):
    model = RegionTextureModel(SIZE)
    cam = GradCAM(model)
    maps, clean = cam(images), torch.softmax(model(images), dim=1)
    for mode in ("background", "salient"):
        fresh = degradation_effect(model, cam, images, mode, reference_size=SIZE, protocol="refined")
        reused = degradation_effect(
            model, cam, images, mode, reference_size=SIZE, clean_maps=maps, clean_probabilities=clean,
            protocol="refined",
        )
        for field in ("clean_probability", "probability", "flipped", "similarity"):
            assert torch.equal(getattr(fresh, field), getattr(reused, field)), (mode, field)
    fresh_curve = deletion_curve(model, maps, images, reference_size=SIZE)
    reused_curve = deletion_curve(model, maps, images, reference_size=SIZE, clean_probabilities=clean)
    assert torch.equal(fresh_curve.probability, reused_curve.probability)
    with pytest.raises(ValueError, match="`clean_maps` has 2 maps but `images` has 6"):
        degradation_effect(model, cam, images, clean_maps=maps[:2])
    with pytest.raises(ValueError, match=r"`clean_probabilities` must have shape \(6, classes\)"):
        deletion_curve(model, maps, images, clean_probabilities=clean[:, 0])


# -- NaN, out-of-range images and mismatched batches are errors (SPEC §9) ----------------------------


def _nan_weights() -> TinyCNN:
    model = TinyCNN()
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    return model


DEGRADATIONS = {
    "salience_guided_blur": lambda x, maps: salience_guided_blur(x, maps),
    "degradation_effect": lambda x, maps: degradation_effect(TinyCNN(), lambda y: y.mean(dim=1), x, maps=maps),
    "deletion_curve": lambda x, maps: deletion_curve(TinyCNN(), maps, x),
    "deletion_blur": lambda x, maps: deletion_blur(x),
}


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_0_255_images_are_rejected_by_blur_and_degradation(images, name):
    """0–255 or normalised images used to be blurred and scored: the model's probabilities saturate."""
    maps = torch.rand(images.shape[0], 8, 8)
    for bad in (images * 255, (images - 0.45) / 0.225):
        with pytest.raises(ValueError, match=r"must hold values in \[0, 1\].*load_checkpoint\(normalize="):
            DEGRADATIONS[name](bad, maps)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_nan_pixel_is_rejected_by_blur_and_degradation(images, name):
    broken = images.clone()
    broken[2, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"`images` contain NaN or inf values for 1 of 6 images \(batch positions 2\)"):
        DEGRADATIONS[name](broken, torch.rand(images.shape[0], 8, 8))


def test_deletion_curve_batch_mismatch_names_both_shapes(images):
    """Maps for 4 images and 6 images used to fail deep inside torch.where with a broadcast error."""
    with pytest.raises(ValueError, match=r"maps of shape \(4, 8, 8\) and images of shape \(6, 3, 32, 32\)"):
        deletion_curve(TinyCNN(), torch.rand(4, 8, 8), images)


def test_nan_weights_are_an_error_not_a_score_in_degradation(images):
    """NaN weights used to give zero maps and NaN probabilities: a "result" with no error."""
    model = _nan_weights()
    with pytest.raises(ValueError, match=r"the model's logits on the clean images contain NaN"):
        degradation_effect(model, GradCAM(model).at(None), images)
    with pytest.raises(ValueError, match=r"probabilities on the clean images contain NaN or inf values for 6 of 6"):
        deletion_curve(model, torch.rand(6, 8, 8), images)


# -- the "paper" protocol (the default): the authors' blur, score and comparison ----------------------


def test_paper_protocol_records_sigmoid_of_class_one_flips_and_compares_at_input_size(images):
    model = TinyCNN(classes=2).eval()
    cam = GradCAM(model)
    seen = []

    def recording(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append((a, b))
        return ssim(a, b)

    result = degradation_effect(model, cam, images, "salient", similarity=recording)
    assert result.score == "sigmoid_synthetic"
    with torch.no_grad():
        logits = model(images)
        degraded = salience_guided_blur(images, cam(images), "salient")
        after = model(degraded)
    assert torch.allclose(result.clean_probability, torch.sigmoid(logits)[:, 1], atol=1e-6)
    assert torch.allclose(result.probability, torch.sigmoid(after)[:, 1], atol=1e-5)
    assert torch.equal(result.flipped, after.argmax(1) != logits.argmax(1))
    (a, b), = seen
    assert a.shape == b.shape == (6, SIZE, SIZE), "their 224-px 'upscaled' maps: at the input size"
    assert torch.equal(torch.round(a * 255), a * 255) and torch.equal(torch.round(b * 255), b * 255), "8-bit maps"
    refined = degradation_effect(model, cam, images, "salient", similarity=recording, protocol="refined")
    assert refined.score == "softmax_predicted" and seen[-1][0].shape[-2:] == cam(images).shape[-2:]


def test_paper_blur_is_8_bit_and_keeps_the_salient_region_sharp(images):
    maps = oracle(images)
    background = salience_guided_blur(images, maps, "background", reference_size=SIZE)
    salient = salience_guided_blur(images, maps, "salient", reference_size=SIZE)
    eight_bit = torch.round(images * 255) / 255
    for out in (background, salient):
        assert torch.equal(torch.round(out * 255), out * 255)
    core = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    core[2:12, 2:12] = True
    far = torch.zeros_like(core)
    far[24:, 24:] = True
    # "sharp": levels 6.6–9.9 in the core once the map is smoothed (σ ≤ 0.134 px, radius ≤ 1), but
    # scipy's uint8 truncation of even such a blur takes a grey level off where its tail tips below
    assert (background[..., core] - eight_bit[..., core]).abs().max() <= 2 / 255 + 1e-6
    assert (salient[..., core] - images[..., core]).abs().mean() > 0.05
    assert (background[..., far] - images[..., far]).abs().mean() > 0.05
    assert (salient[..., far] - eight_bit[..., far]).abs().max() <= 2 / 255 + 1e-6


def test_deletion_curve_records_the_chosen_score(images):
    model = RegionTextureModel(SIZE)
    curve = deletion_curve(model, oracle(images), images, reference_size=SIZE, score="sigmoid_synthetic")
    assert curve.score == "sigmoid_synthetic" and deletion_curve(model, oracle(images), images).score == (
        "softmax_predicted"
    )
    with torch.no_grad():
        assert torch.allclose(curve.probability[:, 0], torch.sigmoid(model(images))[:, 1])
    with pytest.raises(ValueError, match="unknown `score`"):
        deletion_curve(model, oracle(images), images, score="logit")


def test_unknown_protocol_is_an_error(images):
    with pytest.raises(ValueError, match="unknown `protocol`"):
        salience_guided_blur(images, oracle(images), protocol="authors")
