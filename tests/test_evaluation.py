import pytest

from salience_lib import training
from salience_lib.book import comparison_table
from salience_lib.data import synthetic
from salience_lib.evaluation import (
    _stability_per_model,
    evaluate_runs,
    load_split,
    write_json,
)
from salience_lib.stats import summarise_recipes


def test_stability_per_model_is_the_row_mean_of_the_engine_matrix():
    """Identical runs score 1; otherwise each run's value is its mean similarity to the other runs."""
    result = {"recipes": {"xent-small_cnn-1": {"loss": "xent", "runs": ["a", "b", "c"],
                                               "matrix": [[1.0, 0.5, 0.2], [0.5, 1.0, 0.8], [0.2, 0.8, 1.0]]}}}
    models = {"a": {}, "b": {}, "c": {}}
    matrices = _stability_per_model(result, models, "stability_ssim_native")
    assert [models[n]["stability_ssim_native"] for n in "abc"] == pytest.approx([0.35, 0.65, 0.5])
    assert list(matrices) == ["xent/stability_ssim_native"]
    ones = {"recipes": {"r": {"loss": "cyborg", "runs": ["a", "b"], "matrix": [[1.0, 1.0], [1.0, 1.0]]}}}
    _stability_per_model(ones, models, "s")
    assert models["a"]["s"] == models["b"]["s"] == 1.0


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
    result = evaluate_runs(data, runs, batch_size=32, upsample_to=16)
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
