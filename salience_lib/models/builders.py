r"""Classifiers whose salience can be read off: backbone → global average pooling → one linear layer.

Every model the library builds is a :class:`SalienceClassifier` with four submodules, called in
this order::

    normalize  fixed ImageNet mean/std, so inputs are images in [0, 1]
    features   the backbone; its output is the last 4-D feature map A (B, C, h, w)
    pool       global average pooling, (B, C, h, w) -> (B, C)
    fc         nn.Linear(C, num_classes); class 0 = Real, 1 = Synthetic

Because the head is exactly "global average pooling + one linear layer", the class activation map
(CAM, Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016) is
:math:`M_c = \sum_k w_{c,k} A_k` with :math:`w` = ``fc.weight``, and ``features`` is the last module
with a 4-D output in execution order (Grad-CAM's automatic target layer).

Architectures: ``small_cnn`` (a small CNN for CPU work at 32–224 px) and torchvision classifiers by
name, with random initialisation or backbone weights from a local file. Nothing is ever downloaded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "GlobalAvgPool2d",
    "Normalize",
    "SalienceClassifier",
    "build_model",
    "known_architectures",
    "small_cnn_features",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Fixed per-channel standardisation ``(x - mean) / std`` of images in [0, 1]."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class GlobalAvgPool2d(nn.Module):
    """Global average pooling ``(B, C, h, w) -> (B, C)`` (2-D output, so it is never a CAM target)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class SalienceClassifier(nn.Module):
    """``fc(pool(features(normalize(x))))``: a classifier whose CAM is exact.

    Args:
        features: module mapping normalised images ``(B, 3, H, W)`` to a feature map ``(B, C, h, w)``.
        num_features: ``C``.
        num_classes: number of outputs (2: Real, Synthetic).
    """

    def __init__(self, features: nn.Module, num_features: int, num_classes: int = 2):
        super().__init__()
        self.normalize = Normalize()
        self.features = features
        self.pool = GlobalAvgPool2d()
        self.fc = nn.Linear(num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits (B, K), features (B, C, h, w))`` in one pass (used by the CYBORG loss)."""
        feats = self.features(self.normalize(x))
        return self.fc(self.pool(feats)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` for images ``(B, 3, H, W)`` in [0, 1]."""
        return self.forward_features(x)[0]


# ---------------------------------------------------------------------------------------------
# small_cnn


def _conv_block(c_in: int, c_out: int, stride: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def small_cnn_features(image_size: int | None = None, width: int = 32) -> nn.Sequential:
    r"""The ``small_cnn`` backbone: 3×3 conv–BN–ReLU blocks, scaled to the image size.

    At 64 px this is the prototype of SPEC §5: channels 32-64-128-128, strides 2-2-2-1, an 8×8 last
    map. The number of stride-2 blocks is :math:`n = \lfloor \log_2(\text{size} / 6) \rfloor`
    clipped to [1, 5], so the last map stays ≥ 6×6 (96 px: 4 downsamplings → 6×6, receptive field
    63 px instead of 31 — the prototype's 31 px at 96 px let it fall back to a shortcut cue);
    224 px: 5 → 7×7. Extra stride-2 blocks keep ``4·width`` channels.

    Args:
        image_size: input side in pixels (``None``: 64).
        width: channels of the first block.
    """
    size = 64 if image_size is None else int(image_size)
    if size < 8:
        raise ValueError(f"`image_size` must be >= 8 for small_cnn, got {image_size}")
    n_down = min(5, max(1, math.floor(math.log2(size / 6))))
    channels = [min(width * 2**i, width * 4) for i in range(n_down)] + [width * 4]
    strides = [2] * n_down + [1]
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = 3
    for i, (c_out, stride) in enumerate(zip(channels, strides, strict=True), start=1):
        blocks[f"block{i}"] = _conv_block(c_in, c_out, stride)
        c_in = c_out
    return nn.Sequential(blocks)


# ---------------------------------------------------------------------------------------------
# torchvision backbones: (name prefix, backbone -> (features, channels))

_Extractor = Callable[[nn.Module], tuple[nn.Module, int]]


def _resnet(m: nn.Module) -> tuple[nn.Module, int]:
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(OrderedDict((n, getattr(m, n)) for n in names)), m.fc.in_features


def _densenet(m: nn.Module) -> tuple[nn.Module, int]:
    # torchvision applies F.relu(inplace=True) after `features` in forward(); an out-of-place ReLU
    # keeps hooked activations of norm5 intact.
    return nn.Sequential(m.features, nn.ReLU()), m.classifier.in_features


def _last_linear_in(classifier: nn.Module) -> int:
    first = next(c for c in classifier.modules() if isinstance(c, nn.Linear))
    return first.in_features


def _features_then_linear(m: nn.Module) -> tuple[nn.Module, int]:
    # mobilenet_v2/v3, efficientnet: features -> avgpool -> classifier (MLP heads are replaced by
    # a single linear layer so that CAM applies).
    return m.features, _last_linear_in(m.classifier)


def _mnasnet(m: nn.Module) -> tuple[nn.Module, int]:
    return m.layers, _last_linear_in(m.classifier)


def _regnet(m: nn.Module) -> tuple[nn.Module, int]:
    return nn.Sequential(OrderedDict([("stem", m.stem), ("trunk_output", m.trunk_output)])), m.fc.in_features


def _shufflenet(m: nn.Module) -> tuple[nn.Module, int]:
    names = ["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"]
    return nn.Sequential(OrderedDict((n, getattr(m, n)) for n in names)), m.fc.in_features


def _vgg(m: nn.Module) -> tuple[nn.Module, int]:
    # Drop the final max-pool, as the CAM paper does for VGG, to keep a 2× finer last map.
    convs = [c for c in m.features if isinstance(c, nn.Conv2d)]
    return m.features[:-1], convs[-1].out_channels


def _alexnet(m: nn.Module) -> tuple[nn.Module, int]:
    return m.features, 256


def _squeezenet(m: nn.Module) -> tuple[nn.Module, int]:
    return m.features, 512


_INCEPTION_V3 = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")  # fmt: skip
_GOOGLENET = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
              "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a",
              "inception5b")  # fmt: skip


def _inception(m: nn.Module) -> tuple[nn.Module, int]:
    # The main path only (torchvision's forward without `transform_input`, which is off for weights=None):
    # the auxiliary classifier is a training-time loss head, not part of the prediction.
    names = _INCEPTION_V3 if hasattr(m, "Mixed_7c") else _GOOGLENET
    return nn.Sequential(OrderedDict((n, getattr(m, n)) for n in names)), m.fc.in_features


_MIN_SIZES = {"inception_v3": 75, "googlenet": 15}
"""Smallest input side torchvision's forward accepts (Inception-v3 is native at 299 px)."""

_FAMILIES: tuple[tuple[str, _Extractor], ...] = (
    ("resnet", _resnet),
    ("resnext", _resnet),
    ("wide_resnet", _resnet),
    ("densenet", _densenet),
    ("mobilenet_", _features_then_linear),
    ("efficientnet_", _features_then_linear),
    ("mnasnet", _mnasnet),
    ("regnet_", _regnet),
    ("shufflenet_", _shufflenet),
    ("vgg", _vgg),
    ("alexnet", _alexnet),
    ("squeezenet", _squeezenet),
    ("inception_v3", _inception),
    ("googlenet", _inception),
)


def _extractor(arch: str) -> _Extractor | None:
    return next((fn for prefix, fn in _FAMILIES if arch.startswith(prefix)), None)


def known_architectures() -> list[str]:
    """Names accepted by :func:`build_model`: ``small_cnn`` and the supported torchvision classifiers."""
    import torchvision  # imported here: it pulls in torch._dynamo (~1.7 s per process start)

    tv = torchvision.models.list_models(module=torchvision.models)
    return ["small_cnn", *sorted(n for n in tv if _extractor(n) is not None)]


def _read_state_dict(weights_path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path} (weights are never downloaded)")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state_dict (a dict of tensors)")
    return obj


def _build_small_cnn(num_classes: int, weights_path: str | Path | None, image_size: int | None) -> nn.Module:
    features = small_cnn_features(image_size)
    model = SalienceClassifier(features, features[-1][0].out_channels, num_classes)
    if weights_path is not None:
        state = _read_state_dict(weights_path)
        backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
        model.load_state_dict({**model.state_dict(), **backbone}, strict=True)
    return model


def _build_torchvision(arch: str, num_classes: int, weights_path: str | Path | None) -> nn.Module:
    import torchvision

    kwargs = {"init_weights": True} if arch in _MIN_SIZES else {}  # their own init (and no FutureWarning)
    backbone = torchvision.models.get_model(arch, weights=None, **kwargs)
    if weights_path is not None:
        backbone.load_state_dict(_read_state_dict(weights_path), strict=True)
    extract = _extractor(arch)
    features, channels = extract(backbone)
    return SalienceClassifier(features, channels, num_classes)


def build_model(
    arch: str,
    num_classes: int = 2,
    weights_path: str | Path | None = None,
    image_size: int | None = None,
) -> SalienceClassifier:
    """Build a :class:`SalienceClassifier` by architecture name.

    Args:
        arch: ``"small_cnn"`` or a torchvision classifier name (``resnet18``, ``resnet50``,
            ``densenet121``, ``inception_v3``, ``mobilenet_v3_small``, ``efficientnet_b0``, ``vgg11``, …; see
            :func:`known_architectures`). torchvision heads (``fc``/``classifier``, including the
            MLP heads of MobileNetV3 and VGG) are replaced by global average pooling and one linear
            layer, so CAM is exact.
        num_classes: outputs of the final linear layer (2: 0 = Real, 1 = Synthetic).
        weights_path: optional local ``state_dict`` file, read with ``torch.load(weights_only=True)``:
            for torchvision names the original model's weights (e.g. ImageNet ``resnet18-*.pth``),
            for ``small_cnn`` a :class:`SalienceClassifier` state_dict. Only the backbone is kept;
            the ``num_classes`` head is freshly initialised.
        image_size: input side in pixels; scales the depth of ``small_cnn``; for ``inception_v3``
            (native 299 px) checked against its minimum, 75 px (ignored otherwise).

    Initialisation uses torch's global RNG: call ``torch.manual_seed`` first for reproducibility.

    Raises:
        ValueError: unknown ``arch`` (the message lists the known names) or a bad ``num_classes``.
        FileNotFoundError: ``weights_path`` does not exist.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}")
    if arch == "small_cnn":
        return _build_small_cnn(num_classes, weights_path, image_size)
    if arch in known_architectures():
        smallest = _MIN_SIZES.get(arch)
        if smallest is not None and image_size is not None and image_size < smallest:
            raise ValueError(f"{arch} needs images of at least {smallest} px, got `image_size`={image_size}")
        return _build_torchvision(arch, num_classes, weights_path)
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(known_architectures())}")
