"""All five measures for many checkpoints on one data set: a JSON and a CSV report, streamed and resumable.

``python -m salience_lib report --data DIR --runs RUNS --out report.json`` (or :func:`run_report`)
loads every complete run under ``RUNS`` and streams a split of a CYBORG-layout data set through the
measures' accumulators, one model and one measure at a time. The JSON holds ``settings``,
``versions``, ``device``, ``data`` (split, groups, annotations), ``cache`` (reused / computed) and —
every number a summary ``{mean, ci_low, ci_high, n, confidence}`` (95% bootstrap CI) unless said:

* ``models.<run>``: identity (arch, loss, seed, recipe, target layer, map size), ``accuracy``,
  (a) ``entropy.{histogram,spatial}``; (b) ``out_of_set.salt_and_pepper`` (the paper's schedule:
  ``auc``, per-severity ``similarity`` and ``probability_change``) and
  ``out_of_set.distribution_shift.groups.<group>`` (entropy and similarity to the model's mean
  in-set map for seen / unseen / non-face images); (c) ``geometric.<transform>`` and ``mean``;
  (e) ``degradation.{background,salient,random_background,random_salient}`` (probability drop, flip
  rate, map similarity) and ``deletion`` / ``deletion_random`` (AUC, mean curve);
  ``annotation_agreement`` where the split has human maps; ``timing`` in seconds;
* ``recipes.<recipe>``: (d) runs sharing the sidecar's ``recipe_hash``: cross-run ``stability`` and
  the K×K ``matrix`` of mean pair similarities; ``between_recipes``: one baseline per recipe pair.

The CSV (:func:`flatten_report`) has one row per model × measure × statistic.

Salience is Grad-CAM of the predicted class at the automatically located layer, optionally upsampled
to ``map_size`` before every measure (SSIM of 8×8 maps has only 2×2 window positions, SPEC §5);
similarity is SSIM unless told otherwise. Noise and random maps are drawn per image index
(:func:`salience_lib.distributed.indexed_uniform`), so a ``torchrun`` run, sharded by whole batches,
gives the numbers of a single process.

Memory grows by a few hundred bytes per image and model (per-image scalars for the bootstrap CIs),
never by maps. Each model's result is cached in ``<out>.cache/`` under a hash of the settings that
change the numbers and of the checkpoint: an interrupted report resumes, a changed setting recomputes.
"""

from __future__ import annotations

import abc
import csv
import hashlib
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from itertools import combinations
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from salience_lib import __version__
from salience_lib.data import CsvImageDataset, NonFaceDataset, dataset_hash
from salience_lib.inference import class_probabilities
from salience_lib.maps import resize_maps
from salience_lib.measures.accumulator import Accumulator
from salience_lib.measures.degradation import (
    DEFAULT_FRACTIONS,
    DegradationAccumulator,
    DeletionAccumulator,
    degradation_effect,
    deletion_curve,
)
from salience_lib.measures.entropy import EntropyAccumulator, salience_entropy
from salience_lib.measures.geometric import GeometricAccumulator, geometric_consistency
from salience_lib.measures.out_of_set import (
    SALT_AND_PEPPER_FRACTIONS,
    MeanMapAccumulator,
    PerturbationAccumulator,
    perturbation_curve,
    similarity_to_mean_map,
)
from salience_lib.measures.stability import StabilityAccumulator, agreement_with_reference, cross_set_similarity
from salience_lib.runtime import distributed as dist_utils
from salience_lib.runtime.memory import release_free_memory
from salience_lib.salience import GradCAM
from salience_lib.similarity import SIMILARITIES
from salience_lib.stats import Summary, bootstrap_ci
from salience_lib.models.runs import MODEL_FILE, SIDECAR_FILE, find_runs, load_model
from salience_lib.transforms import DEFAULT_TRANSFORMS

__all__ = [
    "CSV_FIELDS",
    "SCHEMA_VERSION",
    "ReportError",
    "ReportSettings",
    "csv_path_for",
    "flatten_report",
    "main_report",
    "resolve_runs",
    "run_report",
]

SCHEMA_VERSION = 1
# Bump when a change here changes the numbers for given settings (invalidates cached model results).
REPORT_VERSION = 1
AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("background", "salient")
CSV_FIELDS = ("scope", "model", "recipe", "loss", "arch", "seed", "measure", "statistic", "value")
# Bootstrap resamples are drawn in chunks of at most this many indices: ~16 MB transient memory
# whatever the number of images (stats.bootstrap_ci's default, 2**24, reaches 256 MB from 8k images).
_BOOTSTRAP_CHUNK = 2**20
_RANDOM_MAP_STREAM = 1_000_003
_EXECUTION_FIELDS = ("batch_size", "num_workers", "device", "progress")

Similarity = Callable[..., torch.Tensor]
ModelCallback = Callable[[str, dict[str, Any]], None]


class ReportError(ValueError):
    """Bad input to a report; the message names the path or the argument."""


# ---------------------------------------------------------------------------------------------
# settings and runs


@dataclass(frozen=True)
class ReportSettings:
    """What to measure and how to run it.

    Attributes:
        data: CYBORG-layout data folder.
        split: ``train``, ``val`` or ``test``.
        similarity: a name in :data:`salience_lib.similarity.SIMILARITIES`.
        map_size: upsample maps to this side before every measure (``None``: Grad-CAM's native size).
        image_size: resize images to this side (``None``: the runs' common training size, else native).
        amp: ``none``, ``bf16`` or ``fp16`` autocast for Grad-CAM.
        limit: only the first ``limit`` images of the split (and of the non-face set).
        seed: seed of the salt-and-pepper noise and the random maps (drawn per image index).
        in_set_groups: metadata groups whose mean map is the in-set reference of distribution shift.
        batch_size, num_workers, device, progress: execution only; they are not part of the cache
            key (the batch size can move float32 results in the last digits).
    """

    data: str
    split: str = "test"
    similarity: str = "ssim"
    map_size: int | None = None
    image_size: int | None = None
    amp: str = "none"
    limit: int | None = None
    seed: int = 0
    in_set_groups: tuple[str, ...] = ("real", "seen")
    batch_size: int = 32
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", str(self.data))
        object.__setattr__(self, "in_set_groups", tuple(self.in_set_groups))
        choices = {"split": ("train", "val", "test"), "similarity": tuple(SIMILARITIES), "amp": tuple(AMP_DTYPES)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ReportError(f"unknown `{name}` (--{name}) {getattr(self, name)!r}; choose from {list(allowed)}")
        for name in ("map_size", "image_size", "limit", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ReportError(f"`{name}` (--{name.replace('_', '-')}) must be a positive integer, got {value!r}")
        if self.num_workers < 0 or not 0 <= self.seed < 2**32:
            raise ReportError(f"need --num-workers >= 0 and 0 <= --seed < 2**32, got {self.num_workers}, {self.seed}")

    def measured(self) -> dict[str, Any]:
        """The settings that change the numbers, with the protocol's constants (the cache key's input)."""
        chosen = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _EXECUTION_FIELDS}
        return chosen | {
            "data": str(Path(self.data).resolve()),
            "salience": "gradcam (predicted class, automatic target layer)",
            "salt_and_pepper_fractions": list(SALT_AND_PEPPER_FRACTIONS),
            "transforms": list(DEFAULT_TRANSFORMS),
            "degradation_modes": list(MODES),
            "deletion_fractions": list(DEFAULT_FRACTIONS),
            "degradation_reference_size": 224,
            "confidence": 0.95,
            "bootstrap_resamples": 2000,
            "report_version": REPORT_VERSION,
            "library_version": __version__,
        }


def _sidecar(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / SIDECAR_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"cannot read the sidecar {run_dir / SIDECAR_FILE}: {err}") from err


def resolve_runs(
    runs_root: str | os.PathLike[str] | None, run_dirs: Sequence[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Run folders to report on: ``run_dirs`` if given, else every complete run under ``runs_root``.

    Raises:
        ReportError: neither given, a missing folder, an incomplete run, no complete run under
            ``runs_root``, or two runs with the same folder name (names key the report).
    """
    if run_dirs:
        runs = [Path(p) for p in run_dirs]
        for run in runs:
            if not (run / SIDECAR_FILE).is_file() or not (run / MODEL_FILE).is_file():
                raise ReportError(f"--run {run}: no checkpoint ({MODEL_FILE} and {SIDECAR_FILE}) in that folder")
            if not _sidecar(run).get("complete"):
                raise ReportError(f"--run {run}: the run is not complete (still training or interrupted)")
    elif runs_root is not None:
        if not Path(runs_root).is_dir():
            raise ReportError(f"--runs {runs_root}: runs folder not found")
        runs = find_runs(runs_root)
        if not runs:
            raise ReportError(
                f"--runs {runs_root}: no complete checkpoint ({MODEL_FILE} + {SIDECAR_FILE} with complete=true) "
                "in its sub-folders; train some with `python -m salience_lib train`"
            )
    else:
        raise ReportError("give the checkpoints: --runs RUNS (a folder of runs) or --run DIR (repeatable)")
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise ReportError(f"run folder names must be unique (they key the report), got {sorted(names)}")
    return runs


def _recipe_label(side: dict[str, Any], name: str) -> str:
    rhash = side.get("recipe_hash") or hashlib.sha256(name.encode()).hexdigest()
    return f"{side.get('loss', 'unknown')}-{side.get('arch', 'unknown')}-{rhash[:8]}"


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class _Data:
    """The split (first ``n`` images), its groups and in-set flags, and the optional non-face set."""

    split: CsvImageDataset
    n: int
    annotations: bool
    groups: list[str]
    group_ids: torch.Tensor
    in_set: torch.Tensor
    nonface: NonFaceDataset | None
    n_nonface: int

    @property
    def shift_groups(self) -> list[str] | None:
        """Groups compared by distribution shift (None: no families and no non-face set to compare)."""
        if self.groups == ["faces"] and self.nonface is None:
            return None
        return self.groups + (["nonface"] if self.n_nonface else [])

    def in_set_groups(self) -> list[str]:
        """The groups whose images make the in-set mean map."""
        return [self.groups[g] for g in self.group_ids[self.in_set].unique().tolist()]

    def summary(self) -> dict[str, Any]:
        """What the report says about the data."""
        counts = torch.bincount(self.group_ids, minlength=len(self.groups)).tolist()
        return {
            "root": str(self.split.root),
            "split": self.split.split,
            "n_images": self.n,
            "image_size": list(self.split.image_size),
            "annotations": self.annotations,
            "groups": dict(zip(self.groups, counts, strict=True))
            | ({"nonface": self.n_nonface} if self.n_nonface else {}),
            "in_set_groups": self.in_set_groups(),
        }


def _groups(
    split: CsvImageDataset, n: int, in_set_groups: Sequence[str]
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Group names (metadata ``group``, else ``family``, else one group), per-image ids, in-set mask."""
    columns = split.metadata[0] if split.metadata else {}
    column = next((c for c in ("group", "family") if c in columns), None)
    labels = [split.metadata[i][column] for i in range(n)] if column else ["faces"] * n
    names = sorted(set(labels))
    ids = torch.tensor([names.index(label) for label in labels], dtype=torch.long)
    if column != "group":
        return names, ids, torch.ones(n, dtype=torch.bool)
    chosen = [names.index(g) for g in in_set_groups if g in names]
    if not chosen:
        raise ReportError(f"--in-set-groups {list(in_set_groups)}: none of them is among the data's groups {names}")
    return names, ids, torch.isin(ids, torch.tensor(chosen))


def _load_data(settings: ReportSettings, image_size: int | None) -> _Data:
    """Open the split (with annotations when every chosen image has one) and the non-face set."""
    root = Path(settings.data)
    try:
        split = CsvImageDataset(root, settings.split, image_size=image_size)
        n = min(settings.limit or len(split), len(split))
        annotated = all(split.annotation_file(i).is_file() for i in range(n))
        if annotated:
            split = CsvImageDataset(root, settings.split, image_size=image_size, annotations=True)
        nonface = NonFaceDataset(root, image_size=split.image_size) if (root / "nonface.csv").is_file() else None
    except ValueError as err:
        raise ReportError(f"--data {root}: {err}") from err
    n_nonface = 0 if nonface is None else min(settings.limit or len(nonface), len(nonface))
    groups, ids, in_set = _groups(split, n, settings.in_set_groups)
    return _Data(split, n, annotated, groups, ids, in_set, nonface, n_nonface)


@dataclass
class _Batch:
    """One batch on the device."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    group: torch.Tensor
    in_set: torch.Tensor
    annotation: torch.Tensor | None

    @classmethod
    def of(cls, item: dict[str, torch.Tensor], device: torch.device) -> _Batch:
        """Move a collated item dict to ``device``."""
        moved = {k: v.to(device, non_blocking=True) for k, v in item.items()}
        return cls(*(moved[k] for k in ("image", "label", "index", "group", "in_set")), moved.get("annotation"))


def _loaders(data: _Data, settings: ReportSettings, context: dist_utils.Context) -> list[DataLoader]:
    """This rank's shard of the split and, if any, of the non-face set (group ``len(groups)``)."""
    common = {"batch_size": settings.batch_size, "num_workers": settings.num_workers}
    columns = {"label": data.split.labels, "group": data.group_ids, "in_set": data.in_set}
    loaders = [dist_utils.sharded_loader(context, data.split, data.n, columns=columns, **common)]
    if data.nonface is not None and data.n_nonface:
        m = data.n_nonface
        columns = {
            "label": torch.full((m,), -1),
            "group": torch.full((m,), len(data.groups)),
            "in_set": torch.zeros(m, dtype=torch.bool),
        }
        loaders.append(dist_utils.sharded_loader(context, data.nonface, m, columns=columns, offset=data.n, **common))
    return loaders


# ---------------------------------------------------------------------------------------------
# models


class _Explainer:
    """Grad-CAM maps at ``size``; the last batch's maps are remembered (measures ask repeatedly)."""

    def __init__(self, cam: GradCAM, size: tuple[int, int] | None) -> None:
        self.cam, self.size = cam, size
        self._images: torch.Tensor | None = None
        self._maps: torch.Tensor | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images is not self._images:
            self._maps, self._images = self.cam(images, size=self.size), images
        return self._maps

    def forget(self) -> None:
        """Drop the remembered batch."""
        self._images = self._maps = None


@dataclass
class _Model:
    """A loaded run and its explainer."""

    run_dir: Path
    sidecar: dict[str, Any]
    model: nn.Module
    explainer: _Explainer
    native_size: tuple[int, int]

    @property
    def name(self) -> str:
        """The run's folder name (the report's key)."""
        return self.run_dir.name

    @property
    def map_size(self) -> tuple[int, int]:
        """Resolution of the maps every measure sees."""
        return self.explainer.size or self.native_size

    def describe(self) -> dict[str, Any]:
        """Identity of the model in the report."""
        side = self.sidecar
        return {
            "run": str(self.run_dir),
            **{key: side.get(key) for key in ("arch", "loss", "seed", "recipe_hash")},
            "recipe": _recipe_label(side, self.name),
            "target_layer": self.explainer.cam.target_layer_name,
            "native_map_size": list(self.native_size),
            "map_size": list(self.map_size),
        }


def _load(run_dir: Path, settings: ReportSettings, device: torch.device, probe: torch.Tensor) -> _Model:
    model, side = load_model(run_dir, device)
    cam = GradCAM(model, autocast_dtype=AMP_DTYPES[settings.amp])
    native = tuple(cam(probe.to(device)).shape[-2:])
    size = None if settings.map_size is None else (settings.map_size, settings.map_size)
    loaded = _Model(run_dir, side, model, _Explainer(cam, size), native)
    if settings.similarity == "ssim" and min(loaded.map_size) < 7:
        raise ReportError(
            f"run {run_dir}: maps of {loaded.map_size[0]}×{loaded.map_size[1]} px (Grad-CAM's own: "
            f"{native[0]}×{native[1]}) are smaller than SSIM's 7×7 window; pass --map-size 16 or another --similarity"
        )
    return loaded


# ---------------------------------------------------------------------------------------------
# accumulators and bounded-memory summaries


class _Values(Accumulator):
    """Named per-image values, optionally split by group (``name/group``)."""

    def update(self, name: str, values: torch.Tensor) -> None:
        """Add ``(B,)`` values to the state ``name``."""
        self._cat(name, values)

    def update_groups(self, name: str, values: torch.Tensor, group: torch.Tensor, names: Sequence[str]) -> None:
        """Add ``(B,)`` values to ``name/<group name>`` by each image's group id (a loop over groups only)."""
        for g, group_name in enumerate(names):
            self._cat(f"{name}/{group_name}", values[group == g])

    def size(self, name: str) -> int:
        """Number of values of ``name`` (0 if never updated)."""
        return int(self.values(name).numel()) if name in self._cats else 0


def _summary(values: torch.Tensor) -> dict[str, float]:
    """Mean and 95% bootstrap CI, as :func:`salience_lib.stats.summarise` but in bounded memory."""
    data = values.detach().to("cpu", torch.float64).reshape(-1)
    low, high = bootstrap_ci(data, chunk_elements=_BOOTSTRAP_CHUNK)
    return Summary(float(data.mean()), low, high, int(data.numel())).as_dict()


def _summaries(acc: Accumulator, names: Sequence[str]) -> dict[str, Any]:
    return {name: _summary(acc.values(name)) for name in names} | {"n": acc.count}


# ---------------------------------------------------------------------------------------------
# the measures, one streaming pass each


class _Pass(abc.ABC):
    """One measure's pass over the data: accumulators, a per-batch update and a result."""

    name = "pass"
    uses_nonface = False

    @abc.abstractmethod
    def accumulators(self) -> list[Accumulator]:
        """Every accumulator, in a fixed order (all ranks sync them in that order)."""

    @abc.abstractmethod
    def update(self, model: _Model, batch: _Batch) -> None:
        """Add one batch."""

    @abc.abstractmethod
    def result(self) -> dict[str, Any]:
        """The summary (rank 0, after the sync)."""


class _EntropyPass(_Pass):
    """(a) entropy, plus accuracy, the in-set mean map and agreement with human annotations."""

    name = "entropy"

    def __init__(self, similarity: Similarity) -> None:
        self.similarity = similarity
        self.entropy = {kind: EntropyAccumulator(kind) for kind in ("histogram", "spatial")}
        self.values = _Values()
        self.mean_map = MeanMapAccumulator()

    def accumulators(self) -> list[Accumulator]:
        return [*self.entropy.values(), self.values, self.mean_map]

    def update(self, model: _Model, batch: _Batch) -> None:
        maps = model.explainer(batch.images)
        for acc in self.entropy.values():
            acc.update(maps)
        predicted = class_probabilities(model.model, batch.images).argmax(dim=1)
        self.values.update("accuracy", (predicted == batch.labels).double())
        if bool(batch.in_set.any()):
            self.mean_map.update(maps[batch.in_set])
        if batch.annotation is not None:
            self.values.update("annotation", agreement_with_reference(maps, batch.annotation, self.similarity))

    def result(self) -> dict[str, Any]:
        entropy = {
            kind: {"entropy": _summary(acc.values("entropy")), "all_zero": int(acc.total("all_zero")), "n": acc.count}
            for kind, acc in self.entropy.items()
        }
        annotated = self.values.size("annotation") > 0
        return {
            "accuracy": _summary(self.values.values("accuracy")),
            "entropy": entropy,
            "annotation_agreement": _summary(self.values.values("annotation")) if annotated else None,
        }


class _OutOfSetPass(_Pass):
    """(b) the paper's salt-and-pepper curve, noise drawn per image index."""

    name = "out_of_set"

    def __init__(self, similarity: Similarity, seed: int) -> None:
        self.similarity, self.seed = similarity, seed
        self.curve = PerturbationAccumulator("salt_and_pepper", SALT_AND_PEPPER_FRACTIONS)

    def accumulators(self) -> list[Accumulator]:
        return [self.curve]

    def update(self, model: _Model, batch: _Batch) -> None:
        family = dist_utils.indexed_salt_and_pepper(batch.index, self.seed)
        fractions = SALT_AND_PEPPER_FRACTIONS
        self.curve.update(
            perturbation_curve(model.model, model.explainer, batch.images, family, fractions, self.similarity)
        )

    def result(self) -> dict[str, Any]:
        acc, steps = self.curve, range(len(SALT_AND_PEPPER_FRACTIONS))
        return {
            "salt_and_pepper": {
                "auc": _summary(acc.values("auc")),
                "severities": list(acc.severities),
                "similarity": [_summary(acc.values(f"similarity@{i}")) for i in steps],
                "probability_change": [_summary(acc.values(f"probability_change@{i}")) for i in steps],
                "n": acc.count,
            }
        }


class _ShiftPass(_Pass):
    """(b) distribution shift: entropy and similarity to the in-set mean map, per group."""

    name = "distribution_shift"
    uses_nonface = True
    _NAMES = ("entropy_histogram", "entropy_spatial", "similarity_to_mean")

    def __init__(self, similarity: Similarity, mean_map: torch.Tensor, groups: list[str]) -> None:
        self.similarity, self.mean_map, self.groups = similarity, mean_map, groups
        self.values = _Values()

    def accumulators(self) -> list[Accumulator]:
        return [self.values]

    def update(self, model: _Model, batch: _Batch) -> None:
        maps = model.explainer(batch.images)
        values = (
            salience_entropy(maps, "histogram"),
            salience_entropy(maps, "spatial"),
            similarity_to_mean_map(maps, self.mean_map.to(maps), self.similarity),
        )
        for name, value in zip(self._NAMES, values, strict=True):
            self.values.update_groups(name, value, batch.group, self.groups)

    def result(self) -> dict[str, Any]:
        out = {}
        for group in self.groups:
            n = self.values.size(f"{self._NAMES[0]}/{group}")
            if n:
                out[group] = {name: _summary(self.values.values(f"{name}/{group}")) for name in self._NAMES} | {"n": n}
        return out


class _GeometricPass(_Pass):
    """(c) consistency under the default transforms."""

    name = "geometric"

    def __init__(self, similarity: Similarity) -> None:
        self.similarity = similarity
        self.scores = GeometricAccumulator()

    def accumulators(self) -> list[Accumulator]:
        return [self.scores]

    def update(self, model: _Model, batch: _Batch) -> None:
        self.scores.update(geometric_consistency(model.explainer, batch.images, similarity=self.similarity))

    def result(self) -> dict[str, Any]:
        return _summaries(self.scores, (*self.scores.transforms, "mean"))


class _DegradationPass(_Pass):
    """(e) single-pass guided blur (both modes, salience and random maps) and iterative deletion."""

    name = "degradation"

    def __init__(self, similarity: Similarity, seed: int) -> None:
        self.similarity, self.seed = similarity, seed
        self.single = {f"{kind}{mode}": DegradationAccumulator(mode) for kind in ("", "random_") for mode in MODES}
        self.deletion = {"deletion": DeletionAccumulator(), "deletion_random": DeletionAccumulator()}

    def accumulators(self) -> list[Accumulator]:
        return [*self.single.values(), *self.deletion.values()]

    def _random_maps(self, model: _Model, index: torch.Tensor) -> torch.Tensor:
        """Random maps at Grad-CAM's native resolution (blobs once upsampled), as the measure's baseline."""
        height, width = model.native_size
        noise = dist_utils.indexed_uniform(index, height * width, self.seed, _RANDOM_MAP_STREAM).view(-1, height, width)
        return noise if model.explainer.size is None else resize_maps(noise, model.explainer.size)

    def update(self, model: _Model, batch: _Batch) -> None:
        maps, noise = model.explainer(batch.images), self._random_maps(model, batch.index)
        clean = class_probabilities(model.model, batch.images)
        for mode in MODES:
            for kind, guide in (("", None), ("random_", noise)):
                effect = degradation_effect(
                    model.model, model.explainer, batch.images, mode, self.similarity, guide,
                    clean_maps=maps, clean_probabilities=clean,
                )
                self.single[f"{kind}{mode}"].update(effect)
        for key, guide in (("deletion", maps), ("deletion_random", noise)):
            self.deletion[key].update(deletion_curve(model.model, guide, batch.images, clean_probabilities=clean))

    def result(self) -> dict[str, Any]:
        out = {key: _summaries(acc, ("probability_drop", "flipped", "similarity")) for key, acc in self.single.items()}
        for key, acc in self.deletion.items():
            curve = (acc.total("curve_sum") / acc.count).tolist()
            out[key] = {"auc": _summary(acc.values("auc")), "fractions": list(acc.fractions), "mean_curve": curve}
            out[key]["n"] = acc.count
        return out


# ---------------------------------------------------------------------------------------------
# running the passes


@dataclass
class _Runner:
    """Shared state of one report: settings, process context, data and this rank's loaders."""

    settings: ReportSettings
    context: dist_utils.Context
    data: _Data
    loaders: list[DataLoader]

    @property
    def similarity(self) -> Similarity:
        """The chosen similarity function."""
        return SIMILARITIES[self.settings.similarity]

    def batches(self, nonface: bool, desc: str) -> Iterator[_Batch]:
        """This rank's batches of the split (then of the non-face set), with a progress bar on rank 0."""
        loaders = self.loaders if nonface else self.loaders[:1]
        show = self.settings.progress and self.context.is_main
        with tqdm(total=sum(map(len, loaders)), desc=desc, unit="batch", disable=not show, leave=False) as bar:
            for loader in loaders:
                for item in loader:
                    yield _Batch.of(item, self.context.device)
                    release_free_memory()  # keeps the peak from creeping up with the number of batches
                    bar.update()

    def run(self, model: _Model, measure: _Pass) -> float:
        """Stream this rank's shard through ``measure`` and sync its accumulators; returns seconds."""
        start = time.perf_counter()
        for batch in self.batches(measure.uses_nonface, f"{model.name} · {measure.name}"):
            measure.update(model, batch)
        model.explainer.forget()
        for acc in measure.accumulators():
            dist_utils.sync_accumulator(self.context, acc)
        return time.perf_counter() - start

    def load(self, run_dir: Path) -> _Model:
        """Load a run; one image of the split finds its target layer and map size."""
        return _load(run_dir, self.settings, self.context.device, self.data.split[0][0][None])


def _model_result(runner: _Runner, run_dir: Path) -> dict[str, Any] | None:
    """All per-model measures (a, b, c, e) of a run; the result on rank 0, None elsewhere."""
    model = runner.load(run_dir)
    sim, seed = runner.similarity, runner.settings.seed
    timing, out = {}, {}
    first = _EntropyPass(sim)
    timing[first.name] = runner.run(model, first)
    shift = _shift(runner, model, first.mean_map, timing)
    for measure in (_OutOfSetPass(sim, seed), _GeometricPass(sim), _DegradationPass(sim, seed)):
        timing[measure.name] = runner.run(model, measure)
        out[measure.name] = measure.result() if runner.context.is_main else None
    if not runner.context.is_main:
        return None
    entropy = first.result()
    return model.describe() | {
        "accuracy": entropy["accuracy"],
        "entropy": entropy["entropy"],
        "out_of_set": out["out_of_set"] | {"distribution_shift": shift},
        "geometric": out["geometric"],
        "degradation": out["degradation"],
        "annotation_agreement": entropy["annotation_agreement"],
        "timing": {name: round(seconds, 3) for name, seconds in timing.items()},
    }


def _shift(runner: _Runner, model: _Model, mean_map: MeanMapAccumulator, timing: dict[str, float]) -> Any:
    """Distribution-shift result (rank 0), or the reason it was skipped."""
    groups = runner.data.shift_groups
    if groups is None:
        return "skipped: the data set has neither metadata.csv with families nor nonface.csv"
    if mean_map.count == 0:
        return "skipped: no in-set image among the chosen ones"
    measure = _ShiftPass(runner.similarity, mean_map.compute(), groups)
    timing[measure.name] = runner.run(model, measure)
    if not runner.context.is_main:
        return None
    in_set = runner.data.in_set_groups()
    return {"in_set_groups": in_set, "mean_map_n": mean_map.count, "groups": measure.result()}


def _stability(runner: _Runner, runs: Sequence[Path]) -> dict[str, Any] | None:
    """(d) per recipe: cross-run stability and the K×K matrix; per pair of recipes: the baseline."""
    models = [runner.load(run) for run in runs]
    recipes: dict[str, list[_Model]] = {}
    for model in models:
        recipes.setdefault(_recipe_label(model.sidecar, model.name), []).append(model)
    labels = sorted(recipes)
    within = {label: StabilityAccumulator(len(recipes[label])) for label in labels if len(recipes[label]) > 1}
    pairs = [(a, b) for a, b in combinations(labels, 2) if recipes[a][0].map_size == recipes[b][0].map_size]
    between = _Values()
    for batch in runner.batches(False, f"stability · {len(models)} runs"):
        for label, acc in within.items():
            acc.update(torch.stack([m.explainer(batch.images) for m in recipes[label]]), runner.similarity)
        for a, b in pairs:
            ea, eb = [m.explainer for m in recipes[a]], [m.explainer for m in recipes[b]]
            between.update(f"{a}|{b}", cross_set_similarity(ea, eb, batch.images, runner.similarity))
    for acc in [*within.values(), between]:
        dist_utils.sync_accumulator(runner.context, acc)
    if not runner.context.is_main:
        return None
    return {
        "recipes": {label: _recipe_result(recipes[label], within.get(label)) for label in labels},
        "between_recipes": [_pair_result(a, b, recipes, between) for a, b in combinations(labels, 2)],
    }


def _recipe_result(models: list[_Model], acc: StabilityAccumulator | None) -> dict[str, Any]:
    side = models[0].sidecar
    out = {key: side.get(key) for key in ("recipe_hash", "loss", "arch")} | {"runs": [m.name for m in models]}
    out["k"] = len(models)
    if acc is None:
        return out | {"stability": None, "matrix": None, "n": 0, "note": "stability needs at least 2 runs"}
    matrix = (acc.total("matrix_sum") / acc.count).tolist()
    return out | {"stability": _summary(acc.values("stability")), "matrix": matrix, "n": acc.count}


def _pair_result(a: str, b: str, recipes: dict[str, list[_Model]], between: _Values) -> dict[str, Any]:
    n = between.size(f"{a}|{b}")
    if n == 0:
        sizes = [recipes[a][0].map_size, recipes[b][0].map_size]
        return {"recipes": [a, b], "similarity": None, "n": 0, "note": f"map sizes differ {sizes}; pass --map-size"}
    return {"recipes": [a, b], "similarity": _summary(between.values(f"{a}|{b}")), "n": n}


# ---------------------------------------------------------------------------------------------
# caching and output files


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return cached.get("result") if cached.get("key") == key else None


@dataclass
class _Plan:
    """Cache files and keys, decided on rank 0 and shared with every rank."""

    settings_hash: str
    image_size: int | None
    files: dict[str, Path]  # run name (or "stability") -> cache file
    keys: dict[str, str]
    cached: list[str]


def _plan(runs: Sequence[Path], settings: ReportSettings, out: Path) -> _Plan:
    try:
        data_hash = dataset_hash(settings.data)
    except FileNotFoundError as err:
        raise ReportError(f"--data {settings.data}: {err}") from err
    sizes = {_sidecar(run).get("image_size") for run in runs}
    image_size = settings.image_size or (sizes.pop() if len(sizes) == 1 else None)
    settings_hash = _sha256(settings.measured() | {"data_hash": data_hash, "image_size": image_size})
    checkpoints = {run.name: _file_sha256(run / MODEL_FILE) for run in runs}
    keys = {name: _sha256([settings_hash, name, sha]) for name, sha in checkpoints.items()}
    keys["stability"] = _sha256([settings_hash, sorted(checkpoints.items())])
    folder = out.parent / f"{out.name}.cache"
    files = {name: folder / f"{name}-{key[:16]}.json" for name, key in keys.items()}
    cached = [name for name in keys if _read_cache(files[name], keys[name]) is not None]
    return _Plan(settings_hash, image_size, files, keys, cached)


def _versions() -> dict[str, str]:
    installed = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}
    found = {name: installed.get(name, "not installed") for name in ("torchvision", "numpy", "scikit-image")}
    return {"salience_lib": __version__, "torch": torch.__version__, "python": platform.python_version()} | found


def _device_info(context: dist_utils.Context) -> dict[str, Any]:
    device = context.device
    return {
        "type": device.type,
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "world_size": context.world_size,
        "backend": ("nccl" if device.type == "cuda" else "gloo") if context.distributed else None,
        "torch_threads": torch.get_num_threads(),
    }


_SUMMARY_KEYS = ("mean", "ci_low", "ci_high", "n")
_LABELS = {"similarity": "severities", "probability_change": "severities", "mean_curve": "fractions"}
_NOT_MEASURES = {"run", "arch", "loss", "seed", "recipe", "recipe_hash", "target_layer", "native_map_size", "map_size"}


def _flat(prefix: str, value: Any, labels: Sequence[Any] | None = None) -> Iterator[tuple[str, str, Any]]:
    """``(measure, statistic, value)`` for every number under ``value`` (measure = dotted path)."""
    if isinstance(value, dict) and all(k in value for k in _SUMMARY_KEYS):
        yield from ((prefix, key, value[key]) for key in _SUMMARY_KEYS)
    elif isinstance(value, dict):
        for key, child in value.items():
            if key not in _LABELS.values():
                yield from _flat(f"{prefix}.{key}" if prefix else key, child, value.get(_LABELS.get(key, "")))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _flat(f"{prefix}@{labels[i] if labels else i}", child)
    elif isinstance(value, bool | int | float):
        yield prefix, "value", value


def _rows(info: dict[str, Any], numbers: dict[str, Any]) -> list[dict[str, Any]]:
    return [info | {"measure": m, "statistic": s, "value": v} for m, s, v in _flat("", numbers)]


def flatten_report(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model × measure × statistic (and per recipe and recipe pair), as in the CSV.

    Columns: :data:`CSV_FIELDS`. ``scope`` is ``model``, ``recipe`` or ``recipe_pair``; a measure is
    a dotted path into the JSON (``out_of_set.salt_and_pepper.similarity@0.05``,
    ``stability.matrix@0@1``); ``statistic`` is ``mean``, ``ci_low``, ``ci_high``, ``n`` or ``value``.
    """
    rows = []
    for name, result in report["models"].items():
        info = {"scope": "model", "model": name} | {k: result[k] for k in ("recipe", "loss", "arch", "seed")}
        rows += _rows(info, {k: v for k, v in result.items() if k not in _NOT_MEASURES and k != "timing"})
    for label, recipe in report["recipes"].items():
        info = {"scope": "recipe", "model": "", "recipe": label, "loss": recipe["loss"], "arch": recipe["arch"]}
        numbers = {"cross_run": recipe["stability"]} | {k: recipe[k] for k in ("matrix", "k", "n")}
        rows += _rows(info | {"seed": ""}, {"stability": numbers})
    for pair in report["between_recipes"]:
        info = {"scope": "recipe_pair", "model": "", "recipe": "|".join(pair["recipes"]), "loss": "", "arch": ""}
        rows += _rows(info | {"seed": ""}, {"between_recipes": {k: pair[k] for k in ("similarity", "n")}})
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def csv_path_for(out: str | os.PathLike[str]) -> Path:
    """The CSV written next to the JSON report ``out`` (same name, ``.csv``)."""
    return Path(out).with_suffix(".csv")


# ---------------------------------------------------------------------------------------------
# the report


def _check_paths(out: Path, settings: ReportSettings) -> None:
    if out.suffix.lower() == ".csv" or out.is_dir():
        raise ReportError(f"--out {out}: name the JSON file to write (e.g. report.json); the CSV goes next to it")
    if not Path(settings.data).is_dir():
        raise ReportError(f"--data {settings.data}: data folder not found")


def _cached_or_measured(runner: _Runner, plan: _Plan, name: str, measure: Callable[[], dict | None]) -> dict | None:
    """Rank 0: the cached result of ``name``, or ``measure()`` written to the cache; other ranks: None."""
    main = runner.context.is_main
    if name in plan.cached:
        return _read_cache(plan.files[name], plan.keys[name]) if main else None
    result = measure()
    if main:
        _write_atomic(
            plan.files[name], _dumps({"key": plan.keys[name], "settings_hash": plan.settings_hash, "result": result})
        )
    return result


def run_report(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    settings: ReportSettings,
    *,
    on_model_done: ModelCallback | None = None,
) -> dict[str, Any] | None:
    """Measure every run, write ``out`` (JSON) and its CSV; returns the report (None on ranks > 0).

    Under ``torchrun`` every process measures its shard and rank 0 writes; see the module docstring.

    Args:
        runs: run folders (see :func:`resolve_runs`).
        out: the JSON file; the CSV is :func:`csv_path_for` ``(out)``, the cache ``<out>.cache/``.
        settings: what to measure and how.
        on_model_done: called on rank 0 as ``f(run name, result)`` after a newly measured model's
            result is cached (an exception there stops the report; a later call resumes after it).

    Raises:
        ReportError: bad input (the message names the path or argument).
    """
    out, runs = Path(out), [Path(r) for r in runs]
    _check_paths(out, settings)
    context = dist_utils.setup(settings.device)
    try:
        plan = dist_utils.broadcast_object(context, _plan(runs, settings, out) if context.is_main else None)
        start = time.perf_counter()
        data = _load_data(settings, plan.image_size)
        runner = _Runner(settings, context, data, _loaders(data, settings, context))
        models = {}
        show = settings.progress and context.is_main
        with tqdm(total=len(runs) + 1, desc="report", unit="model", disable=not show) as overall:
            for run in runs:
                fresh = run.name not in plan.cached
                models[run.name] = _cached_or_measured(runner, plan, run.name, partial(_model_result, runner, run))
                if fresh and on_model_done is not None and context.is_main:
                    on_model_done(run.name, models[run.name])
                overall.update()
            stability = _cached_or_measured(runner, plan, "stability", partial(_stability, runner, runs))
            overall.update()
        if not context.is_main:
            return None
        report = {
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": asdict(settings) | {"image_size": plan.image_size, "measured": settings.measured()},
            "settings_hash": plan.settings_hash,
            "versions": _versions(),
            "device": _device_info(context),
            "data": data.summary(),
            "cache": {"reused": plan.cached, "computed": [n for n in (*models, "stability") if n not in plan.cached]},
            "seconds": round(time.perf_counter() - start, 3),
            "models": models,
            **stability,
        }
        _write_atomic(csv_path_for(out), _csv_text(flatten_report(report)))
        _write_atomic(out, _dumps(report))
        return report
    finally:
        dist_utils.teardown(context)


def main_report(args: Any) -> dict[str, Any] | None:
    """``python -m salience_lib report``: parsed arguments → :func:`run_report`; prints the output paths."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    names = [f.name for f in fields(ReportSettings) if f.name not in ("data", "in_set_groups", "progress")]
    settings = ReportSettings(
        data=args.data,
        in_set_groups=tuple(args.in_set_groups),
        progress=not args.no_progress,
        **{name: getattr(args, name) for name in names},
    )
    _check_paths(Path(args.out), settings)
    report = run_report(resolve_runs(args.runs, args.run or ()), args.out, settings)
    if report is not None:
        print(f"wrote {args.out} and {csv_path_for(args.out)}: {len(report['models'])} models, {report['seconds']} s")
    return report
