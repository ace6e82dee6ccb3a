"""Reading the engine's result in a chapter: one row per model, one column per measure.

:func:`salience_lib.evaluate` (and the CLI report) returns, per model, a nested dict of summaries.
Chapters that set the measures side by side pick the same handful of them; :data:`HEADLINE` names
them by their dotted path, and :func:`headline_table` turns a result into that table — with each
run's cross-run stability (d), the off-diagonal row mean of its recipe's K×K matrix
(:func:`salience_lib.measures.stability.stability_per_run`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from salience_lib.measures.stability import stability_per_run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HEADLINE", "headline_table", "result_value"]

HEADLINE: dict[str, str] = {
    "accuracy": "accuracy",
    "(a) entropy": "entropy.spatial.entropy",
    "(b) noise AUC": "out_of_set.salt_and_pepper.auc",
    "(c) geometric": "geometric.mean",
    "(e) drop, blur salient": "degradation.salient.probability_drop",
    "(e) drop, blur background": "degradation.background.probability_drop",
    "(e) deletion AUC": "degradation.deletion.auc",
}
"""One number per measure: column label → dotted path into a model's result (each a summary)."""


def result_value(model: Mapping[str, Any], path: str) -> Any:
    """The entry at dotted ``path`` of one model's result, e.g. ``"entropy.spatial.entropy"``.

    Raises:
        KeyError: a path the result does not have (a measure not run), naming the path.
    """
    value: Any = model
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(f"the result has no {path!r} (missing {key!r}); was that measure run?")
        value = value[key]
    return value


def headline_table(
    result: Mapping[str, Any], columns: Mapping[str, str] = HEADLINE, statistic: str = "mean",
    *, skip_missing: bool = False,
) -> pd.DataFrame:
    """One row per model: ``loss`` (the recipe), ``seed``, ``statistic`` of each column, and ``(d) stability``.

    Args:
        result: what :func:`salience_lib.evaluate` or the report returned.
        columns: label → dotted path of a summary (:data:`HEADLINE`).
        statistic: ``mean``, ``ci_low``, ``ci_high`` or ``n`` of each summary.
        skip_missing: a column whose measure was not run (``measures=``) is NaN instead of a KeyError.
    """
    import pandas as pd

    stability: dict[str, float] = {}
    for recipe in result["recipes"].values():
        if recipe.get("matrix") is not None:
            stability |= dict(zip(recipe["runs"], stability_per_run(recipe["matrix"]).tolist(), strict=True))
    rows = {}
    for name, model in result["models"].items():
        row = {"loss": model.get("loss") or model.get("recipe"), "seed": model.get("seed")}
        for label, path in columns.items():
            try:
                row[label] = float(result_value(model, path)[statistic])
            except KeyError:
                if not skip_missing:
                    raise
                row[label] = float("nan")
        row["(d) stability"] = stability.get(name, float("nan"))
        rows[name] = row
    return pd.DataFrame(rows).T.astype({label: float for label in [*columns, "(d) stability"]})
