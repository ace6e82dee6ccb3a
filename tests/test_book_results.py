"""Tests for salience_lib.book.results: the per-model table of an engine result."""

import pytest

from salience_lib.book import HEADLINE, headline_table, result_value


def _summary(mean: float) -> dict:
    return {"mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "n": 4}


def _model(loss: str, seed: int, base: float) -> dict:
    model: dict = {"loss": loss, "seed": seed}
    for i, path in enumerate(HEADLINE.values()):
        node = model
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _summary(base + i)
    return model


def test_headline_table_reads_summaries_and_per_run_stability():
    result = {
        "models": {"a": _model("xent", 0, 0.0), "b": _model("xent", 1, 10.0), "c": _model("cyborg", 0, 20.0)},
        "recipes": {
            "x": {"runs": ["a", "b"], "matrix": [[1.0, 0.4], [0.4, 1.0]]},
            "c": {"runs": ["c"], "matrix": None},
        },
    }
    table = headline_table(result)
    assert list(table.index) == ["a", "b", "c"] and table.loc["b", "accuracy"] == 10.0
    assert table.loc["a", "(a) entropy"] == 1.0 and table.loc["c", "loss"] == "cyborg"
    assert table.loc["a", "(d) stability"] == pytest.approx(0.4) and table["(d) stability"].isna().sum() == 1
    assert headline_table(result, statistic="ci_high").loc["a", "accuracy"] == pytest.approx(0.1)
    with pytest.raises(KeyError, match=r"geometric\.nope"):
        result_value(result["models"]["a"], "geometric.nope")
