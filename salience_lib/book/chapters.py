"""What every measure chapter does around its measurement: pick the trained runs, glue numbers into the prose.

- :func:`runs_by_recipe` finds the complete runs trained on the chapter's data set, grouped by
  recipe, and refuses a folder that cannot support a comparison across seeds; :func:`load_runs`
  loads them all.
- :func:`seeded_picks` chooses the same random subset of a split in every chapter and build.
- :func:`glue_numbers` and :func:`glue_summary` hand numbers to the prose: a chapter writes its
  sentences in Markdown with ``{glue:text}`name:.3f``` roles, and a code cell glues the values
  under those names (myst-nb's ``glue(name, value, display=False)``), so no cell writes text.

Importing this module does not import Jupyter: myst-nb is imported when a number is glued.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from salience_lib.book.recipes import RECIPES
from salience_lib.models.runs import find_runs, load_model, read_sidecar

if TYPE_CHECKING:
    from salience_lib.models.builders import SalienceClassifier

__all__ = ["glue_numbers", "glue_summary", "load_runs", "runs_by_recipe", "seeded_picks", "summary_numbers"]


def runs_by_recipe(
    runs_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    recipes: Sequence[str] = RECIPES,
    *,
    min_runs: int = 2,
) -> dict[str, list[Path]]:
    """The complete runs of each recipe trained on ``data_dir`` as it is now, one per seed.

    Runs come from :func:`salience_lib.models.runs.find_runs` with ``data=data_dir``, so a run of an
    earlier version of the data set (another data hash in its sidecar) is left out rather than mixed
    in; within a recipe they are sorted by folder name. A comparison across seeds needs at least
    ``min_runs`` runs per recipe, each of another seed.

    Args:
        runs_dir: the folder of run folders (``runs/quick``).
        data_dir: the data set the chapter measures on.
        recipes: the recipes (the ``loss`` of a run's sidecar), in the order of the result.
        min_runs: the fewest runs a recipe may have.

    Returns:
        recipe -> its run folders.

    Raises:
        ValueError: a recipe with fewer than ``min_runs`` runs, or two runs of one recipe with the same
            seed; the message names the folders and the seeds found.
        FileNotFoundError: ``data_dir`` is not a data set (see :func:`salience_lib.data.dataset_hash`).
    """
    found: dict[str, list[Path]] = {recipe: [] for recipe in recipes}
    seeds: dict[str, list[int]] = {recipe: [] for recipe in recipes}
    for run in find_runs(runs_dir, data=data_dir):
        sidecar = read_sidecar(run)
        if sidecar is not None and sidecar["loss"] in found:
            found[sidecar["loss"]].append(run)
            seeds[sidecar["loss"]].append(sidecar["seed"])
    for recipe in recipes:
        if len(found[recipe]) < min_runs or len(set(seeds[recipe])) != len(seeds[recipe]):
            raise ValueError(
                f"{runs_dir}: need >= {min_runs} complete {recipe} runs of {data_dir} with distinct seeds, "
                f"found seeds {seeds[recipe]}"
            )
    return found


def load_runs(
    runs: Mapping[str, Sequence[str | os.PathLike[str]]], device: str | torch.device = "cpu"
) -> dict[str, tuple[SalienceClassifier, dict[str, Any]]]:
    """Every run of :func:`runs_by_recipe` loaded, by run folder name, recipe after recipe.

    Each value is what :func:`salience_lib.models.runs.load_model` returns: the model in eval mode on
    ``device`` and its sidecar (``sidecar["loss"]`` is the recipe, ``sidecar["seed"]`` the seed).

    Raises:
        FileNotFoundError, ValueError: a run that cannot be loaded (see ``load_model``).
        ValueError: two runs with the same folder name.
    """
    models: dict[str, tuple[SalienceClassifier, dict[str, Any]]] = {}
    for found in runs.values():
        for run in found:
            name = Path(run).name
            if name in models:
                raise ValueError(f"two runs named {name!r}: run folder names must be unique")
            models[name] = load_model(run, device)
    return models


def seeded_picks(total: int, n: int, seed: int) -> torch.Tensor:
    """``n`` distinct indices out of ``range(total)`` in a seeded random order (all of them if ``n >= total``).

    The first ``n`` entries of ``torch.randperm(total)`` drawn with a CPU generator seeded with
    ``seed``: the same subset on every machine and device, and a larger ``n`` extends a smaller one.

    Raises:
        ValueError: a negative ``total`` or ``n``.
    """
    if total < 0 or n < 0:
        raise ValueError(f"`total` and `n` must be >= 0, got {total} and {n}")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


def _plain(value: Any) -> Any:
    """A numpy scalar or a one-element tensor as the Python number it holds; anything else as it is.

    myst-nb formats a glued value from its ``repr``: ``np.float64(0.5)`` would not parse as a number.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def glue_numbers(numbers: Mapping[str, Any]) -> None:
    """Glue every value of ``numbers`` under its name, for ``{glue:text}`` roles in the prose.

    Each is ``myst_nb.glue(name, value, display=False)``: nothing is shown in the cell's output. A
    numpy scalar or one-element tensor is glued as a Python number, so that a format such as
    ``{glue:text}`name:.3f``` applies to it.
    """
    from myst_nb import glue

    for name, value in numbers.items():
        glue(name, _plain(value), display=False)


def summary_numbers(prefix: str, entry: Mapping[str, Any], recipes: Sequence[str] = RECIPES) -> dict[str, float]:
    """The numbers of one metric of :func:`salience_lib.book.summarise_recipes`, named for the prose.

    Per recipe ``<prefix>_<recipe>`` (the mean over its models), ``<prefix>_<recipe>_lo`` and
    ``<prefix>_<recipe>_hi`` (the 95% CI); and ``<prefix>_p``, the Mann–Whitney p-value, when the
    summary has a test.

    Args:
        prefix: the names' common start, e.g. ``"deg_dp_salient"``.
        entry: ``summary[metric]``.
        recipes: the recipes to name.

    Raises:
        KeyError: a recipe that ``entry`` has no values for.
    """
    numbers: dict[str, float] = {}
    for recipe in recipes:
        if recipe not in entry:
            raise KeyError(f"no {recipe!r} values in this summary entry (it has {sorted(entry)})")
        numbers[f"{prefix}_{recipe}"] = float(entry[recipe]["mean"])
        numbers[f"{prefix}_{recipe}_lo"] = float(entry[recipe]["ci_low"])
        numbers[f"{prefix}_{recipe}_hi"] = float(entry[recipe]["ci_high"])
    if "mann_whitney" in entry:
        numbers[f"{prefix}_p"] = float(entry["mann_whitney"]["p"])
    return numbers


def glue_summary(prefix: str, entry: Mapping[str, Any], recipes: Sequence[str] = RECIPES) -> dict[str, float]:
    """Glue :func:`summary_numbers` of one metric (means, CIs, p) and return them.

    ``glue_summary("geo_mean", summary["mean over transforms"])`` lets the prose write
    ``{glue:text}`geo_mean_xent:.3f` [{glue:text}`geo_mean_xent_lo:.3f`, ...] (p = {glue:text}`geo_mean_p:.3f`)``.
    """
    numbers = summary_numbers(prefix, entry, recipes)
    glue_numbers(numbers)
    return numbers
