"""Tests for salience_lib.engine: the pass floor (counted), evaluate() on modules and Datasets, one definition."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import salience_lib
from salience_lib.data.synthetic import generate_dataset
from salience_lib.engine import EngineSettings, SettingsError, evaluate
from salience_lib.measures.entropy import salience_entropy
from salience_lib.measures.ground_truth import mask_mass
from salience_lib.measures.stability import cross_run_stability
from salience_lib.salience import GradCAM
from tests.helpers import TinyCNN

SIZE = 32
LIMIT = 12
# SPEC §8: 1 clean + 7 salt-and-pepper + 14 transforms (the paper's protocol: 12) + 4 degraded + 20 deletion forwards
PASS_FLOOR = {"refined": 46, "paper": 44}


class CountingModel(nn.Module):
    """Counts the images that go through ``forward`` (every model pass, with or without autograd)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.inner(x)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 32-px data set with metadata groups, masks and a non-face set."""
    return generate_dataset(tmp_path_factory.mktemp("data") / "faces", 90, size=SIZE, seed=0, progress=False)


def _models(counting: bool = False) -> dict[str, nn.Module]:
    models = {f"{recipe}/{seed}": TinyCNN(8, 2, seed=seed + 10 * i) for i, recipe in enumerate("ab") for seed in (0, 1)}
    return {name: CountingModel(m) for name, m in models.items()} if counting else models


@pytest.fixture(scope="module")
def counted(data_dir: Path) -> tuple[dict, dict[str, CountingModel]]:
    models = _models(counting=True)
    result = evaluate(
        models, data_dir, limit=LIMIT, batch_size=5, device="cpu", map_size=16, progress=False, protocol="refined"
    )
    return result, models


def _assert_floor(result: dict, models: dict[str, CountingModel], floor: int) -> None:
    n_nonface = result["data"]["groups"]["nonface"]
    assert result["data"]["n_images"] == LIMIT and n_nonface > 0
    for name, model in models.items():  # + 1 image: locating the target layer, once per model
        assert model.images == floor * LIMIT + n_nonface + 1, name
    assert result["recipes"]["a"]["stability"]["n"] == LIMIT and result["between_recipes"][0]["n"] == LIMIT


def test_passes_per_image_are_the_floor_stability_included(counted: tuple[dict, dict[str, CountingModel]]) -> None:
    """46 passes per in-set image and model, 1 per non-face image; stability and the baseline add none."""
    _assert_floor(*counted, PASS_FLOOR["refined"])


def test_paper_protocol_passes_are_its_floor(data_dir: Path) -> None:
    """The paper's protocol (the default): 12 transforms, so 44 passes per in-set image."""
    models = _models(counting=True)
    result = evaluate(models, data_dir, limit=LIMIT, batch_size=5, device="cpu", map_size=16, progress=False)
    assert result["settings"]["protocol"] == "paper"
    _assert_floor(result, models, PASS_FLOOR["paper"])
    model = result["models"]["a/0"]
    assert len([k for k in model["geometric"] if k not in ("mean", "n")]) == 12


def test_fewer_measures_fewer_passes(data_dir: Path) -> None:
    models = _models(counting=True)
    result = evaluate(models, data_dir, limit=LIMIT, device="cpu", map_size=16, progress=False, measures=("entropy",))
    assert all(m.images == LIMIT + result["data"]["groups"]["nonface"] + 1 for m in models.values())
    model = result["models"]["a/0"]
    assert "geometric" not in model and "salt_and_pepper" not in model["out_of_set"]
    assert "distribution_shift" in model["out_of_set"] and result["recipes"]["a"]["stability"]["n"] == LIMIT


def test_one_definition_engine_equals_the_measure_functions(data_dir: Path, counted: tuple[dict, dict]) -> None:
    """Entropy, stability and mask mass from the engine equal the plain functions on the same maps."""
    result, _ = counted
    from salience_lib.data import CsvImageDataset

    split = CsvImageDataset(data_dir, "test")
    images = torch.stack([split[i][0] for i in range(LIMIT)])
    models = _models()
    cams = {name: GradCAM(model).at(16) for name, model in models.items()}
    entropy = salience_entropy(cams["a/0"](images), "spatial")
    engine_entropy = result["models"]["a/0"]["entropy"]["spatial"]["entropy"]
    assert engine_entropy["mean"] == pytest.approx(float(entropy.double().mean()), abs=1e-6)
    stability = cross_run_stability([cams["b/0"], cams["b/1"]], images)
    assert result["recipes"]["b"]["stability"]["mean"] == pytest.approx(float(stability.double().mean()), abs=1e-5)
    masks = torch.stack([split.mask(i) for i in range(LIMIT)])
    has = masks.flatten(1).amax(1) > 0
    seen = torch.tensor([split.metadata[i]["group"] == "seen" for i in range(LIMIT)]) & has
    mass = mask_mass(cams["a/0"](images[seen]), masks[seen])
    engine_mass = result["models"]["a/0"]["ground_truth"]["localisation"]["seen"]["mask_mass"]["mean"]
    assert engine_mass == pytest.approx(float(mass.double().mean()), abs=1e-6)


def test_evaluate_takes_a_dataset_and_is_reachable_from_the_package() -> None:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(6, 3, SIZE, SIZE, generator=g), torch.tensor([0, 1] * 3))
    result = salience_lib.evaluate(
        {"x/0": TinyCNN(8, 2, seed=0), "x/1": TinyCNN(8, 2, seed=1)}, data, batch_size=4, device="cpu",
        map_size=16, progress=False, measures=("entropy", "geometric"),
    )  # fmt: skip
    assert result["data"]["n_images"] == 6 and result["data"]["groups"] == {"all": 6}
    model = result["models"]["x/0"]
    assert model["accuracy"]["n"] == 6 and model["geometric"]["n"] == 6
    assert model["out_of_set"]["distribution_shift"].startswith("skipped")
    assert result["recipes"]["x"]["k"] == 2 and result["between_recipes"] == []


def test_bad_input_names_the_model_or_setting(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match="measures"):
        EngineSettings(measures=("entropy", "speed"))
    with pytest.raises(ValueError, match=r"model a/0: .*SSIM's 7×7 window"):  # TinyCNN's own maps: 16×16 / 2
        evaluate(_models(), data_dir, limit=4, device="cpu", progress=False, measures=("entropy",), image_size=8)
    broken = TinyCNN(8, 2, seed=0)
    with torch.no_grad():
        broken.fc.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="model bad/0"):
        evaluate({"bad/0": broken}, data_dir, limit=4, device="cpu", map_size=16, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluate([data_dir], data_dir)


def test_single_logit_detector_gets_real_probabilities(data_dir: Path) -> None:
    """A sigmoid detector's probability-based measures move (softmax over one logit would give exactly 0)."""
    result = evaluate({"sig/0": TinyCNN(8, 1, seed=0)}, data_dir, limit=6, device="cpu", map_size=16,
                      progress=False, measures=("out_of_set", "degradation"))  # fmt: skip
    model = result["models"]["sig/0"]
    changes = [s["mean"] for s in model["out_of_set"]["salt_and_pepper"]["probability_change"][1:]]
    assert any(abs(c) > 1e-4 for c in changes)
    assert model["degradation"]["deletion"]["mean_curve"][0] < 0.999  # the clean p of the prediction, not 1


def test_protocols_differ_where_their_steps_do(data_dir: Path) -> None:
    """The same models under both protocols: 12 vs 14 transforms, 8-bit vs float maps, the authors' score."""
    models = _models()
    kwargs = {"limit": 6, "batch_size": 6, "device": "cpu", "map_size": 16, "progress": False}
    paper = evaluate(models, data_dir, protocol="paper", **kwargs)
    refined = evaluate(models, data_dir, protocol="refined", **kwargs)
    assert paper["settings"]["protocol"] == "paper" and refined["settings"]["protocol"] == "refined"
    assert paper["settings"]["measured"]["protocol_steps"]["map_bits"] == 8
    a, b = paper["models"]["a/0"], refined["models"]["a/0"]
    assert len(a["geometric"]) == 12 + 2 and len(b["geometric"]) == 14 + 2  # + "mean" and "n"
    assert "rotate:30" in b["geometric"] and "rotate:30" not in a["geometric"]
    assert a["accuracy"] == b["accuracy"]  # detection does not depend on the protocol
    histogram = [m["entropy"]["histogram"]["entropy"]["mean"] for m in (a, b)]
    assert histogram[0] != pytest.approx(histogram[1], abs=1e-6)  # truncated 8-bit levels vs rounded floats
    for name in ("hflip", "shift_n"):  # same transform, other maps and no mask: another number
        assert a["geometric"][name]["mean"] != pytest.approx(b["geometric"][name]["mean"], abs=1e-6)


def test_paper_maps_are_8bit(data_dir: Path) -> None:
    """Under the paper's protocol every map a measure reads is k/255 (truncated), also in the stability cache."""
    from salience_lib.engine import Engine
    from salience_lib.engine.sources import open_source
    from salience_lib.engine.subjects import subjects_from
    from salience_lib.runtime import distributed as dist_utils

    settings = EngineSettings(limit=4, batch_size=4, device="cpu", progress=False, measures=("entropy",))
    source = open_source(data_dir, settings, None)
    engine = Engine(source, settings, dist_utils.setup("cpu"), data=data_dir)
    measured = engine.measure(subjects_from({"a/0": TinyCNN(8, 2, seed=0)})[0])
    levels = measured.kept.maps * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
