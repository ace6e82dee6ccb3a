"""Tests for salience_lib.models.checkpoints: the paper authors' checkpoint formats load without conversion."""

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import salience_lib
from salience_lib.models.checkpoints import (
    NormalizedModel,
    load_checkpoint,
    read_state_dict,
    replace_head,
    unwrap_model,
    unwrap_name,
)
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


def test_unwrap_model_and_names_through_dataparallel_and_compile() -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=2)
    compiled = torch.compile(model, backend="eager")
    cases = {
        "module.layer4": (nn.DataParallel(model), ["layer4", "module.layer4"]),
        "_orig_mod.layer4": (compiled, ["layer4", "_orig_mod.layer4"]),
        "module._orig_mod.layer4": (nn.DataParallel(compiled), ["layer4", "module.layer4", "module._orig_mod.layer4"]),
    }
    for full, (wrapped, names) in cases.items():
        assert unwrap_model(wrapped) is model and wrapped.get_submodule(full) is model.layer4
        assert [unwrap_name(wrapped, name) for name in names] == ["layer4"] * len(names)
    assert unwrap_name(nn.DataParallel(model), "_orig_mod.layer4") == "_orig_mod.layer4"  # not that wrapper's
    assert unwrap_model(model) is model and unwrap_name(model, "module.layer4") == "module.layer4"  # bare: as is


def test_evaluate_measures_a_wrapped_checkpoint_as_the_bare_one(tmp_path: Path) -> None:
    from torch.utils.data import TensorDataset

    from salience_lib.engine.subjects import subjects_from

    path, _ = _authors_resnet(tmp_path)
    model = load_checkpoint(path, "resnet18", image_size=64)
    wrapped = {"bare": model, "dp": nn.DataParallel(model), "compiled": torch.compile(model, backend="eager")}
    subjects = [subjects_from({f"{name}/0": module})[0] for name, module in wrapped.items()]
    assert [s.image_size for s in subjects] == [64] * 3  # the side it expects survives the wrapper
    assert len({s.fingerprint() for s in subjects}) == 1  # and so do its weights' names and values
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(2, 3, 64, 64, generator=g), torch.tensor([0, 1]))
    results = {
        name: salience_lib.evaluate({f"{name}/0": module}, data, batch_size=4, device="cpu", map_size=8,
                                    progress=False, measures=("entropy",))["models"][f"{name}/0"]
        for name, module in wrapped.items()
    }  # fmt: skip
    assert {r["target_layer"] for r in results.values()} == {"model.layer4"}
    for name in ("dp", "compiled"):
        for measure in ("entropy", "accuracy"):
            assert results[name][measure] == results["bare"][measure], (name, measure)


def test_a_name_torchvision_and_timm_share_loads_whichever_the_weights_fit(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    torch.save(timm.create_model("efficientnet_b0", pretrained=False, num_classes=2).state_dict(), tmp_path / "t.pth")
    assert type(load_checkpoint(tmp_path / "t.pth", "efficientnet_b0").model).__module__.startswith("timm.")
    assert type(load_checkpoint(tmp_path / "t.pth", "timm:efficientnet_b0").model).__module__.startswith("timm.")
    with pytest.raises(ValueError, match=r"t\.pth does not fit EfficientNet: \d+ missing: features"):
        load_checkpoint(tmp_path / "t.pth", "torchvision:efficientnet_b0")
    with pytest.raises(ValueError, match="prefix must be"):
        load_checkpoint(tmp_path / "t.pth", "keras:efficientnet_b0")


def test_inception_transform_input_is_on_as_for_a_model_fine_tuned_from_imagenet(tmp_path):
    """torchvision turns ``transform_input`` on for pretrained Inception-v3; the state_dict does not say so."""
    import torchvision

    from salience_lib.models.builders import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    reference = torchvision.models.inception_v3(weights=None, init_weights=False, aux_logits=False,
                                                transform_input=True, num_classes=2).eval()  # fmt: skip
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "final_model.pth")
    images = torch.rand(1, 3, 299, 299)
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    loaded = load_checkpoint(tmp_path / "final_model.pth", "inception_v3")
    scratch = load_checkpoint(tmp_path / "final_model.pth", "inception_v3", transform_input=False)
    with torch.no_grad():
        expected = reference(normalised)
        torch.testing.assert_close(loaded(images), expected)
        assert not torch.equal(scratch(images), loaded(images))  # the input scaling differs
    assert loaded.model.transform_input and not scratch.model.transform_input
