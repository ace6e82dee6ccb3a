import gc
import tracemalloc

import pytest
import torch
import torchvision
from captum.attr import LayerAttribution, LayerGradCam

from salience_lib.maps import minmax_normalise
from salience_lib.salience import (
    CAM,
    GradCAM,
    GradCAMPlusPlus,
    InputGradient,
    class_activation_map,
    locate_target_layer,
)
from tests.helpers import MLP, TinyCNN

METHODS = [GradCAM, GradCAMPlusPlus, CAM, InputGradient]


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", METHODS)
def test_shape_range_and_dtype(method, images):
    model = TinyCNN()
    maps = method(model)(images)
    expected = (4, 16, 16) if method is InputGradient else (4, 8, 8)
    assert maps.shape == expected
    assert maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert not maps.requires_grad


@pytest.mark.parametrize("method", METHODS)
def test_upsampling_on_request(method, images):
    maps = method(TinyCNN())(images, size=(20, 24))
    assert maps.shape == (4, 20, 24)
    assert torch.allclose(maps.flatten(1).amax(1), torch.ones(4))


@pytest.mark.parametrize(
    ("name", "layer"),
    [("resnet18", "layer4"), ("densenet121", "features"), ("mobilenet_v3_small", "features")],
)
def test_automatic_target_layer_for_torchvision(name, layer):
    model = getattr(torchvision.models, name)(num_classes=2)
    assert locate_target_layer(model, torch.rand(1, 3, 64, 64)) == layer


def test_model_without_feature_map_is_refused():
    with pytest.raises(ValueError, match="4-D feature map"):
        GradCAM(MLP())(torch.rand(2, 3, 8, 8))


def test_explicit_layer_by_name_and_module(images):
    model = TinyCNN()
    by_name = GradCAM(model, "features.2")(images)
    by_module = GradCAM(model, model.features[2])(images)
    assert torch.equal(by_name, by_module)
    assert by_name.shape == (4, 16, 16)
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(model, "features.nope")
    with pytest.raises(ValueError, match="not part of the model"):
        GradCAM(model, torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="target_layer"):
        GradCAM(model, 3)


@pytest.mark.parametrize(("name", "layer"), [("resnet18", "layer4")])
def test_gradcam_matches_captum(name, layer):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=4).eval()
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with GradCAM(model) as cam:
        ours = cam(x)
        ours_up = cam(x, size=(64, 64))
    predicted = model(x).argmax(1)
    reference = LayerGradCam(model, model.get_submodule(layer)).attribute(x, target=predicted, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(reference, (64, 64), interpolate_mode="bilinear")
    assert (minmax_normalise(reference[:, 0].detach()) - ours).abs().max() < 1e-4
    assert (minmax_normalise(upsampled[:, 0].detach()) - ours_up).abs().max() < 1e-4


def test_densenet_gradcam_sees_the_post_relu_features_as_torchcam_does():
    """DenseNet applies its last ReLU in place after ``features``; the classifier pools the post-ReLU
    features, and so do torchcam (the authors' tool) and we. (Captum's LayerGradCam on ``features``
    sees the pre-ReLU output: up to 0.2 apart after min–max on this model.)"""
    from torchcam.methods import GradCAM as TorchcamGradCAM

    torch.manual_seed(0)
    model = torchvision.models.densenet121(num_classes=2).eval()
    x = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with GradCAM(model) as cam:
        ours = cam(x)
    extractor = TorchcamGradCAM(model, target_layer="features")
    try:
        logits = model(x)
        (reference,) = extractor(logits.argmax(1).tolist(), logits)
    finally:
        extractor.remove_hooks()
    assert (minmax_normalise(reference.detach().float()) - ours).abs().max() < 1e-4
    captum = LayerGradCam(model, model.features).attribute(x, target=logits.argmax(1), relu_attributions=True)
    assert (minmax_normalise(captum[:, 0].detach()) - ours).abs().max() > 0.01  # the pre-ReLU features differ


def test_given_targets_differ_from_predicted(images):
    model = TinyCNN()
    cam = GradCAM(model)
    predicted = model.eval()(images).argmax(1)
    other = (predicted + 1) % 3
    assert torch.equal(cam(images), cam(images, targets=predicted))
    assert not torch.equal(cam(images), cam(images, targets=other))
    assert torch.equal(cam(images, targets=1), cam(images, targets=[1, 1, 1, 1]))


@pytest.mark.parametrize(
    ("targets", "error", "match"),
    [
        ([0, 1], ValueError, "one class index per image"),
        ([0, 1, 2, 3], ValueError, r"lie in \[0, 2\]"),
        (torch.zeros(4), TypeError, "integer class indices"),
    ],
)
def test_bad_targets(images, targets, error, match):
    with pytest.raises(error, match=match):
        GradCAM(TinyCNN())(images, targets=targets)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.rand(3, 16, 16), ValueError, r"\(B, C, H, W\)"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
        ([1, 2], TypeError, "torch.Tensor"),
    ],
)
def test_bad_images(bad, error, match):
    with pytest.raises(error, match=match):
        GradCAM(TinyCNN())(bad)


def test_cam_equals_class_activation_map(images):
    model = TinyCNN().eval()
    feats = model.features(images)
    targets = model(images).argmax(1)
    expected = minmax_normalise(class_activation_map(feats, model.fc.weight, targets)).detach()
    assert torch.allclose(CAM(model)(images), expected, atol=1e-6)


def test_gradcam_equals_manual_formula(images):
    model = TinyCNN().eval()
    feats = model.features(images)
    logits = model.fc(model.pool(feats).flatten(1))
    targets = logits.argmax(1)
    (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), feats)
    manual = torch.relu((grads.mean((2, 3))[:, :, None, None] * feats).sum(1))
    assert torch.allclose(GradCAM(model)(images), minmax_normalise(manual).detach(), atol=1e-6)


def test_state_is_left_as_found(images):
    model = TinyCNN().train()
    model.fc.weight.requires_grad_(False)
    bn = model.features[1]
    running = bn.running_mean.clone()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for method in METHODS:
        method(model)(images)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(bn.running_mean, running), "BatchNorm statistics moved: salience must run in eval mode"
    assert flags == {n: p.requires_grad for n, p in model.named_parameters()}
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", METHODS)
def test_works_inside_no_grad_and_restores_grad_mode(method, images):
    model = TinyCNN()
    reference = method(model)(images)
    with torch.no_grad():
        inside = method(model)(images)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert torch.equal(reference, inside)


def test_frozen_model_still_explained(images):
    model = TinyCNN().requires_grad_(False)
    assert GradCAM(model)(images).amax() == 1


def test_all_zero_gradcam_stays_zero():
    model = TinyCNN()
    torch.nn.init.zeros_(model.fc.weight)
    maps = GradCAM(model)(torch.rand(2, 3, 16, 16))
    assert torch.equal(maps, torch.zeros_like(maps))


@pytest.mark.parametrize("method", METHODS)
def test_hooks_are_removed_even_on_error(method, images):
    model = TinyCNN()
    before = _hook_count(model)
    with method(model) as explainer:
        explainer(images)
        assert _hook_count(model) == before
        with pytest.raises(ValueError, match="one class index"):
            explainer(images, targets=[0, 1])
    assert _hook_count(model) == before
    with pytest.raises(RuntimeError, match="closed"):
        explainer(images)


def test_batch_order_invariance(images):
    model = TinyCNN()
    perm = torch.tensor([2, 0, 3, 1])
    cam = GradCAM(model)
    assert torch.allclose(cam(images)[perm], cam(images[perm]), atol=1e-6)


def test_repeated_calls_do_not_grow_memory(images):
    model = TinyCNN()
    cam = GradCAM(model)
    for _ in range(20):
        cam(images)
    gc.collect()
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    for _ in range(200):
        cam(images)
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert end - start < 200_000, f"Python heap grew by {end - start} bytes over 200 calls"
    assert _hook_count(model) == 0


def test_bfloat16_autocast_close_to_fp32(images):
    model = TinyCNN()
    fp32 = GradCAM(model)(images)
    bf16 = GradCAM(model, autocast_dtype=torch.bfloat16)(images)
    assert bf16.dtype == torch.float32
    assert (fp32 - bf16).abs().max() < 0.1
    with pytest.raises(ValueError, match="autocast_dtype"):
        GradCAM(model, autocast_dtype=torch.float64)


def test_single_logit_detector_semantics():
    """One logit z: class 1 ("Synthetic") is explained by z and class 0 ("Real") by −z; predicted = z > 0;
    p = (1 − σ(z), σ(z)). Reference: the same network with two logits (−z, z)."""
    from salience_lib.inference import probabilities

    one = TinyCNN(8, 1, seed=0).eval()
    two = TinyCNN(8, 2, seed=1).eval()
    with torch.no_grad():
        two.features.load_state_dict(one.features.state_dict())
        two.fc.weight.copy_(torch.cat([-one.fc.weight, one.fc.weight]))
        two.fc.bias.copy_(torch.cat([-one.fc.bias, one.fc.bias]))
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    z = one(images).detach()[:, 0]
    assert torch.allclose(probabilities(one(images)), torch.stack([1 - z.sigmoid(), z.sigmoid()], 1), atol=1e-6)
    for method in (GradCAM, CAM):
        for target in (0, 1):
            assert torch.allclose(method(one)(images, targets=target), method(two)(images, targets=target), atol=1e-5)
        assert torch.allclose(method(one)(images), method(two)(images), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        GradCAM(one)(images, targets=2)


# -- autograd modes and non-finite input (issue 12) ---------------------------------------------------


@pytest.mark.parametrize("method", [GradCAM, GradCAMPlusPlus, InputGradient])
def test_gradcam_inside_inference_mode_says_why(method, images):
    """Inside inference_mode the backward used to fail with "element 0 of tensors does not require grad"."""
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"needs gradients.*outside inference_mode"):
        method(TinyCNN())(images)


@pytest.mark.parametrize("method", METHODS)
def test_salience_works_under_no_grad_and_on_inference_tensors(method, images):
    """no_grad is fine (gradients are enabled where needed); so are images made under inference_mode."""
    model = TinyCNN()
    expected = method(model)(images)
    with torch.no_grad():
        assert torch.allclose(method(model)(images), expected, atol=1e-6)
    with torch.inference_mode():
        frozen = images.clone()
    assert torch.allclose(method(model)(frozen), expected, atol=1e-6)  # InputGradient used to raise here
    if method is CAM:  # needs no gradient: allowed inside inference_mode too
        with torch.inference_mode():
            assert torch.allclose(method(model)(images), expected, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_nan_pixel_gives_a_nan_map_not_zeros(method, images):
    """A NaN pixel used to come out as an all-zero map (min–max of NaN), which scores as "perfect"."""
    broken = images.clone()
    broken[1, 0, 2, 2] = float("nan")
    maps = method(TinyCNN())(broken)
    assert torch.isnan(maps[1]).any()
    assert torch.isfinite(maps[[0, 2, 3]]).all()  # eval mode: images do not mix


def _wrappers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """DataParallel (no GPU: it just calls the module), torch.compile (backend "eager": no C++ compiler
    needed, and Grad-CAM runs the bare module anyway), and both nested."""
    return {
        "module.": torch.nn.DataParallel(model),
        "_orig_mod.": torch.compile(model, backend="eager"),
        "module._orig_mod.": torch.nn.DataParallel(torch.compile(model, backend="eager")),
    }


@pytest.mark.parametrize("method", METHODS)
def test_wrapped_models_are_explained_as_the_bare_one(method, images):
    model = TinyCNN().eval()
    bare = method(model)
    expected = bare(images, targets=1)
    for prefix, wrapped in _wrappers(model).items():
        explainer = method(wrapped)
        assert explainer.model is wrapped and explainer.network is model  # the wrapper is what is measured
        assert torch.equal(explainer(images, targets=1), expected), prefix
        if method is not InputGradient:
            assert explainer.target_layer_name == bare.target_layer_name == "features"
            for name in ("features.2", prefix + "features.2"):  # names with or without the wrapper's prefix
                named = method(wrapped, name)
                assert named.target_layer is model.features[2] and named.target_layer_name == "features.2"
            assert method(wrapped, model.features[2]).target_layer_name == "features.2"
        assert _hook_count(wrapped) == 0
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(torch.nn.DataParallel(model), "module.nope")
