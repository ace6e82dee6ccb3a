"""Grad-CAM over torchvision's whole classification zoo: automatic target layer, grid, values.

Every classifier in ``torchvision.models.list_models(module=torchvision.models)``, random init,
two classes, batch 2 at its smallest valid input (the smallest side at which the documented target
layer still has both spatial sides > 1). Each is checked against a Grad-CAM written out here:
hook the documented layer, autograd the target logit, spatial mean of the gradients as weights,
ReLU of the weighted sum, min–max per map.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from salience_lib.models import build_model, load_checkpoint
from salience_lib.salience import GradCAM
from salience_lib.salience.tokens import partition_reshape

ZOO = sorted(torchvision.models.list_models(module=torchvision.models))

VIT_PATCH = {"vit_b_16": 16, "vit_b_32": 32, "vit_l_16": 16, "vit_l_32": 32, "vit_h_14": 14}
VIT_DEPTH = {"b": 12, "l": 24, "h": 32}

# Families: (name prefix, documented target layer, smallest valid input side). Sizes found by
# search: the smallest side at which the forward runs and the documented layer is still > 1×1 (for
# AlexNet and VGG, whose adaptive pool would replicate a 1×1 map into a constant one: its input).
FAMILIES: tuple[tuple[str, str, int], ...] = (
    ("alexnet", "avgpool", 95),  # AdaptiveAvgPool2d(6): what the classifier reads (= features at 224 px)
    ("convnext_", "features", 64),
    ("densenet", "features", 61),  # read after the in-place ReLU of forward(): the pooled features
    ("efficientnet_", "features", 33),
    ("googlenet", "inception5b", 47),
    ("inception_v3", "Mixed_7c", 107),  # 75 px runs, but Mixed_7c is 1×1 below 107 px
    ("maxvit_t", "blocks.3.layers.1.layers.grid_attention.attn_layer.0", 224),  # partition 7: 221–224 px only
    ("mnasnet", "layers", 33),
    ("mobilenet_", "features", 33),
    ("regnet_", "trunk_output", 33),
    ("resnet", "layer4", 33),
    ("resnext", "layer4", 33),
    ("wide_resnet", "layer4", 33),
    ("shufflenet_", "conv5", 33),
    ("squeezenet1_0", "classifier.2", 37),  # ReLU of the 1×1 class conv: Grad-CAM = the class's own map
    ("squeezenet1_1", "classifier.2", 33),
    ("swin_v2_", "features.7.0", 36),  # post-norm blocks: the last attention reads the previous block
    ("swin_", "features.7.1.norm1", 36),
    ("vgg", "avgpool", 64),  # AdaptiveAvgPool2d(7)
    ("vit_", "encoder.layers.encoder_layer_{last}.ln_1", 0),  # image_size = 2 patches: a 2×2 grid
)

SLOW = {
    "convnext_base", "convnext_large", "efficientnet_b7", "efficientnet_v2_l", "efficientnet_v2_m", "maxvit_t",
    "regnet_x_16gf", "regnet_x_32gf", "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf", "resnext101_32x8d",
    "resnext101_64x4d", "swin_b", "swin_v2_b", "swin_v2_s", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
    "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
}  # fmt: skip
"""Over ~1 s each on one CPU thread (mostly building: initialising 60–630 M parameters); deselect with -m "not slow".
All 80 took 92 s on one thread of a loaded 2-core machine (regnet_y_128gf 16 s), 18 s without these."""


def expected(arch: str) -> tuple[str, int]:
    """``(documented target layer, input side)`` of a torchvision classifier."""
    for prefix, layer, side in FAMILIES:
        if arch.startswith(prefix):
            if arch.startswith("vit_"):
                return layer.format(last=VIT_DEPTH[arch[4]] - 1), 2 * VIT_PATCH[arch]
            return layer, side
    raise AssertionError(f"{arch}: a torchvision classifier this test does not know; add its family")


def build(arch: str) -> nn.Module:
    """Random init, 2 classes, eval mode; ViTs at 2×2 patches with their zero-initialised head re-drawn."""
    torch.manual_seed(0)
    kwargs: dict = {"num_classes": 2}
    if arch in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = True
    if arch in VIT_PATCH:
        kwargs["image_size"] = 2 * VIT_PATCH[arch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = torchvision.models.get_model(arch, weights=None, **kwargs).eval()
    if arch in VIT_PATCH:  # torchvision zero-initialises ViT's head: no gradient would reach any layer
        nn.init.normal_(model.heads.head.weight, std=0.02)
    return antisymmetric_head(model)


def antisymmetric_head(model: nn.Module) -> nn.Module:
    """Logit 1 = −logit 0 (+ bias): behind global pooling the two class maps are then ±the same map, so
    one class has positive evidence (random init at 2×2 often leaves both ReLU maps all zero)."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d) and m.weight.shape[0] == 2][-1]
    with torch.no_grad():
        head.weight[1] = -head.weight[0]
    return model


def _vit_grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 1 + g², C) → (B, C, g, g), class token dropped."""
    side = round((tokens.shape[1] - 1) ** 0.5)
    return tokens[:, 1:].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def _maxvit_grid(model: nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """MaxViT's partitioned tokens back on (B, C, H, W), written out from its partitioning.

    Forward: x (B, C, H, W) → (B, C, H/p, p, W/p, p) → (B, H/p, W/p, p, p, C) → (B, G, p·p, C) with
    G = (H/p)(W/p); grid attention then swaps windows and positions: (B, p·p, G, C).
    """
    partition = model.get_submodule(layer.rsplit(".", 2)[0])
    height, width = partition.grid_size
    p = partition.p

    def to_grid(tokens: torch.Tensor) -> torch.Tensor:
        batch, channels = tokens.shape[0], tokens.shape[-1]
        windows = tokens.transpose(1, 2) if partition.partition_type == "grid" else tokens  # (B, G, p·p, C)
        grid = windows.reshape(batch, height // p, width // p, p, p, channels).permute(0, 5, 1, 3, 2, 4)
        return grid.reshape(batch, channels, height, width)

    return to_grid


def to_grid_for(arch: str, model: nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """How the documented layer's output is laid out as (B, C, h, w)."""
    if arch.startswith("vit_"):
        return _vit_grid
    if arch.startswith("swin"):
        return lambda t: t.permute(0, 3, 1, 2)  # channels-last (B, H, W, C)
    if arch.startswith("maxvit"):
        return _maxvit_grid(model, layer)
    return lambda t: t


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    span = (high - low).view(-1, 1, 1)
    return torch.where(span > 0, (maps - low.view(-1, 1, 1)) / span.clamp_min(1e-30), torch.zeros_like(maps))


def reference_gradcam(model: nn.Module, layer: nn.Module, images: torch.Tensor,
                      to_grid: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:  # fmt: skip
    """``(2 classes, B, h, w)`` Grad-CAM written out: one forward with autograd, a gradient per class."""
    saved: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: saved.append(out))
    try:
        logits = model(images)
    finally:
        handle.remove()
    assert len(saved) == 1, "the documented layer must run once per forward"
    (out,) = saved  # DenseNet: its in-place ReLU makes this the post-ReLU features, as the classifier pools
    maps = []
    for target in (0, 1):
        (grad,) = torch.autograd.grad(logits[:, target].sum(), out, retain_graph=True)
        activations, gradients = to_grid(out.detach()).double(), to_grid(grad).double()
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        maps.append(_minmax(torch.relu((weights * activations).sum(1))))
    return torch.stack(maps).float()


def _case(arch: str) -> object:
    return pytest.param(arch, marks=pytest.mark.slow) if arch in SLOW else arch


@pytest.mark.parametrize("arch", [_case(a) for a in ZOO])
def test_gradcam_on_every_torchvision_classifier(arch: str) -> None:
    layer, side = expected(arch)
    model = build(arch)
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    cam = GradCAM(model)
    ours = torch.stack([cam(images, targets=target) for target in (0, 1)])
    assert cam.target_layer_name == layer
    reference = reference_gradcam(model, model.get_submodule(layer), images, to_grid_for(arch, model, layer))
    assert ours.shape == reference.shape and min(ours.shape[-2:]) > 1, (ours.shape, reference.shape)
    assert torch.isfinite(ours).all()
    assert (ours - reference).abs().max() < 1e-5
    assert float(ours.amax()) == 1.0, "some class has positive evidence somewhere"  # else nothing was compared


@pytest.mark.slow
def test_maxvit_window_and_grid_partitions_are_put_back_on_the_grid() -> None:
    """An explicit MaxViT attention layer where the windows are many (14×14 map: 4 windows of 7×7, or a
    7×7 grid of 2×2 cells) is departitioned, never its (B, windows, P·P, C) read as a (B, C, H, W) picture."""
    model = build("maxvit_t")
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for kind in ("window_attention", "grid_attention"):
        layer = f"blocks.2.layers.4.layers.{kind}.attn_layer.0"
        cam = GradCAM(model, layer)
        ours = torch.stack([cam(images, targets=target) for target in (0, 1)])
        reference = reference_gradcam(model, model.get_submodule(layer), images, to_grid_for("maxvit_t", model, layer))
        assert ours.shape == (2, 2, 14, 14) and (ours - reference).abs().max() < 1e-5
        assert float(ours.amax()) == 1.0
    assert partition_reshape(model, "blocks.2.layers.4.layers.grid_attention") is None  # departitioned (B, C, H, W)
    assert partition_reshape(model, "blocks.2.layers.4.layers.grid_attention.partition_op") is None  # not swapped
    assert partition_reshape(model, "blocks.2.layers.4.layers.grid_attention.mlp_layer.0") is not None


@pytest.mark.slow
def test_inception_v3_at_299_px_through_build_model_and_load_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1))
    built = build_model("inception_v3", image_size=299).eval()  # the main path: no auxiliary head
    assert not any("AuxLogits" in name for name in built.state_dict())
    with GradCAM(built) as cam:
        assert cam(images, targets=1).shape == (2, 8, 8) and cam.target_layer_name == "features"
    with pytest.raises(ValueError, match="at least 75 px"):
        build_model("inception_v3", image_size=74)
    authors = torchvision.models.inception_v3(weights=None, init_weights=False)
    authors.fc = nn.Linear(authors.fc.in_features, 2)  # the auxiliary head keeps its 1000 classes
    torch.save({"state_dict": authors.state_dict()}, tmp_path / "with_aux.pth")
    authors.AuxLogits = None
    torch.save(authors.state_dict(), tmp_path / "without_aux.pth")
    for name in ("with_aux.pth", "without_aux.pth"):
        model = load_checkpoint(tmp_path / name, "inception_v3")
        assert model.input_size == 299 and (model.model.AuxLogits is None) == (name == "without_aux.pth")
        with GradCAM(model) as cam:
            maps = cam(images, targets=0)
            assert maps.shape == (2, 8, 8) and cam.target_layer_name == "model.Mixed_7c"
            assert torch.isfinite(maps).all()


TIMM = [  # (timm name, input side, automatic target layer inside load_checkpoint's wrapper)
    ("resnet10t", 33, "model.layer4"),
    ("convnext_atto", 64, "model.norm_pre"),  # an Identity after the stages: their output
    ("efficientnet_b0", 33, "model.bn2"),  # conv_head's BatchNorm + activation
    ("vit_tiny_patch16_224", 224, "model.blocks.11.norm1"),  # tokens 14×14, class token dropped
    pytest.param("swin_tiny_patch4_window7_224", 224, "model.layers.3.blocks.1.norm1", marks=pytest.mark.slow),
]  # (timm's MaxViT gets its final `norm` feature map: its attention classes, AttentionCl, are not recognised)


@pytest.mark.parametrize(("arch", "side", "layer"), TIMM)
def test_timm_families_through_load_checkpoint(tmp_path, arch: str, side: int, layer: str) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    source = antisymmetric_head(timm.create_model(arch, pretrained=False, num_classes=2).eval())
    torch.save({"state_dict": source.state_dict()}, tmp_path / "timm.pth")
    model = load_checkpoint(tmp_path / "timm.pth", arch)
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the weights arrived, normalisation outside the timm model
        assert torch.allclose(model(images), source(model.normalize(images)), atol=1e-5)
    cam = GradCAM(model)
    ours = torch.stack([cam(images, targets=target) for target in (0, 1)])
    assert cam.target_layer_name == layer
    to_grid = {"vit": _vit_grid, "swi": lambda t: t.permute(0, 3, 1, 2)}.get(arch[:3], lambda t: t)
    reference = reference_gradcam(model, model.get_submodule(layer), images, to_grid)
    assert ours.shape == reference.shape and min(ours.shape[-2:]) > 1 and torch.isfinite(ours).all()
    assert (ours - reference).abs().max() < 1e-5 and float(ours.amax()) == 1.0
