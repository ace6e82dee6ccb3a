import numpy as np
import pytest
import torch

from salience_lib.book import chapters
from salience_lib.data import dataset_hash
from salience_lib.models import build_model
from salience_lib.models.runs import MODEL_FILE, cpu_state, save_checkpoint, write_sidecar


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "faces.csv").write_text("train,Real,a.png\n")
    return data


def _run(root, name, *, loss, seed, data_hash, complete=True):
    """A run folder as training leaves it: a checkpoint file and its sidecar."""
    run = root / name
    run.mkdir(parents=True)
    (run / MODEL_FILE).write_bytes(b"")
    sidecar = {"arch": "small_cnn", "loss": loss, "seed": seed, "image_size": 32, "classes": ["Real", "Synthetic"]}
    write_sidecar(run, sidecar | {"complete": complete, "data_hash": data_hash})
    return run


def test_runs_by_recipe_groups_the_current_runs(tmp_path, data_dir):
    runs_dir = tmp_path / "runs"
    current = dataset_hash(data_dir)
    xent = [_run(runs_dir, f"xent-s{s}", loss="xent", seed=s, data_hash=current) for s in (1, 0)]
    cyborg = [_run(runs_dir, f"cyborg-s{s}", loss="cyborg", seed=s, data_hash=current) for s in (0, 1, 2)]
    _run(runs_dir, "xent-s9-stale", loss="xent", seed=9, data_hash="an older data set")
    _run(runs_dir, "cyborg-s7-partial", loss="cyborg", seed=7, data_hash=current, complete=False)
    _run(runs_dir, "other-s0", loss="other", seed=0, data_hash=current)
    found = chapters.runs_by_recipe(runs_dir, data_dir)
    assert list(found) == ["xent", "cyborg"]
    assert found["xent"] == sorted(xent), "sorted by folder name; the stale run is left out"
    assert found["cyborg"] == cyborg, "the incomplete run is left out"
    assert chapters.runs_by_recipe(runs_dir, data_dir, ("other",), min_runs=1) == {"other": [runs_dir / "other-s0"]}


def test_runs_by_recipe_refuses_too_few_runs_or_repeated_seeds(tmp_path, data_dir):
    runs_dir = tmp_path / "runs"
    current = dataset_hash(data_dir)
    _run(runs_dir, "xent-a", loss="xent", seed=0, data_hash=current)
    _run(runs_dir, "cyborg-a", loss="cyborg", seed=0, data_hash=current)
    _run(runs_dir, "cyborg-b", loss="cyborg", seed=1, data_hash=current)
    with pytest.raises(ValueError, match=r"need >= 2 complete xent runs .* found seeds \[0\]"):
        chapters.runs_by_recipe(runs_dir, data_dir)
    _run(runs_dir, "xent-b", loss="xent", seed=0, data_hash=current)
    with pytest.raises(ValueError, match=r"distinct seeds, found seeds \[0, 0\]"):
        chapters.runs_by_recipe(runs_dir, data_dir)
    with pytest.raises(ValueError, match="xent"):
        chapters.runs_by_recipe(tmp_path / "no runs here", data_dir)


def test_load_runs_loads_every_run_by_name_in_recipe_order(tmp_path, data_dir):
    current = dataset_hash(data_dir)
    runs = {}
    for loss in ("xent", "cyborg"):
        runs[loss] = []
        for seed in (0, 1):
            run = _run(tmp_path / "runs", f"{loss}-s{seed}", loss=loss, seed=seed, data_hash=current)
            save_checkpoint(run / MODEL_FILE, cpu_state(build_model("small_cnn", image_size=32)))
            runs[loss].append(run)
    models = chapters.load_runs(runs)
    assert list(models) == ["xent-s0", "xent-s1", "cyborg-s0", "cyborg-s1"]
    model, sidecar = models["cyborg-s1"]
    assert sidecar["loss"] == "cyborg" and sidecar["seed"] == 1
    assert not model.training and model(torch.zeros(2, 3, 32, 32)).shape == (2, 2)
    with pytest.raises(ValueError, match="unique"):
        chapters.load_runs({"xent": runs["xent"], "again": runs["xent"][:1]})


def test_seeded_picks_is_a_seeded_prefix_of_a_permutation():
    picks = chapters.seeded_picks(50, 10, seed=3)
    assert picks.dtype == torch.int64 and len(set(picks.tolist())) == 10 and int(picks.max()) < 50
    assert torch.equal(picks, torch.randperm(50, generator=torch.Generator().manual_seed(3))[:10])
    assert torch.equal(chapters.seeded_picks(50, 20, seed=3)[:10], picks), "a larger n extends a smaller one"
    assert not torch.equal(chapters.seeded_picks(50, 10, seed=4), picks)
    assert sorted(chapters.seeded_picks(5, 99, seed=0).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n"):
        chapters.seeded_picks(5, -1, seed=0)


ENTRY = {
    "xent": {"values": [0.1, 0.3], "mean": 0.2, "ci_low": 0.1, "ci_high": 0.3},
    "cyborg": {"values": [0.5, 0.7], "mean": 0.6, "ci_low": 0.5, "ci_high": 0.7},
    "mann_whitney": {"u": 0.0, "p": 1 / 3, "effect": 0.0},
}


def test_summary_numbers_names_means_cis_and_p():
    assert chapters.summary_numbers("geo_mean", ENTRY) == {
        "geo_mean_xent": 0.2,
        "geo_mean_xent_lo": 0.1,
        "geo_mean_xent_hi": 0.3,
        "geo_mean_cyborg": 0.6,
        "geo_mean_cyborg_lo": 0.5,
        "geo_mean_cyborg_hi": 0.7,
        "geo_mean_p": 1 / 3,
    }
    without_test = {k: v for k, v in ENTRY.items() if k != "mann_whitney"}
    assert "x_p" not in chapters.summary_numbers("x", without_test)
    assert list(chapters.summary_numbers("x", ENTRY, ("cyborg",))) == ["x_cyborg", "x_cyborg_lo", "x_cyborg_hi", "x_p"]
    with pytest.raises(KeyError, match="other"):
        chapters.summary_numbers("x", ENTRY, ("other",))


def test_glue_summary_glues_every_number_without_display(monkeypatch):
    glued = []
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.append((name, value, display)))
    numbers = chapters.glue_summary("deg_dp", ENTRY)
    assert glued == [(name, value, False) for name, value in numbers.items()]
    assert len(glued) == 7
    glued.clear()
    chapters.glue_numbers({"deg_scale": 0.25, "deg_n": 5, "np": np.float64(0.5), "t": torch.tensor([3]), "s": "XENT"})
    assert glued == [
        ("deg_scale", 0.25, False),
        ("deg_n", 5, False),
        ("np", 0.5, False),
        ("t", 3, False),
        ("s", "XENT", False),
    ]
    assert type(glued[2][1]) is float and type(glued[3][1]) is int, (
        "numpy and torch scalars are glued as Python numbers"
    )


def test_in_batches_concatenates_on_the_cpu_and_feeds_every_batch_to_each_callback():
    images = torch.arange(10.0).view(10, 1)
    seen = []
    out = chapters.in_batches(lambda x: x * 2, images, 4, each=[lambda b: seen.append(b.clone())])
    assert torch.equal(out, images * 2) and out.device.type == "cpu"
    assert [len(b) for b in seen] == [4, 4, 2], "one callback call per batch, the last one short"
    assert torch.equal(torch.cat(seen), images * 2)
    with pytest.raises(ValueError, match="batch_size"):
        chapters.in_batches(lambda x: x, images, 0)
    with pytest.raises(ValueError, match="empty"):
        chapters.in_batches(lambda x: x, images[:0], 4)


class _Mean:
    """An explainer-like context manager: the channel mean of a batch times a model-specific factor."""

    closed = 0

    def __init__(self, model):
        self.factor = model

    def __enter__(self):
        return lambda x: x.mean(1) * self.factor

    def __exit__(self, *exc):
        _Mean.closed += 1


def test_explain_all_stacks_every_models_maps_and_closes_each_explainer():
    images = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    _Mean.closed = 0
    stacked = chapters.explain_all([1.0, 2.0, 3.0], images, 2, method=_Mean)
    assert stacked.shape == (3, 5, 4, 4) and _Mean.closed == 3
    assert torch.allclose(stacked[2], 3 * images.mean(1))
    with pytest.raises(ValueError, match="empty"):
        chapters.explain_all([], images, 2, method=_Mean)


def test_explain_all_defaults_to_gradcam_of_the_predicted_class():
    from salience_lib.salience import GradCAM

    model = build_model("small_cnn", image_size=32).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    stacked = chapters.explain_all([model], images, 2)
    with GradCAM(model) as cam:
        expected = cam(images)
    assert torch.allclose(stacked[0], expected, atol=1e-6)


def test_picks_per_group_draws_distinct_seeded_positions_in_group_order():
    groups = ["real"] * 5 + ["seen"] * 4 + ["unseen"] * 3
    picks = chapters.picks_per_group(groups, ("real", "seen", "unseen"), 2, seed=0)
    assert [groups[i] for i in picks] == ["real", "real", "seen", "seen", "unseen", "unseen"]
    assert len(set(picks)) == 6
    assert picks == chapters.picks_per_group(groups, ("real", "seen", "unseen"), 2, seed=0)
    many = ["seen"] * 50
    assert chapters.picks_per_group(many, ("seen",), 5, seed=0) != chapters.picks_per_group(many, ("seen",), 5, seed=1)
    with pytest.raises(ValueError, match="'unseen' has 3 images, fewer than the 4"):
        chapters.picks_per_group(groups, ("unseen",), 4, seed=0)


def test_group_means_averages_by_group_in_sorted_order():
    values = torch.tensor([1.0, 3.0, 10.0, float("nan"), 20.0])
    groups = np.array(["seen", "seen", "real", "real", "real"])
    assert chapters.group_means(values, groups, "s_") == {"s_real": 15.0, "s_seen": 2.0}
    assert list(chapters.group_means([1, 2], ["b", "a"])) == ["a", "b"]
    with pytest.raises(ValueError, match="3 entries for 2 groups"):
        chapters.group_means([1.0, 2.0, 3.0], ["a", "b"])


def test_glue_cells_glues_the_chosen_cells_by_row_and_column_key(monkeypatch):
    import pandas as pd

    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.update({name: value}))
    table = pd.DataFrame({"fixed blob": [0.9, 0.2], "fixed ramp": [0.1, 0.7]}, index=["hflip", "vflip"])
    numbers = chapters.glue_cells(table.T, "geo", {"fixed blob": "blob"}, {"hflip": "hflip", "vflip": "vflip"})
    assert numbers == glued == {"geo_blob_hflip": 0.9, "geo_blob_vflip": 0.2}
    assert chapters.glue_cells(table, "", {"vflip": "v"}, {"fixed ramp": ""}) == {"v": 0.7}
    with pytest.raises(KeyError, match="'rot90', 'fixed blob'"):
        chapters.glue_cells(table, "geo", {"rot90": "r"}, {"fixed blob": "b"})
