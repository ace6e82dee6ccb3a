"""Tests for salience_lib.models.checkpoints: the paper authors' checkpoint formats load without conversion."""

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import salience_lib
from salience_lib.models.checkpoints import NormalizedModel, load_checkpoint, read_state_dict, replace_head
from salience_lib.salience import GradCAM


def _authors_resnet(tmp_path: Path, wrapper: str | None = "state_dict", prefix: str = "") -> tuple[Path, nn.Module]:
    """A torchvision ResNet-18 with the head replaced by nn.Linear(512, 2), saved as the authors do."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Linear(model.fc.in_features, 2)
    state = {f"{prefix}{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "final_model.pth"
    torch.save({wrapper: state} if wrapper else state, path)
    return path, model.eval()


@pytest.mark.parametrize(("wrapper", "prefix"), [("state_dict", ""), ("model", ""), (None, ""), (None, "module.")])
def test_authors_checkpoint_loads_and_normalises_outside(tmp_path: Path, wrapper: str | None, prefix: str) -> None:
    path, original = _authors_resnet(tmp_path, wrapper, prefix)
    model = salience_lib.load_checkpoint(path, "resnet18")
    assert isinstance(model, NormalizedModel) and not model.training
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(images), original((images - mean) / std), atol=1e-5)
    with GradCAM(model) as cam:
        assert cam(images).shape == (2, 2, 2) and cam.target_layer_name == "model.layer4"
    raw = load_checkpoint(path, "resnet18", normalize="none")
    with torch.no_grad():
        assert torch.allclose(raw(images), original(images), atol=1e-5)


def test_mismatched_weights_name_the_file_and_the_first_keys(tmp_path: Path) -> None:
    path, _ = _authors_resnet(tmp_path)
    fc_shapes = r"final_model.pth does not fit ResNet: .*shape: fc.weight \(2, 512\) vs \(3, 512\)"
    with pytest.raises(ValueError, match=fc_shapes):
        load_checkpoint(path, "resnet18", num_classes=3)
    with pytest.raises(ValueError, match=r"does not fit DenseNet: \d+ missing: features"):
        load_checkpoint(path, "densenet121")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pth cannot be read"):
        read_state_dict(tmp_path / "empty.pth")
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="normalize"):
        load_checkpoint(path, "resnet18", normalize="caffe")
    with pytest.raises(ValueError, match="unknown architecture 'resnet9000'"):
        load_checkpoint(path, "resnet9000")


def test_replace_head_by_name() -> None:
    densenet = torchvision.models.densenet121(weights=None)
    assert replace_head(densenet, 2) == "classifier" and densenet.classifier.out_features == 2
    mobilenet = torchvision.models.mobilenet_v3_small(weights=None)
    assert replace_head(mobilenet, 1) == "classifier.3" and mobilenet.classifier[3].out_features == 1
    vit = torchvision.models.vit_b_16(weights=None)
    assert replace_head(vit, 2) == "heads.head"
    with pytest.raises(ValueError, match="no classifier head"):
        replace_head(nn.Sequential(nn.Conv2d(3, 3, 1)), 2)


def test_inception_v3_loads_at_299_px_with_its_auxiliary_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    inception = torchvision.models.inception_v3(weights=None, init_weights=False)
    inception.fc = nn.Linear(inception.fc.in_features, 2)  # the authors' change; AuxLogits keeps 1000 classes
    torch.save({"state_dict": inception.state_dict()}, tmp_path / "inception.pth")
    model = load_checkpoint(tmp_path / "inception.pth", "inception_v3")
    assert model.input_size == 299
    with torch.no_grad():
        assert model(torch.rand(1, 3, 299, 299)).shape == (1, 2)
