"""Tests for salience_lib.models.builders: structure (CAM/Grad-CAM contract), sizes, weight loading."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision
from torch import nn

from salience_lib.models import SalienceClassifier, build_model, known_architectures, small_cnn_features

TORCHVISION_ARCHS = ["resnet18", "densenet121", "mobilenet_v3_small"]


def _four_d_outputs_in_order(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of modules whose forward output is 4-D, in the order their forward passes finished."""
    order: list[str] = []
    handles = [
        m.register_forward_hook(
            lambda _m, _i, out, name=name: (
                order.append(name) if isinstance(out, torch.Tensor) and out.ndim == 4 else None
            )
        )
        for name, m in model.named_modules()
        if name
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return order


@pytest.fixture(scope="module", params=["small_cnn", *TORCHVISION_ARCHS])
def built(request: pytest.FixtureRequest) -> tuple[str, SalienceClassifier]:
    torch.manual_seed(0)
    return request.param, build_model(request.param, image_size=64).eval()


def test_logits_shape_and_structure(built: tuple[str, SalienceClassifier]) -> None:
    _, model = built
    x = torch.rand(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 2)
    assert isinstance(model.fc, nn.Linear)
    assert model.fc.out_features == 2
    assert [n for n, _ in model.named_children()] == ["normalize", "features", "pool", "fc"]
    logits2, feats = model.forward_features(x)
    torch.testing.assert_close(logits, logits2)
    assert feats.ndim == 4
    assert feats.shape[1] == model.fc.in_features


def test_features_is_last_4d_output(built: tuple[str, SalienceClassifier]) -> None:
    _, model = built
    order = _four_d_outputs_in_order(model, torch.rand(2, 3, 64, 64))
    assert order[-1] == "features"


def test_fc_is_last_linear_and_cam_is_exact(built: tuple[str, SalienceClassifier]) -> None:
    _, model = built
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert linears[-1] == "fc"
    # GAP + linear: logits equal the spatial mean of the CAM plus the bias.
    with torch.no_grad():
        logits, feats = model.forward_features(torch.rand(2, 3, 64, 64))
        cams = torch.einsum("kc,bchw->bkhw", model.fc.weight, feats)
    torch.testing.assert_close(logits, cams.mean(dim=(-2, -1)) + model.fc.bias, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("size", "side"), [(64, 8), (96, 6), (128, 8), (224, 7), (32, 8)])
def test_small_cnn_final_map(size: int, side: int) -> None:
    model = build_model("small_cnn", image_size=size)
    with torch.no_grad():
        _, feats = model.forward_features(torch.rand(1, 3, size, size))
    assert feats.shape[-2:] == (side, side)
    if 64 <= size <= 96:
        assert side >= 6


def test_small_cnn_64px_is_the_prototype() -> None:
    convs = [m for m in small_cnn_features(64).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1]
    assert any(isinstance(m, nn.BatchNorm2d) for m in small_cnn_features(64).modules())


@pytest.mark.parametrize("size", [64, 96])
def test_small_cnn_receptive_field_grows_with_size(size: int) -> None:
    """The centre feature unit sees at least half of the image side (SPEC §5: 96 px needs more)."""
    model = build_model("small_cnn", image_size=size).eval()
    x = torch.rand(1, 3, size, size, requires_grad=True)
    _, feats = model.forward_features(x)
    h, w = feats.shape[-2:]
    (grad,) = torch.autograd.grad(feats[0, :, h // 2, w // 2].sum(), x)
    cols = grad.abs().sum(dim=(0, 1, 2)).nonzero()
    assert int(cols.max() - cols.min() + 1) >= size // 2 - 2


def test_channels_last_same_output() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", image_size=64).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_num_classes() -> None:
    assert build_model("small_cnn", num_classes=5)(torch.rand(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("small_cnn", num_classes=0)


def test_unknown_arch_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet9000'.*small_cnn.*resnet18"):
        build_model("resnet9000")
    with pytest.raises(ValueError, match="vit_b_16"):  # torchvision name without a 4-D feature map
        build_model("vit_b_16")


def test_known_architectures() -> None:
    known = known_architectures()
    assert known[0] == "small_cnn"
    for name in [
        "resnet18",
        "resnet34",
        "resnet50",
        "densenet121",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "vgg11",
        "regnet_y_400mf",
        "shufflenet_v2_x0_5",
        "inception_v3",
        "googlenet",
    ]:
        assert name in known
    assert "vit_b_16" not in known


@pytest.mark.parametrize("arch", ["efficientnet_b0", "vgg11", "mobilenet_v2", "regnet_x_400mf", "googlenet"])
def test_other_families_build(arch: str) -> None:
    model = build_model(arch).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 2)
    assert _four_d_outputs_in_order(model, x)[-1] == "features"


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_model("resnet18", weights_path=tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):
        build_model("small_cnn", weights_path=tmp_path / "nope.pth")


def test_torchvision_state_dict_loads_and_head_is_replaced(tmp_path) -> None:
    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build_model("resnet18", weights_path=path)
    torch.testing.assert_close(model.features.conv1.weight, source.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.features.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.fc.weight.shape == (2, 512)


def test_small_cnn_backbone_loads_head_is_fresh(tmp_path) -> None:
    torch.manual_seed(2)
    source = build_model("small_cnn", image_size=64)
    path = tmp_path / "small.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(3)
    model = build_model("small_cnn", weights_path=path, image_size=64)
    for (name, a), b in zip(model.state_dict().items(), source.state_dict().values(), strict=True):
        if name.startswith("fc."):
            assert not torch.equal(a, b)
        else:
            assert torch.equal(a, b), name


def test_weights_are_loaded_with_weights_only(tmp_path) -> None:
    """A file that needs unpickling of arbitrary objects is refused (torch.load(weights_only=True))."""
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": nn.ReLU()}, path)
    with pytest.raises(pickle.UnpicklingError):
        build_model("resnet18", weights_path=path)


def test_file_without_state_dict(tmp_path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="state_dict"):
        build_model("resnet18", weights_path=path)


def test_densenet_hooked_activation_not_modified_in_place() -> None:
    """The ReLU after DenseNet's norm5 is out of place: a hooked norm5 output keeps negative values."""
    model = build_model("densenet121").eval()
    seen: list[torch.Tensor] = []
    handle = model.features[0].norm5.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    handle.remove()
    assert bool((seen[0] < 0).any())


def test_inception_family_is_its_main_path() -> None:
    """Inception-v3/GoogLeNet: the torchvision forward without the auxiliary (training-loss) heads."""
    torch.manual_seed(0)
    original = torchvision.models.googlenet(weights=None, init_weights=True, num_classes=2).eval()
    model = build_model("googlenet").eval()
    weights = original.state_dict()
    model.features.load_state_dict({k: weights[k] for k in model.features.state_dict()})  # every backbone key
    model.fc.load_state_dict(original.fc.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(model.normalize(x)))
    with pytest.raises(ValueError, match="at least 75 px"):
        build_model("inception_v3", image_size=64)
