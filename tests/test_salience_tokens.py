"""Tests for salience_lib.salience.tokens: Grad-CAM of ViT and Swin at the last block's attention input."""

import pytest
import torch
import torchvision

from salience_lib.maps import minmax_normalise
from salience_lib.salience import GradCAM, tokens_to_grid


def _reference_gradcam(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, target: int,
                       to_grid) -> torch.Tensor:  # fmt: skip
    """Grad-CAM written out by hand: hook the layer, autograd the target logit, reshape, weight, ReLU."""
    saved = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: saved.setdefault("out", out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(logits[:, target].sum(), saved["out"])
    activations, gradients = to_grid(saved["out"].detach()), to_grid(grad)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return minmax_normalise(torch.relu((weights * activations).sum(1)))


@pytest.mark.parametrize(
    ("arch", "layer", "grid"),
    [("vit_b_16", "encoder.layers.encoder_layer_11.ln_1", 14), ("swin_t", "features.7.1.norm1", 7)],
)
@pytest.mark.slow  # at 224 px (the zoo, tests/test_salience_zoo.py, runs every token model at its smallest size)
def test_token_models_explained_at_the_last_attention_input(arch: str, layer: str, grid: int) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None, num_classes=2).eval()
    if arch.startswith("vit"):  # torchvision zero-initialises ViT's head: no gradient would reach any layer
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    cam = GradCAM(model)
    for target in (0, 1):  # a class may have no positive evidence (all-zero ReLU map): test both
        ours = cam(x, targets=target)
        assert cam.target_layer_name == layer and ours.shape == (2, grid, grid) and torch.isfinite(ours).all()
        channels_last = arch.startswith("swin")
        reference = _reference_gradcam(model, model.get_submodule(layer), x, target,
                                       lambda t, c=channels_last: tokens_to_grid(t, channels_last=c))  # fmt: skip
        assert (ours - reference).abs().max() < 1e-4
    assert max(float(cam(x, targets=t).amax()) for t in (0, 1)) == 1.0  # some class has evidence


def test_tokens_to_grid_and_explicit_token_layers() -> None:
    tokens = torch.arange(2 * 10 * 3, dtype=torch.float32).view(2, 10, 3)  # class token + 3×3 grid
    grid = tokens_to_grid(tokens)
    assert grid.shape == (2, 3, 3, 3) and torch.equal(grid[0, :, 0, 0], tokens[0, 1])
    assert tokens_to_grid(torch.zeros(1, 4, 5, 6)).shape == (1, 6, 4, 5)
    with pytest.raises(ValueError, match="not a square grid"):
        tokens_to_grid(torch.zeros(1, 7, 3))
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None, num_classes=2).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    x = torch.rand(1, 3, 224, 224)
    layer = "encoder.layers.encoder_layer_10.ln_1"
    with pytest.raises(ValueError, match="pass `reshape`"):
        GradCAM(model, layer)(x)
    assert GradCAM(model, layer, reshape=tokens_to_grid)(x, targets=1).shape == (1, 14, 14)


class _Attention(torch.nn.Module):
    """Stands in for any attention module (recognised by its class name)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.softmax(-1)


class _TokenNet(torch.nn.Module):
    """Patchify to (B, 16, 8) tokens, a norm, an attention fed by ``feed(norm output)``, then a linear head."""

    def __init__(self, feed) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.pre = torch.nn.Linear(8, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.attention = _Attention()
        self.head = torch.nn.Linear(8, 2)
        self.feed = feed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.pre(self.embed(x).flatten(2).transpose(1, 2))
        return self.head(self.attention(self.feed(self, tokens)).mean(1))


@pytest.mark.parametrize(
    ("feed", "layer"),
    [
        (lambda m, t: m.norm(t), "norm"),  # pre-norm (ViT, Swin): the norm's output itself
        (lambda m, t: m.norm(t) * 1.0, "norm"),  # computed from it by functional code: the last norm run
        (lambda m, t: (m.norm(t), t)[1], "pre"),  # post-norm (Swin V2): a norm ran, but the attention reads
    ],  # the very tensor another module returned: that module, not the norm
)
def test_token_layer_is_the_module_whose_output_the_attention_reads(feed, layer: str) -> None:
    from salience_lib.salience.tokens import locate_token_layer

    model = _TokenNet(feed).eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert locate_token_layer(model, x[:1]) == layer
    cam = GradCAM(model)
    maps = cam(x, targets=1)
    assert cam.target_layer_name == layer and maps.shape == (2, 4, 4) and torch.isfinite(maps).all()
