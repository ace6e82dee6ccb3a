import pytest

from salience_lib.book import recipes


def _models() -> dict[str, dict]:
    """Five XENT models with acc 0.0-0.4, five CYBORG with 1.0-1.4: every CYBORG value is higher."""
    models = {f"x{i}": {"loss": "xent", "seed": i, "acc": 0.1 * i} for i in range(5)}
    models |= {f"c{i}": {"loss": "cyborg", "seed": i, "acc": 1 + 0.1 * i} for i in range(5)}
    return models


def test_summarise_recipes_tests_xent_against_cyborg():
    summary = recipes.summarise_recipes(_models())
    assert list(summary) == ["acc"], "only float values are metrics (the int seed is not)"
    assert summary["acc"]["mann_whitney"]["p"] == pytest.approx(2 / 252)
    assert summary["acc"]["xent"]["mean"] == pytest.approx(0.2)
    assert summary["acc"]["xent"]["values"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    table = recipes.comparison_table(summary)
    assert list(table.index) == ["acc"]
    assert table.loc["acc", "cyborg mean"] == pytest.approx(1.2)
    assert table.loc["acc", "Mann–Whitney p"] == pytest.approx(2 / 252)
    low, high = summary["acc"]["cyborg"]["ci_low"], summary["acc"]["cyborg"]["ci_high"]
    assert table.loc["acc", "cyborg 95% CI"] == f"[{low:.3f}, {high:.3f}]"


def test_summarise_recipes_without_a_pair_has_no_test():
    models = {"x0": {"loss": "xent", "acc": 0.5}, "c0": {"loss": "cyborg", "acc": 0.7}, "c1": {"loss": "cyborg"}}
    summary = recipes.summarise_recipes(models)
    assert "mann_whitney" not in summary["acc"], "one XENT value: no test"
    assert summary["acc"]["cyborg"]["n"] == 1, "a model without the metric is skipped"
    table = recipes.comparison_table(summary, ["acc"], recipes=("cyborg",))
    assert list(table.columns) == ["cyborg mean", "cyborg 95% CI", "Mann–Whitney p"]
    assert table.loc["acc", "Mann–Whitney p"] is None


def test_smallest_p_value():
    assert recipes.smallest_p_value(5, 5) == pytest.approx(2 / 252)
    assert recipes.smallest_p_value(10, 10) < recipes.smallest_p_value(5, 5)
    with pytest.raises(ValueError, match="n_a"):
        recipes.smallest_p_value(0, 5)
