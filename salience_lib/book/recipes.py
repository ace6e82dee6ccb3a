"""Comparing the training recipes: per-recipe statistics over per-model numbers, and their table.

A chapter measures something once per trained model and then compares the recipes (XENT against
CYBORG) across seeds. The unit is the model, not the image: :func:`summarise_recipes` gives, per
metric, each recipe's values, mean and 95% bootstrap CI over its models and a two-sided
Mann–Whitney test of the two recipes; :func:`comparison_table` turns that into a table, and
:func:`smallest_p_value` says how small a p-value so few seeds can give at all. The plots of the
same summaries are in :mod:`salience_lib.book.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from salience_lib.stats import mann_whitney, summarise_recipes

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RECIPES", "comparison_table", "smallest_p_value", "summarise_recipes"]

#: The two recipes the book compares, in the order of its tables and figures.
RECIPES: tuple[str, str] = ("xent", "cyborg")


def comparison_table(
    summary: dict, metrics: Sequence[str] | None = None, recipes: Sequence[str] = RECIPES
) -> pd.DataFrame:
    """A pandas table of :func:`summarise_recipes` output: per metric, ``mean [CI]`` per recipe and p.

    Columns: ``<recipe> mean``, ``<recipe> 95% CI`` for each recipe, ``Mann–Whitney p``.

    Args:
        summary: what :func:`summarise_recipes` returned.
        metrics: the rows, in order (default: every metric of ``summary``).
        recipes: the recipes whose columns the table has; a recipe missing from a metric leaves its
            cells empty.
    """
    import pandas as pd

    rows = []
    for metric in metrics or list(summary):
        entry = summary[metric]
        row: dict[str, object] = {"metric": metric}
        for recipe in recipes:
            if recipe in entry:
                row[f"{recipe} mean"] = entry[recipe]["mean"]
                row[f"{recipe} 95% CI"] = f"[{entry[recipe]['ci_low']:.3f}, {entry[recipe]['ci_high']:.3f}]"
        row["Mann–Whitney p"] = entry.get("mann_whitney", {}).get("p")
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


def smallest_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided Mann–Whitney p-value that ``n_a`` against ``n_b`` values can give.

    It is reached when every value of one sample lies above every value of the other: 2/252 ≈ 0.008
    for 5 against 5 seeds, so a smaller p cannot be expected from a comparison of five models each.

    Raises:
        ValueError: a sample of fewer than one value.
    """
    if n_a < 1 or n_b < 1:
        raise ValueError(f"`n_a` and `n_b` must be >= 1, got {n_a} and {n_b}")
    return mann_whitney(list(range(n_a)), list(range(n_a, n_a + n_b)))["p"]
