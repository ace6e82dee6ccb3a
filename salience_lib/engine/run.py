"""THE measurement engine: every measure of every model, one streaming pass over the data per model.

:func:`evaluate` is its public face and the CLI ``report`` is this engine plus files (cache, JSON,
CSV, :mod:`salience_lib.report`); the book's chapters call it or the measure functions it calls, so
each quantity has one definition. Per model, :class:`~salience_lib.engine.step.ModelMeasures`
streams the data once (46 model passes per image at the default settings, SPEC §8); afterwards the
kept native maps give distribution shift (b) and, across the models of a recipe, cross-run
stability (d) and the between-recipe baseline, at no extra pass.

Under ``torchrun`` every process measures its shard of whole batches; the accumulators'
``compute()`` all-gathers their states (TorchMetrics), so every rank ends with the numbers of a
single process, and rank 0 returns them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from salience_lib.engine.results import assemble, plain
from salience_lib.engine.settings import EngineSettings
from salience_lib.engine.sources import Source, open_source
from salience_lib.engine.step import KeptMaps, ModelMeasures, maps_at
from salience_lib.engine.subjects import Models, Subject, subjects_from
from salience_lib.measures.accumulator import ValuesAccumulator
from salience_lib.measures.out_of_set import DistributionShiftAccumulator
from salience_lib.measures.stability import StabilityAccumulator, set_similarity
from salience_lib.protocol import Protocol
from salience_lib.runtime import distributed as dist_utils
from salience_lib.runtime.memory import release_free_memory
from salience_lib.similarity import SIMILARITIES

__all__ = ["Engine", "Measured", "common_image_size", "evaluate"]


@dataclass
class Measured:
    """One model's outcome: its result (rank 0; None elsewhere) and this rank's kept native maps."""

    result: dict[str, Any] | None
    kept: KeptMaps
    map_size: tuple[int, int]


@contextlib.contextmanager
def _naming(measure: str) -> Iterator[None]:
    """Prefix a ValueError with the measure it arose in (:meth:`Engine.measure` adds the model)."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"measure {measure}: {err}") from err


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class Engine:
    """Measures models on one :class:`~salience_lib.engine.sources.Source` under one set of settings."""

    def __init__(self, source: Source, settings: EngineSettings, context: dist_utils.Context,
                 data: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        """``data``: the folder ``source`` was opened from; given, a model that expects another image
        side than ``source``'s (``Subject.image_size``, e.g. Inception-v3's 299 px) gets the data
        decoded at its own side, unless ``settings.image_size`` fixes one for all."""
        self.source, self.settings, self.context = source, settings, context
        self.similarity = SIMILARITIES[settings.similarity]
        self._data = data
        self._sources = {tuple(source.description["image_size"]): source}

    def _source_for(self, subject: Subject) -> Source:
        """The source at ``subject``'s own image side (one per side, opened once; same images, groups, order)."""
        if self._data is None or self.settings.image_size or not subject.image_size:
            return self.source
        side = (subject.image_size, subject.image_size)
        if side not in self._sources:
            self._sources[side] = open_source(self._data, self.settings, subject.image_size)
        return self._sources[side]

    @property
    def _show(self) -> bool:
        return self.settings.progress and self.context.is_main

    def measure(self, subject: Subject) -> Measured:
        """Stream the data once through every measure of ``subject``; results synced across ranks.

        Raises:
            ValueError: bad input met on the way (NaN maps or logits, images outside [0, 1], maps
                too small for SSIM); the message names the model.
        """
        start = time.perf_counter()
        model = subject.load(self.context.device)
        source = self._source_for(subject)
        measures = ModelMeasures(subject, model, source, self.settings, self.similarity)
        try:
            if self.context.distributed:
                measures.probe(source.dataset[0][0].to(self.context.device))
            total = source.n_batches(self.context, self.settings.batch_size)
            batches = source.batches(self.context, self.settings.batch_size, self.settings.num_workers)
            with tqdm(total=total, desc=subject.name, unit="batch", disable=not self._show, leave=False) as bar:
                for batch in batches:
                    measures.update(batch)
                    release_free_memory()  # keeps the peak from creeping up with the number of batches
                    bar.update()
            result = self._result(subject, measures)
        except ValueError as err:
            if subject.name in str(err):
                raise
            raise ValueError(f"model {subject.name}: {err}") from err
        finally:
            measures.close()
        if result is not None:
            result["image_size"] = list(source.description["image_size"])
            result["timing"] = {k: round(v, 3) for k, v in measures.timing.items()}
            result["timing"]["total"] = round(time.perf_counter() - start, 3)
        return Measured(result, measures.kept_maps(), measures.size or measures.native_size)

    # -- one model's numbers -------------------------------------------------------------------------
    def _result(self, subject: Subject, m: ModelMeasures) -> dict[str, Any] | None:
        """Every accumulator's ``compute()`` (collective: same order on every rank); rank 0 keeps them."""
        with _naming("entropy"):
            entropy = {kind: acc.compute() for kind, acc in m.entropy.items()}
        with _naming("ground truth"):
            detection = m.detection.compute()
            localisation = m.localisation.compute() if m.localisation is not None else None
        with _naming("annotation agreement"):
            annotation = m.annotation.compute()["agreement"] if m.annotation is not None else None
        with _naming("out_of_set (distribution shift)"):
            shift = self._shift(m)
        out_of_set: dict[str, Any] = {"distribution_shift": shift}
        if m.curve is not None:
            with _naming("out_of_set (salt_and_pepper)"):
                out_of_set["salt_and_pepper"] = m.curve.compute()
        with _naming("geometric"):
            geometric = m.geometric.compute() if m.geometric is not None else None
        with _naming("degradation"):
            degradation = {key: acc.compute() for key, acc in (m.single | m.deletion).items()} or None
        if degradation is not None:
            for key in m.deletion:
                degradation[key]["fractions"] = list(m.deletion[key].fractions)
        if not self.context.is_main:
            return None
        assert m.native_size is not None
        result = {
            **subject.info,
            "target_layer": m.cam.target_layer_name,
            "native_map_size": list(m.native_size),
            "map_size": list(m.size or m.native_size),
            "accuracy": detection.pop("accuracy"),
            "entropy": entropy,
            "out_of_set": out_of_set,
            "geometric": geometric,
            "degradation": degradation,
            "annotation_agreement": annotation,
            "ground_truth": {"detection": detection, "localisation": localisation},
        }
        return plain({k: v for k, v in result.items() if v is not None or k == "annotation_agreement"})

    def _shift(self, m: ModelMeasures) -> Any:
        """(b) distribution shift from the kept maps: per group, entropy and similarity to the in-set mean map."""
        groups = self.source.shift_groups
        if groups is None:
            return "skipped: the data set has one group of images and no nonface.csv"
        try:
            mean_map = m.mean_map.compute()
        except ValueError:
            return "skipped: no in-set image among the chosen ones"
        shift = DistributionShiftAccumulator(groups, mean_map, self.similarity)
        kept = m.kept_maps()
        for part in _chunks(len(kept.index), self.settings.batch_size):
            shift.update(maps_at(kept.maps[part].to(mean_map.device), m.size), kept.group[part])
        groups_result = shift.compute()
        in_set = {"in_set_groups": self.source.in_set_groups(), "mean_map_n": int(self.source.in_set.sum())}
        return in_set | {"groups": groups_result}

    # -- across models -------------------------------------------------------------------------------
    def cross_model(self, subjects: list[Subject], measured: dict[str, Measured]) -> dict[str, Any] | None:
        """(d) per recipe: cross-run stability and the K×K matrix; per pair of recipes: the baseline.

        Uses the clean native maps each model's pass kept (in-set images only); no model runs again.
        """
        recipes: dict[str, list[Subject]] = {}
        for subject in subjects:
            recipes.setdefault(subject.recipe, []).append(subject)
        labels = sorted(recipes)
        face_ids = len(self.source.groups)  # group ids below this are in-set images, the rest non-face
        size = {label: measured[recipes[label][0].name].map_size for label in labels}
        within = {label: StabilityAccumulator(len(recipes[label])) for label in labels if len(recipes[label]) > 1}
        pairs = [(a, b) for a, b in combinations(labels, 2) if size[a] == size[b]]
        between = ValuesAccumulator([f"{a}|{b}" for a, b in pairs])
        stacks = {label: self._stack(recipes[label], measured, face_ids) for label in labels}
        n = stacks[labels[0]].shape[1]
        for part in _chunks(n, self.settings.batch_size):
            at_size = {label: self._at_size(stacks[label][:, part], size[label]) for label in labels}
            for label, acc in within.items():
                acc.update(at_size[label], self.similarity)
            for a, b in pairs:
                between.update(f"{a}|{b}", set_similarity(at_size[a], at_size[b], self.similarity))
        computed = {label: acc.compute() for label, acc in within.items()}
        baselines = between.compute()
        if not self.context.is_main:
            return None
        return plain({
            "recipes": {label: self._recipe(recipes[label], computed.get(label)) for label in labels},
            "between_recipes": [
                {"recipes": [a, b], "similarity": baselines.get(f"{a}|{b}"),
                 "n": 0 if baselines.get(f"{a}|{b}") is None else baselines[f"{a}|{b}"].n}
                | ({} if size[a] == size[b] else {"note": f"map sizes differ {[size[a], size[b]]}; pass map_size"})
                for a, b in combinations(labels, 2)
            ],
        })

    def _stack(self, subjects: list[Subject], measured: dict[str, Measured], face_ids: int) -> torch.Tensor:
        kept = [measured[s.name].kept for s in subjects]
        for s, k in zip(subjects[1:], kept[1:], strict=True):
            if not torch.equal(k.index, kept[0].index):
                raise ValueError(f"model {s.name}: its maps cover other images than {subjects[0].name}'s")
        faces = kept[0].group < face_ids
        return torch.stack([k.maps[faces] for k in kept])

    def _at_size(self, stack: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        k, b = stack.shape[:2]
        return maps_at(stack.flatten(0, 1).to(self.context.device), size).view(k, b, *size)

    @staticmethod
    def _recipe(subjects: list[Subject], computed: dict[str, Any] | None) -> dict[str, Any]:
        first = subjects[0].info
        out = {key: first.get(key) for key in ("recipe_hash", "loss", "arch")}
        out |= {"runs": [s.name for s in subjects], "k": len(subjects)}
        if computed is None:
            return out | {"stability": None, "matrix": None, "n": 0, "note": "stability needs at least 2 runs"}
        return out | {"stability": computed["stability"], "matrix": computed["matrix"], "n": computed["n"]}


def common_image_size(subjects: list[Subject], settings: EngineSettings) -> int | None:
    """``settings.image_size``, else the side every model was trained at (if they agree), else None."""
    sizes = {s.image_size for s in subjects}
    return settings.image_size or (sizes.pop() if len(sizes) == 1 else None)


def evaluate(
    models: Models,
    data: str | os.PathLike[str] | Dataset,
    *,
    split: str = "test",
    csv: str | None = None,
    limit: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
    map_size: int | None = None,
    similarity: str = "ssim",
    seed: int = 0,
    amp: str | None = None,
    progress: bool = True,
    measures: tuple[str, ...] | None = None,
    image_size: int | None = None,
    protocol: str | Protocol = "paper",
) -> dict[str, Any] | None:
    """Every measure for every model, one streaming pass over the data per model (SPEC §3).

    Args:
        models: ``{"RECIPE/SEED": nn.Module}`` (modules take images in [0, 1] and return ``(B, K)``
            logits), a sequence of run folders, or one folder of runs. Runs of one recipe are
            compared by cross-run stability.
        data: a CYBORG-layout folder (``csv=`` names its CSV) or a Dataset yielding
            ``(image, label[, annotation])``.
        split, csv, limit, batch_size, device, map_size, similarity, seed, amp, measures,
            image_size: see :class:`~salience_lib.engine.settings.EngineSettings`.
        protocol: ``"paper"`` (default: the authors' steps), ``"refined"`` (ours) or a
            :class:`~salience_lib.protocol.Protocol`; the choices each makes are
            :mod:`salience_lib.protocol`'s.
        progress: show progress bars.

    Returns:
        The structure the CLI report writes as JSON (``models``, ``recipes``, ``between_recipes``,
        ``settings``, ``data``, ...); None on ranks > 0 of a ``torchrun`` run.

    Example:
        >>> result = evaluate({"xent/0": model_a, "xent/1": model_b}, "data/faces64")  # doctest: +SKIP
        >>> result["models"]["xent/0"]["entropy"]["spatial"]["entropy"]["mean"]      # doctest: +SKIP
    """
    chosen = {} if measures is None else {"measures": tuple(measures)}
    settings = EngineSettings(
        split=split, csv=csv, limit=limit, batch_size=batch_size, device=device, map_size=map_size,
        similarity=similarity, seed=seed, amp=amp or "none", progress=progress, image_size=image_size,
        protocol=protocol, **chosen,
    )
    subjects = subjects_from(models)
    context = dist_utils.setup(settings.device)
    try:
        start = time.perf_counter()
        source = open_source(data, settings, common_image_size(subjects, settings))
        engine = Engine(source, settings, context, data=None if isinstance(data, Dataset) else data)
        measured = {subject.name: engine.measure(subject) for subject in subjects}
        cross = engine.cross_model(subjects, measured)
        if not context.is_main:
            return None
        results = {name: m.result for name, m in measured.items()}
        described = asdict(settings) | {"measured": settings.measured()}
        return assemble(described, context, source.summary(), results, cross or {}, time.perf_counter() - start)
    finally:
        dist_utils.teardown(context)

