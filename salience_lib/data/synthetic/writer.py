"""Writing a data set to disk: images, heatmaps and masks as PNG, the CSVs and ``info.json``, atomically."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from salience_lib.data.layout import CSV_NAME, METADATA_NAME, NONFACE_NAME
from salience_lib.data.synthetic.artifacts import shortcut_box
from salience_lib.data.synthetic.config import (
    GENERATOR_VERSION,
    INFO_NAME,
    METADATA_FIELDS,
    Array,
    GeneratorConfig,
    SampleSpec,
)
from salience_lib.data.synthetic.plan import plan_dataset
from salience_lib.data.synthetic.render import render_sample
from salience_lib.runtime.files import write_atomic

__all__ = ["generate_dataset", "main_make_data"]


def _save_png(array: Array, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _write_chunk(specs: Sequence[SampleSpec], root: str, seed: int, size: int, config: GeneratorConfig) -> int:
    base = Path(root)
    for spec in specs:
        sample = render_sample(spec, seed, size, config)
        _save_png(sample.image, base / spec.path)
        if sample.heatmap is not None:
            _save_png(sample.heatmap, base / "heatmaps" / spec.name)
        if sample.mask is not None:
            _save_png(sample.mask.astype(np.uint8) * 255, base / "masks" / spec.name)
    return len(specs)


def _write_all(
    plan: Sequence[SampleSpec], root: Path, seed: int, size: int, config: GeneratorConfig, workers: int, progress: bool
) -> None:
    bar = tqdm(total=len(plan), desc="make-data", unit="img", disable=not progress)
    try:
        if workers <= 1:
            for start in range(0, len(plan), 32):
                bar.update(_write_chunk(plan[start : start + 32], str(root), seed, size, config))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunks = [plan[start : start + 64] for start in range(0, len(plan), 64)]
            futures = [pool.submit(_write_chunk, chunk, str(root), seed, size, config) for chunk in chunks]
            for future in futures:
                bar.update(future.result())
    finally:
        bar.close()


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _metadata_row(spec: SampleSpec, config: GeneratorConfig) -> list[object]:
    group = "real" if spec.label == "Real" else "seen" if spec.family in config.seen_families else "unseen"
    mask, heatmap = (
        (f"masks/{spec.name}" if spec.has_mask else ""),
        (f"heatmaps/{spec.name}" if spec.has_heatmap else ""),
    )
    return [spec.index, spec.path, spec.split, spec.label, spec.family, group, int(spec.shortcut), mask, heatmap]


def _info(plan: Sequence[SampleSpec], n: int, seed: int, size: int, config: GeneratorConfig) -> dict:
    counts: dict[str, dict] = {}
    for spec in plan:
        split = counts.setdefault(spec.split, {"total": 0, "shortcut": 0, "labels": {}, "families": {}})
        split["total"] += 1
        split["shortcut"] += int(spec.shortcut)
        if spec.label:
            split["labels"][spec.label] = split["labels"].get(spec.label, 0) + 1
        split["families"][spec.family] = split["families"].get(spec.family, 0) + 1
    return {
        "generator": "salience_lib.synthetic",
        "version": GENERATOR_VERSION,
        "n": n,
        "seed": seed,
        "size": size,
        "config": asdict(config),
        "seen_families": list(config.seen_families),
        "unseen_families": list(config.unseen_families),
        "counts": counts,
        "shortcut_box": list(shortcut_box(size, config)),
        "files": {
            "csv": CSV_NAME,
            "metadata": METADATA_NAME,
            "nonface": NONFACE_NAME,
            "heatmaps": "heatmaps/<image file name>",
            "masks": "masks/<image file name>",
        },
    }


def _write_tables(
    plan: Sequence[SampleSpec], root: Path, n: int, seed: int, size: int, config: GeneratorConfig
) -> None:
    faces = [s for s in plan if s.split != "nonface"]
    write_atomic(root / CSV_NAME, _csv_text([(s.split, s.label, s.path) for s in faces]))
    write_atomic(root / METADATA_NAME, _csv_text([METADATA_FIELDS] + [_metadata_row(s, config) for s in faces]))
    nonface = [(s.index, s.path, s.family) for s in plan if s.split == "nonface"]
    write_atomic(root / NONFACE_NAME, _csv_text([("index", "path", "kind"), *nonface]))
    write_atomic(root / INFO_NAME, json.dumps(_info(plan, n, seed, size, config), indent=2) + "\n")


def generate_dataset(
    out: str | os.PathLike[str],
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    config: GeneratorConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a complete data set with ``n`` training images to ``out`` (layout: :mod:`salience_lib.data.synthetic`).

    Everything is written into a hidden sibling folder that is renamed to ``out`` only when complete,
    so a folder named ``out`` is never half-written. Same ``seed`` -> byte-identical files, whatever
    ``workers`` is.

    Raises:
        ValueError: bad ``n``, ``size``, ``seed`` or ``workers``.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    config = config or GeneratorConfig()
    if size < 16 or seed < 0 or workers < 1:
        raise ValueError(
            f"need size >= 16, seed >= 0 and workers >= 1, got size={size}, seed={seed}, workers={workers}"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    plan = plan_dataset(n, seed, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        _write_all(plan, tmp, seed, size, config, workers, progress)
        _write_tables(plan, tmp, n, seed, size, config)
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_dir(new: Path, out: Path, overwrite: bool) -> None:
    if not out.exists():
        os.replace(new, out)
        return
    if not overwrite:  # another process finished the same folder meanwhile
        raise FileExistsError(f"{out} appeared while it was being generated; not replacing it")
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def main_make_data(args: argparse.Namespace) -> Path:
    """Entry point of ``python -m salience_lib make-data`` (see :mod:`salience_lib.cli`).

    Optional attributes of ``args`` (None or absent = the :class:`GeneratorConfig` default):
    ``checker_amplitude``, ``shortcut_amplitude``, ``artifact_strength``; also ``workers``,
    ``overwrite`` and ``quiet``.
    """
    names = ("checker_amplitude", "shortcut_amplitude", "artifact_strength")
    config = GeneratorConfig(**{k: getattr(args, k) for k in names if getattr(args, k, None) is not None})
    options = {"workers": getattr(args, "workers", 1), "overwrite": getattr(args, "overwrite", False)}
    progress = not getattr(args, "quiet", False)
    out = generate_dataset(
        args.out, args.n, size=args.size, seed=args.seed, config=config, progress=progress, **options
    )
    info = json.loads((out / INFO_NAME).read_text(encoding="utf-8"))
    totals = {split: counts["total"] for split, counts in info["counts"].items()}
    print(f"wrote {out}: {totals}")
    return out
