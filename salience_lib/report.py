"""All five measures for many checkpoints on one data set: the engine plus files (cache, JSON, CSV).

``python -m salience_lib report --data DIR --runs RUNS --out report.json`` (or :func:`run_report`)
measures every complete run under ``RUNS`` with :class:`salience_lib.engine.Engine` — one streaming
pass over the data per model — and writes the JSON and a flat CSV next to it, together or not at
all (:func:`salience_lib.runtime.files.write_together`: both to temp files, then renamed, JSON last;
the JSON's ``csv_sha256`` is the CSV's digest). The JSON holds ``settings`` (+ ``settings_hash``),
``versions``, ``device``, ``data`` (split, groups, annotations), ``cache`` (reused / computed) and —
every number a summary
``{mean, ci_low, ci_high, n, confidence}`` (95% bootstrap CI over images) unless said:

* ``models.<run>``: identity (arch, loss, seed, recipe, target layer, map size), ``accuracy``,
  (a) ``entropy.{histogram,spatial}``; (b) ``out_of_set.salt_and_pepper`` (the paper's schedule:
  ``auc``, per-severity ``similarity`` and ``probability_change``) and
  ``out_of_set.distribution_shift.groups.<group>`` (entropy and similarity to the model's mean
  in-set map for real / seen / unseen / non-face images); (c) ``geometric.<transform>`` and ``mean``;
  (e) ``degradation.{background,salient,random_background,random_salient}`` (probability drop, flip
  rate, map similarity) and ``deletion`` / ``deletion_random`` (AUC, mean curve);
  ``annotation_agreement`` where the split has human maps; ``ground_truth`` (detection AUCs,
  balanced accuracies, mask mass and pointing game where the data have them); ``timing`` in seconds;
* ``recipes.<recipe>``: (d) runs sharing the sidecar's ``recipe_hash``: cross-run ``stability`` and
  the K×K ``matrix`` of mean pair similarities; ``between_recipes``: one baseline per recipe pair.

The CSV (:func:`flatten_report`) has one row per model × measure × statistic.

Each model's result — and its clean native maps, which stability needs — is cached in
``<out>.cache/`` under a hash of the settings that change the numbers, the data set's files by content
(:func:`salience_lib.data.dataset_hash`: CSVs, images, heatmaps, masks, and the CSV chosen by ``csv``
wherever it lies), the checkpoint's bytes and what is known of the model: an interrupted report
resumes, a changed setting, file or checkpoint recomputes.

``--out`` is locked while a report writes it (:mod:`salience_lib.runtime.lock`; a second report on it
fails at once, naming the first), checked writable before anything is computed, and the temporary
files a killed report left there are removed (an interrupted final rename is completed first).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from salience_lib.data import dataset_hash
from salience_lib.data.layout import resolve_csv
from salience_lib.engine import Engine, EngineSettings, Measured, SettingsError, common_image_size
from salience_lib.engine.results import SCHEMA_VERSION, assemble
from salience_lib.engine.sources import _open_csv, open_source
from salience_lib.engine.step import KeptMaps
from salience_lib.engine.subjects import Subject, subjects_from, subjects_from_models_file
from salience_lib.models.runs import MODEL_FILE, SIDECAR_FILE, find_runs, read_sidecar, read_tensors
from salience_lib.runtime import distributed as dist_utils
from salience_lib.runtime.device import resolve_device
from salience_lib.runtime.files import (
    finish_together,
    journal_path,
    json_dumps,
    json_sha256,
    remove_stale_temp_files,
    write_atomic,
    write_together,
)
from salience_lib.runtime.lock import LockError, hold_lock, lock_path

__all__ = [
    "CSV_FIELDS",
    "SCHEMA_VERSION",
    "ReportError",
    "ReportSettings",
    "csv_path_for",
    "flatten_report",
    "main_report",
    "report_outputs",
    "resolve_runs",
    "run_report",
]

logger = logging.getLogger(__name__)

CSV_FIELDS = ("protocol", "scope", "model", "recipe", "loss", "arch", "seed", "measure", "statistic", "value")
ModelCallback = Callable[[str, dict[str, Any]], None]


class ReportError(SettingsError):
    """Bad input to a report; the message names the path or the argument."""


@dataclass(frozen=True)
class ReportSettings(EngineSettings):
    """:class:`~salience_lib.engine.EngineSettings` plus the data folder (``data``), the report's input."""

    data: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", str(self.data))
        try:
            super().__post_init__()
        except SettingsError as err:
            raise ReportError(str(err)) from err

    def measured(self) -> dict[str, Any]:
        return super().measured() | {"data": str(Path(self.data).resolve())}


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
            try:
                side = read_sidecar(run)
            except ValueError as err:
                raise ReportError(f"--run {run}: {err}") from err
            if not (side or {}).get("complete"):
                raise ReportError(f"--run {run}: the run is not complete (still training or interrupted)")
    elif runs_root is not None:
        if not Path(runs_root).is_dir():
            raise ReportError(f"--runs {runs_root}: runs folder not found")
        try:
            runs = find_runs(runs_root)
        except ValueError as err:
            raise ReportError(f"--runs {runs_root}: {err}") from err
        if not runs:
            raise ReportError(
                f"--runs {runs_root}: no complete checkpoint ({MODEL_FILE} + {SIDECAR_FILE} with complete=true) "
                "in its sub-folders; train some with `python -m salience_lib train`"
            )
    else:
        raise ReportError(
            "give the checkpoints: --runs RUNS (a folder of runs), --run DIR (repeatable) or --models FILE"
        )
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise ReportError(f"run folder names must be unique (they key the report), got {sorted(names)}")
    return runs


# ---------------------------------------------------------------------------------------------
# caching


@dataclass
class _Plan:
    """Cache files and keys, decided on rank 0 and shared with every rank."""

    settings_hash: str
    image_size: int | None
    files: dict[str, Path]  # model name (or "stability") -> cache file (the maps: same name, .pt)
    keys: dict[str, str]
    cached: list[str]


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    import json

    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cached.get("result") if cached.get("key") == key else None


def _plan(subjects: list[Subject], settings: ReportSettings, out: Path) -> _Plan:
    try:
        _open_csv(Path(settings.data), settings)  # a missing CSV is named with a hint
        data_hash = dataset_hash(settings.data, csv=settings.csv)  # the CSV counts wherever it lies
    except FileNotFoundError as err:
        raise ReportError(f"--data {settings.data}: {err}") from err
    image_size = common_image_size(subjects, settings)
    settings_hash = json_sha256(settings.measured() | {"data_hash": data_hash, "image_size": image_size})
    weights = {s.name: s.fingerprint() for s in subjects}
    known = {s.name: [s.info, s.image_size] for s in subjects}  # what the result says about the model
    keys = {name: json_sha256([settings_hash, name, sha, known[name]]) for name, sha in weights.items()}
    keys["stability"] = json_sha256([settings_hash, sorted(weights.items()), {s.name: s.recipe for s in subjects}])
    folder = out.parent / f"{out.name}.cache"
    files = {name: folder / f"{name.replace('/', '_')}-{key[:16]}.json" for name, key in keys.items()}
    maps_kept = {name: name == "stability" or files[name].with_suffix(".pt").is_file() for name in keys}
    cached = [name for name in keys if maps_kept[name] and _read_cache(files[name], keys[name]) is not None]
    return _Plan(settings_hash, image_size, files, keys, cached)


def _my_indices(engine: Engine) -> torch.Tensor:
    """Global image indices of this rank's shard (in-set images, then non-face ones offset by ``n``)."""
    source, context, batch = engine.source, engine.context, engine.settings.batch_size
    faces = dist_utils.shard_batches(source.n, batch, context.rank, context.world_size)
    nonface = dist_utils.shard_batches(source.n_nonface, batch, context.rank, context.world_size)
    return torch.cat([torch.tensor(list(faces)), source.n + torch.tensor(list(nonface))]).long()


def _load_measured(engine: Engine, plan: _Plan, name: str) -> Measured | None:
    """The cached result and maps of ``name``, or None when the maps file is unreadable (then recomputed)."""
    try:
        whole = read_tensors(plan.files[name].with_suffix(".pt"), "cached maps")
        whole = {k: whole[k] for k in ("index", "maps", "group", "map_size")}
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        logger.warning("recomputing %s: %s", name, err)
        return None
    mine = torch.isin(whole["index"], _my_indices(engine))
    kept = KeptMaps(whole["index"][mine], whole["maps"][mine], whole["group"][mine])
    result = _read_cache(plan.files[name], plan.keys[name]) if engine.context.is_main else None
    return Measured(result, kept, tuple(whole["map_size"]))


def _save_measured(engine: Engine, plan: _Plan, name: str, measured: Measured) -> None:
    """Rank 0 writes the result (JSON) and every rank's kept maps (gathered, .pt) — the maps first."""
    parts = dist_utils.gather_object(engine.context, measured.kept)
    if not engine.context.is_main:
        return
    whole = {
        "index": torch.cat([p.index for p in parts]),
        "maps": torch.cat([p.maps for p in parts]),
        "group": torch.cat([p.group for p in parts]),
        "map_size": list(measured.map_size),
    }
    write_atomic(plan.files[name].with_suffix(".pt"), lambda handle: torch.save(whole, handle))
    payload = {"key": plan.keys[name], "settings_hash": plan.settings_hash, "result": measured.result}
    write_atomic(plan.files[name], json_dumps(payload))


# ---------------------------------------------------------------------------------------------
# the CSV


_SUMMARY_KEYS = ("mean", "ci_low", "ci_high", "n")
_LABELS = {"similarity": "severities", "probability_change": "severities", "mean_curve": "fractions"}
_NOT_MEASURES = {"run", "arch", "loss", "seed", "recipe", "recipe_hash", "target_layer", "native_map_size", "map_size",
                 "module", "timing"}  # fmt: skip


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

    Columns: :data:`CSV_FIELDS`. ``protocol`` is the settings' (``paper`` or ``refined``; every row the
    same, so reports of both protocols concatenate into one table); ``scope`` is ``model``, ``recipe``
    or ``recipe_pair``; a measure is a dotted path into the JSON (``out_of_set.salt_and_pepper.similarity@0.05``,
    ``stability.matrix@0@1``); ``statistic`` is ``mean``, ``ci_low``, ``ci_high``, ``n`` or ``value``.
    """
    chosen = report.get("settings", {}).get("protocol", "")
    protocol = {"protocol": chosen.get("name", "") if isinstance(chosen, dict) else chosen}
    rows = []
    for name, result in report["models"].items():
        info = {"scope": "model", "model": name} | {k: result.get(k) for k in ("recipe", "loss", "arch", "seed")}
        rows += _rows(info, {k: v for k, v in result.items() if k not in _NOT_MEASURES})
    for label, recipe in report["recipes"].items():
        info = {"scope": "recipe", "model": "", "recipe": label, "loss": recipe["loss"], "arch": recipe["arch"]}
        numbers = {"cross_run": recipe["stability"]} | {k: recipe[k] for k in ("matrix", "k", "n")}
        rows += _rows(info | {"seed": ""}, {"stability": numbers})
    for pair in report["between_recipes"]:
        info = {"scope": "recipe_pair", "model": "", "recipe": "|".join(pair["recipes"]), "loss": "", "arch": ""}
        rows += _rows(info | {"seed": ""}, {"between_recipes": {k: pair[k] for k in ("similarity", "n")}})
    return [protocol | row for row in rows]


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


def report_outputs(out: str | os.PathLike[str]) -> dict[str, Path]:
    """Every path a report on ``out`` writes, by what it is: the JSON, the CSV, the cache folder, the
    lock file and the journal of the final renames."""
    out = Path(out)
    return {
        "JSON": out,
        "CSV": csv_path_for(out),
        "cache folder": out.parent / f"{out.name}.cache",
        "lock file": lock_path(out),
        "journal": journal_path(out),
    }


def _report_inputs(settings: ReportSettings, subjects: Sequence[Subject]) -> list[tuple[str, Path]]:
    """Every file and folder a report reads, with what to call it: the data folder, its CSV (wherever
    it lies), and each model's run folder, or its checkpoint and the models file listing it."""
    data = Path(settings.data)
    inputs = [("the data folder (--data)", data), ("the data CSV (--csv)", resolve_csv(data, settings.csv))]
    for subject in subjects:
        inputs.extend(subject.inputs)
    return inputs


def _same_place(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same resolved path, or (hard links) the same inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _overwrites(output: Path, source: Path) -> bool:
    """Whether writing ``output`` would change ``source``: the same file, ``output`` inside the folder
    ``source``, or (the cache folder) ``source`` inside ``output``."""
    out_real, src_real = output.resolve(), source.resolve()
    return _same_place(output, source) or src_real in out_real.parents or out_real in src_real.parents


def _name_max(folder: Path) -> int:
    """The longest file name ``folder``'s file system allows (255 where it does not say)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


# A temporary file is ``.<name>.<8 hex>.tmp`` (salience_lib.runtime.files); a cache entry
# ``<model>-<16 hex>.json`` and its ``.pt``.
_TEMP_EXTRA = len("..12345678.tmp")
_CACHE_EXTRA = len("-0123456789abcdef.json")


def _check_paths(out: Path, settings: ReportSettings, subjects: Sequence[Subject] = ()) -> None:
    """Bad ``--out`` / ``--data`` before anything is computed.

    ``out`` must name a JSON file; none of the report's outputs (:func:`report_outputs`) may be, or
    lie inside, or contain, one of its inputs (the data folder, the data CSV, a run folder, a
    checkpoint, the models file) — a report never overwrites what it reads; every output's name
    (and its temporary file's) must fit the file system; and ``out``'s folder must be writable.
    """
    if out.suffix.lower() == ".csv" or out.is_dir():
        raise ReportError(f"--out {out}: name the JSON file to write (e.g. report.json); the CSV goes next to it")
    if not Path(settings.data).is_dir():
        raise ReportError(f"--data {settings.data}: data folder not found")
    outputs = report_outputs(out)
    for what, output in outputs.items():
        for read, source in _report_inputs(settings, subjects):
            if _overwrites(output, source):
                raise ReportError(
                    f"--out {out}: the report's {what} {output} would overwrite {read} {source}; "
                    "write the report elsewhere"
                )
    longest = max((len(s.name) for s in subjects), default=0) + _CACHE_EXTRA
    for what, output in outputs.items():
        length = len(output.name) + _TEMP_EXTRA if what != "cache folder" else longest + _TEMP_EXTRA
        if length > _name_max(output.parent):
            raise ReportError(
                f"--out {out}: the name is too long for the file system (its {what}'s temporary file would "
                f"need {length} characters, at most {_name_max(output.parent)}); choose a shorter name"
            )
    cache = outputs["cache folder"]
    try:
        for folder in (out.parent, cache):
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):  # anonymous: nothing is left, even after a kill
                pass
    except OSError as err:
        raise ReportError(f"--out {out}: cannot write there ({err.strerror or err}: {err.filename or folder})") from err


def _clean_outputs(out: Path) -> None:
    """Complete a final write a killed report left half done, and remove the temp files it left."""
    finish_together(out)
    for name in (out.name, csv_path_for(out).name, f"{out.name}.commit"):
        remove_stale_temp_files(out.parent, name)
    remove_stale_temp_files(out.parent / f"{out.name}.cache")


def _out_lock(out: Path) -> Any:
    """The lock on ``--out`` on rank 0 (the writer); nothing on the other ranks."""
    if int(os.environ.get("RANK", "0")) != 0:
        return nullcontext()
    return hold_lock(out, "--out")


def run_report(
    runs: Sequence[str | os.PathLike[str] | Subject],
    out: str | os.PathLike[str],
    settings: ReportSettings,
    *,
    on_model_done: ModelCallback | None = None,
) -> dict[str, Any] | None:
    """Measure every run, write ``out`` (JSON) and its CSV; returns the report (None on ranks > 0).

    Under ``torchrun`` every process measures its shard and rank 0 writes; see the module docstring.

    Args:
        runs: run folders (see :func:`resolve_runs`), or subjects (e.g. of a models file,
            :func:`salience_lib.engine.subjects.subjects_from_models_file`).
        out: the JSON file; the CSV is :func:`csv_path_for` ``(out)``, the cache ``<out>.cache/``.
        settings: what to measure and how.
        on_model_done: called on rank 0 as ``f(run name, result)`` after a newly measured model's
            result is cached (an exception there stops the report; a later call resumes after it).

    Raises:
        ReportError: bad input (the message names the path, argument or model).
    """
    out = Path(out)
    _check_paths(out, settings)
    try:
        subjects = [r for r in runs if isinstance(r, Subject)] or subjects_from([Path(r) for r in runs])
    except (FileNotFoundError, ValueError) as err:
        raise ReportError(str(err)) from err
    _check_paths(out, settings, subjects)  # now with every model's files
    with ExitStack() as stack:
        try:
            stack.enter_context(_out_lock(out))
        except LockError as err:
            raise ReportError(str(err)) from err
        except OSError as err:
            raise ReportError(f"--out {out}: cannot write there ({err.strerror or err}: {err.filename})") from err
        if int(os.environ.get("RANK", "0")) == 0:
            _clean_outputs(out)
        return _run_locked(subjects, out, settings, on_model_done)


def _run_locked(
    subjects: list[Subject], out: Path, settings: ReportSettings, on_model_done: ModelCallback | None
) -> dict[str, Any] | None:
    """The body of :func:`run_report`, run while holding the lock on ``out``."""
    context = dist_utils.setup(settings.device)
    try:
        plan = dist_utils.broadcast_object(context, _plan(subjects, settings, out) if context.is_main else None)
        start = time.perf_counter()
        try:
            source = open_source(settings.data, settings, plan.image_size)
        except SettingsError as err:
            raise ReportError(str(err)) from err
        except (FileNotFoundError, ValueError) as err:
            raise ReportError(f"--data {settings.data}: {err}") from err
        engine = Engine(source, settings, context, data=settings.data)
        measured = {}
        for subject in subjects:
            if subject.name in plan.cached:
                loaded = _load_measured(engine, plan, subject.name)
                if loaded is not None:
                    measured[subject.name] = loaded
                    continue
                plan.cached.remove(subject.name)
            try:
                measured[subject.name] = engine.measure(subject)
            except ValueError as err:  # bad input met while measuring; the message names the model
                raise ReportError(str(err)) from err
            _save_measured(engine, plan, subject.name, measured[subject.name])
            if on_model_done is not None and context.is_main:
                on_model_done(subject.name, measured[subject.name].result)
        if "stability" in plan.cached:
            cross = _read_cache(plan.files["stability"], plan.keys["stability"]) if context.is_main else None
        else:
            cross = engine.cross_model(subjects, measured)
            if context.is_main:
                payload = {"key": plan.keys["stability"], "settings_hash": plan.settings_hash, "result": cross}
                write_atomic(plan.files["stability"], json_dumps(payload))
        if not context.is_main:
            return None
        described = asdict(settings) | {"image_size": plan.image_size, "measured": settings.measured()}
        results = {name: m.result for name, m in measured.items()}
        report = assemble(described, context, source.summary(), results, cross, time.perf_counter() - start)
        computed = [n for n in (*measured, "stability") if n not in plan.cached]
        report |= {"settings_hash": plan.settings_hash, "cache": {"reused": plan.cached, "computed": computed}}
        table = _csv_text(flatten_report(report))
        report["csv_sha256"] = hashlib.sha256(table.encode()).hexdigest()  # the pair is checkable
        write_together([(csv_path_for(out), table), (out, json_dumps(report))])
        return report
    finally:
        dist_utils.teardown(context)


def main_report(args: Any) -> dict[str, Any] | None:
    """``python -m salience_lib report``: parsed arguments → :func:`run_report`; prints the output paths."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise ReportError(f"--threads must be >= 1, got {threads}")
    try:
        resolve_device(getattr(args, "device", "auto"))
    except ValueError as err:
        raise ReportError(f"--device {args.device}: {err}") from err
    if threads is not None:
        torch.set_num_threads(threads)
    names = [f.name for f in fields(ReportSettings) if f.name not in ("data", "in_set_groups", "progress", "measures")]
    settings = ReportSettings(
        data=args.data,
        in_set_groups=tuple(args.in_set_groups),
        progress=not args.no_progress,
        **({"measures": tuple(args.measures)} if getattr(args, "measures", None) else {}),
        **{name: getattr(args, name) for name in names if hasattr(args, name)},
    )
    _check_paths(Path(args.out), settings)
    if getattr(args, "models", None):
        if args.runs or args.run:
            raise ReportError("give the checkpoints once: --models FILE, or --runs RUNS / --run DIR")
        try:
            models: Sequence[Any] = subjects_from_models_file(args.models)
        except (FileNotFoundError, ValueError) as err:
            raise ReportError(f"--models {args.models}: {err}") from err
    else:
        models = resolve_runs(args.runs, args.run or ())
    report = run_report(models, args.out, settings)
    if report is not None:
        print(f"wrote {args.out} and {csv_path_for(args.out)}: {len(report['models'])} models, {report['seconds']} s")
    return report
