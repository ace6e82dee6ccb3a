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
