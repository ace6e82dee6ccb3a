import pytest
import torch

from salience_lib import training
from salience_lib.data import synthetic
from salience_lib.evaluation import (
    comparison_table,
    evaluate_runs,
    load_split,
    mask_mass,
    pointing_game,
    stability_per_model,
    summarise_recipes,
    write_json,
)


def test_mask_mass_and_pointing_game_analytic():
    masks = torch.zeros(2, 16, 16)
    masks[:, :8, :8] = 1
    inside = torch.zeros(2, 4, 4)
    inside[:, 0, 0] = 1
    outside = torch.zeros(2, 4, 4)
    outside[:, 3, 3] = 1
    assert torch.allclose(mask_mass(inside, masks), torch.ones(2))
    assert torch.allclose(mask_mass(outside, masks), torch.zeros(2))
    assert torch.equal(mask_mass(torch.zeros(2, 4, 4), masks), torch.zeros(2))
    assert torch.equal(pointing_game(inside, masks, tolerance_at_224=0), torch.ones(2))
    assert torch.equal(pointing_game(outside, masks, tolerance_at_224=0), torch.zeros(2))
    # a peak just outside the mask is a hit once the tolerance reaches it (15 px at 224 ≈ 1 px at 16)
    near = torch.zeros(2, 16, 16)
    near[:, 8, 3] = 1
    assert torch.equal(pointing_game(near, masks, tolerance_at_224=0), torch.zeros(2))
    assert torch.equal(pointing_game(near, masks), torch.ones(2))


def test_stability_per_model_of_identical_maps_is_one():
    maps = torch.rand(1, 5, 8, 8).expand(3, 5, 8, 8).contiguous()
    per_model, matrix = stability_per_model(maps)
    assert torch.allclose(per_model, torch.ones(3, dtype=per_model.dtype), atol=1e-6)
    assert matrix.shape == (3, 3)
    per_model_up, _ = stability_per_model(maps, upsample_to=16)
    assert torch.allclose(per_model_up, torch.ones(3, dtype=per_model.dtype), atol=1e-6)


def test_summarise_recipes_tests_xent_against_cyborg():
    models = {f"x{i}": {"loss": "xent", "acc": 0.1 * i} for i in range(5)}
    models |= {f"c{i}": {"loss": "cyborg", "acc": 1 + 0.1 * i} for i in range(5)}
    summary = summarise_recipes(models)
    assert summary["acc"]["mann_whitney"]["p"] == pytest.approx(2 / 252)
    assert summary["acc"]["xent"]["mean"] == pytest.approx(0.2)
    table = comparison_table(summary)
    assert list(table.index) == ["acc"]
    assert table.loc["acc", "cyborg mean"] == pytest.approx(1.2)
    assert table.loc["acc", "Mann–Whitney p"] == pytest.approx(2 / 252)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = synthetic.generate_dataset(root / "data", 48, size=32, seed=0, progress=False)
    runs = []
    for loss in ("xent", "cyborg"):
        config = training.TrainConfig(arch="small_cnn", loss=loss, epochs=1, batch_size=16, image_size=32)
        runs += training.train_runs(config, data, root / "runs", [0, 1], progress=False)
    return data, runs


def test_evaluate_runs_end_to_end(tiny_runs, tmp_path):
    data, runs = tiny_runs
    result = evaluate_runs(data, runs, training.load_model, batch_size=32, upsample_to=16)
    assert set(result["models"]) == {r.name for r in runs}
    one = next(iter(result["models"].values()))
    for key in ("accuracy", "auc_unseen", "balanced_accuracy_cue_conflict", "entropy_spatial", "mask_mass_seen",
                "pointing_game_unseen", "annotation_pearson", "stability_ssim_16px"):
        assert key in one, key
        assert 0 <= one[key] <= 1 or key.startswith("annotation") or key.startswith("stability")
    assert "mann_whitney" in result["recipes"]["accuracy"]
    assert "xent_vs_cyborg" in result["between_recipes_ssim_native"] or "cyborg_vs_xent" in result[
        "between_recipes_ssim_native"]
    path = write_json(result, tmp_path / "summary.json")
    assert path.read_text().startswith("{") and not list(tmp_path.glob("*.tmp"))


def test_load_split_reads_masks_and_groups(tiny_runs):
    data, _ = tiny_runs
    test = load_split(data, "test")
    synthetic_rows = test.group("seen", "unseen")
    assert synthetic_rows.any() and (test.masks[synthetic_rows].flatten(1).amax(1) == 1).all()
    assert (test.masks[test.group("real")] == 0).all()


def test_evaluate_command_line(tiny_runs, tmp_path, capsys):
    from salience_lib.cli import main

    data, runs = tiny_runs
    out = tmp_path / "summary.json"
    assert main(["evaluate", "--data", str(data), "--runs", str(runs[0].parent), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert main(["evaluate", "--data", str(data), "--runs", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "no complete runs" in capsys.readouterr().err
