import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from salience_lib.stats import bootstrap_ci, mann_whitney, roc_auc, summarise


def test_ci_contains_mean_and_shrinks_with_n():
    g = torch.Generator().manual_seed(0)
    small = torch.randn(50, generator=g)
    large = torch.randn(5000, generator=g)
    s_small, s_large = summarise(small), summarise(large)
    assert s_small.ci_low <= s_small.mean <= s_small.ci_high
    assert (s_large.ci_high - s_large.ci_low) < (s_small.ci_high - s_small.ci_low) / 5


def test_ci_close_to_normal_theory():
    values = torch.randn(4000, generator=torch.Generator().manual_seed(1))
    low, high = bootstrap_ci(values)
    half = 1.96 * float(values.std()) / np.sqrt(4000)
    assert abs((high - low) / 2 - half) / half < 0.1


def test_single_value_and_errors():
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    with pytest.raises(ValueError, match="empty"):
        summarise([])
    with pytest.raises(ValueError, match="NaN"):
        summarise([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.5)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=40), st.randoms())
def test_order_invariant(values, rnd):
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert bootstrap_ci(values) == bootstrap_ci(shuffled)


def test_mann_whitney_matches_scipy_and_least_p():
    a, b = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]
    result = mann_whitney(a, b)
    assert result["p"] == pytest.approx(scipy_stats.mannwhitneyu(a, b).pvalue)
    assert result["p"] == pytest.approx(2 / 252)
    assert result["effect"] == 0


def test_roc_auc_known_cases():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1], [0.9]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5]) == 0.5
    assert roc_auc([0.3, 0.9], [0.5, 0.1]) == pytest.approx(0.75)
