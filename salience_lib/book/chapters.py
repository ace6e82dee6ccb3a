"""What every measure chapter does around its measurement: pick the trained runs, glue numbers into the prose.

- :func:`runs_by_recipe` finds the complete runs trained on the chapter's data set, grouped by
  recipe, and refuses a folder that cannot support a comparison across seeds; :func:`load_runs`
  loads them all.
- :func:`seeded_picks` chooses the same random subset of a split in every chapter and build, and
  :func:`picks_per_group` a few examples of each image group; :func:`group_means` averages
  per-image values by group.
- :func:`in_batches` applies an explainer or a model to many images a batch at a time, and
  :func:`explain_all` gives every model's maps of the same images as one tensor.
- :func:`glue_numbers`, :func:`glue_summary` and :func:`glue_cells` hand numbers to the prose: a chapter writes its
  sentences in Markdown with ``{glue:text}`name:.3f``` roles, and a code cell glues the values
  under those names (myst-nb's ``glue(name, value, display=False)``), so no cell writes text.

Importing this module does not import Jupyter: myst-nb is imported when a number is glued.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from salience_lib.book.recipes import RECIPES
from salience_lib.models.runs import find_runs, load_model, read_sidecar

if TYPE_CHECKING:
    from salience_lib.models.builders import SalienceClassifier

__all__ = [
    "explain_all",
    "glue_cells",
    "glue_numbers",
    "glue_summary",
    "group_means",
    "in_batches",
    "load_runs",
    "picks_per_group",
    "runs_by_recipe",
    "seeded_picks",
    "summary_numbers",
]


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


def picks_per_group(groups: Sequence[str], names: Sequence[str], per_group: int, seed: int) -> list[int]:
    """``per_group`` distinct positions of each group in ``names``, in that order, drawn with a seeded generator.

    For galleries: ``picks_per_group(groups, ("real", "seen", "unseen"), 2, seed)`` gives two real
    faces, then two of seen and two of unseen families, the same in every build.

    Args:
        groups: the group of every image (e.g. ``EvaluationData.groups`` of a subset).
        names: the groups to pick from.
        per_group: positions per group.
        seed: seeds ``numpy.random.default_rng``.

    Raises:
        ValueError: a group with fewer than ``per_group`` images.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups)
    picks: list[int] = []
    for name in names:
        candidates = np.flatnonzero(labels == name)
        if len(candidates) < per_group:
            raise ValueError(f"group {name!r} has {len(candidates)} images, fewer than the {per_group} asked for")
        picks += [int(i) for i in rng.choice(candidates, per_group, replace=False)]
    return picks


def group_means(values: torch.Tensor | np.ndarray, groups: Sequence[str], prefix: str = "") -> dict[str, float]:
    """The mean of per-image ``values`` over the images of each group, named ``<prefix><group>``.

    Groups appear in sorted order. A value that is NaN is left out of its group's mean.

    Raises:
        ValueError: ``values`` and ``groups`` of different lengths.
    """
    data = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    labels = np.asarray(groups)
    if data.shape[:1] != labels.shape:
        raise ValueError(f"`values` has {len(data)} entries for {len(labels)} groups")
    return {f"{prefix}{name}": float(np.nanmean(data[labels == name])) for name in sorted(set(labels.tolist()))}


def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int,
    device: str | torch.device | None = None,
    *,
    each: Sequence[Callable[[torch.Tensor], Any]] = (),
) -> torch.Tensor:
    """``fn`` of ``images`` a batch at a time, concatenated on the CPU: ``(N, ...)`` for ``N`` images.

    Each batch is moved to ``device`` (default: where it already is) before the call, and each
    result to the CPU after it, so only one batch of inputs and outputs is on the device at a time.
    ``fn`` is an explainer (maps ``(B, h, w)``), a model or any function of a batch. Every callable
    of ``each`` gets every batch's result while it is still on the device, e.g. the ``update`` of
    an accumulator that streams over the batches.

    Raises:
        ValueError: ``batch_size`` < 1 or no images.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    if len(images) == 0:
        raise ValueError("`images` is empty: nothing to compute")
    parts = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        result = fn(batch if device is None else batch.to(device))
        for callback in each:
            callback(result)
        parts.append(result.cpu())
    return torch.cat(parts)


def explain_all(
    models: Sequence[torch.nn.Module],
    images: torch.Tensor,
    batch_size: int,
    method: Callable[[torch.nn.Module], Any] | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Every model's maps of the same images, ``(models, N, h, w)`` on the CPU.

    Each model is explained by ``method(model)`` (default :class:`salience_lib.salience.GradCAM` of
    the predicted class), used as a context manager so that its hooks are gone afterwards, over the
    images in batches (:func:`in_batches`).

    Raises:
        ValueError: no models, or maps of different sizes from different models.
    """
    if not models:
        raise ValueError("`models` is empty: nothing to explain")
    if method is None:
        from salience_lib.salience import GradCAM

        method = GradCAM
    stacked = []
    for model in models:
        with method(model) as explain:
            stacked.append(in_batches(explain, images, batch_size, device))
    shapes = {tuple(m.shape[1:]) for m in stacked}
    if len(shapes) != 1:
        raise ValueError(f"the models' maps differ in size ({sorted(shapes)}): cannot stack them")
    return torch.stack(stacked)


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


def glue_cells(table: Any, prefix: str, rows: Mapping[Any, str], columns: Mapping[Any, str]) -> dict[str, float]:
    """Glue chosen cells of a pandas table as ``<prefix>_<row key>_<column key>`` and return them.

    ``glue_cells(table, "geo", {"hflip": "hflip"}, {"fixed blob": "blob"})`` glues
    ``table.loc["hflip", "fixed blob"]`` as ``geo_hflip_blob``. An empty key leaves its part out
    of the name (``geo_blob``).

    Args:
        table: a pandas DataFrame (``.loc[row, column]`` must give a number).
        prefix: the names' common start.
        rows: row label -> its part of the name.
        columns: column label -> its part of the name.

    Raises:
        KeyError: a row or column the table lacks, naming it.
    """
    numbers: dict[str, float] = {}
    for row, row_key in rows.items():
        for column, column_key in columns.items():
            if row not in table.index or column not in table.columns:
                raise KeyError(f"the table has no cell ({row!r}, {column!r})")
            name = "_".join(part for part in (prefix, row_key, column_key) if part)
            numbers[name] = float(table.loc[row, column])
    glue_numbers(numbers)
    return numbers
