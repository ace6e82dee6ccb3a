"""XENT vs CYBORG on the synthetic-face benchmark: per-model numbers for the book, from the engine.

Nothing is computed here: every number comes from :func:`salience_lib.evaluate` (the one engine)
and the measure functions; this module flattens them per model and summarises them per recipe.
The five measures need no ground truth. The generated data set has
some — exact artifact masks, generator families never seen in training, and a shortcut cue whose
correlation with the label is broken in the test split — so this module also asks whether salience
lands on the artifacts and whether the models generalise:

* accuracy and ROC AUC on seen and unseen generator families, on cue-free images, and balanced
  accuracy on *cue-conflict* images (synthetic without the cue, real with it);
* salience entropy (both kinds), the share of salience mass inside the artifact mask and the
  pointing game (Zhang et al., ECCV 2016: the map's maximum falls inside the mask, with a tolerance
  of 15 px at 224 px), agreement with the human annotation maps of the validation split;
* per recipe, cross-run stability (each model's mean SSIM to the other seeds of its recipe) and the
  between-recipe baseline.

:func:`summarise_recipes` gives per-recipe means with 95% bootstrap CIs over seeds and a two-sided
Mann–Whitney test of XENT vs CYBORG for every metric.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from salience_lib.data import CsvImageDataset
from salience_lib.engine import evaluate as engine_evaluate
from salience_lib.measures.ground_truth import mask_mass, pointing_game
from salience_lib.measures.stability import stability_per_run
from salience_lib.models.runs import find_runs
from salience_lib.runtime.files import json_dumps, json_safe, write_atomic
from salience_lib.stats import summarise_recipes

__all__ = [
    "EvaluationData",
    "evaluate_runs",
    "load_split",
    "mask_mass",
    "pointing_game",
    "write_json",
]


class EvaluationData:
    """One split held in memory (the quick profile's test set is ~1,200 images of 64 px).

    Attributes:
        images: ``(N, 3, H, W)``; labels ``(N,)``; ``annotations`` ``(N, H, W)`` or None;
        masks ``(N, H, W)`` (zeros for real images) or None; ``groups`` (``real``/``seen``/``unseen``)
        and ``shortcut`` ``(N,)`` bool from the metadata, or None for a data set without it.
    """

    def __init__(self, dataset: CsvImageDataset, batch_size: int = 256) -> None:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
        parts = list(zip(*loader, strict=True))
        self.images = torch.cat(parts[0])
        self.labels = torch.cat(parts[1])
        self.annotations = torch.cat(parts[2]) if dataset.annotations else None
        meta = dataset.metadata
        self.groups = [row.get("group", "") for row in meta] if meta else None
        self.shortcut = torch.tensor([row.get("shortcut") == "1" for row in meta]) if meta else None
        has_masks = meta is not None and "mask_path" in meta[0]
        self.masks = torch.stack([dataset.mask(i) for i in range(len(dataset))]) if has_masks else None

    def group(self, *names: str) -> torch.Tensor:
        """Boolean ``(N,)`` selecting the images of the given groups."""
        if self.groups is None:
            raise ValueError("this data set has no metadata with generator groups")
        return torch.tensor([g in names for g in self.groups])


def load_split(root: str | os.PathLike[str], split: str, annotations: bool = False) -> EvaluationData:
    """Load one split of a CYBORG-layout data set into memory (with masks and metadata if present)."""
    return EvaluationData(CsvImageDataset(root, split, annotations=annotations))


def _flat_metrics(model: dict, detection: dict) -> dict[str, float | None]:
    """One model's engine result as flat per-model numbers (means over images)."""
    out: dict[str, float | None] = {"accuracy": model["accuracy"]["mean"]}
    out |= {k: v for k, v in detection.items() if k != "n" and not isinstance(v, dict)}  # auc_by_group: per family
    for kind in ("spatial", "histogram"):
        out[f"entropy_{kind}"] = model["entropy"][kind]["entropy"]["mean"]
    for group, values in (model["ground_truth"]["localisation"] or {}).items():
        if group in ("seen", "unseen"):
            out[f"mask_mass_{group}"] = values["mask_mass"]["mean"]
            out[f"pointing_game_{group}"] = values["pointing_game"]["mean"]
    return out


def _stability_per_model(result: dict, models: dict[str, dict], key: str) -> dict[str, list[list[float]]]:
    """Each model's mean similarity to the other runs of its recipe: the row means of the engine's K×K matrix."""
    matrices = {}
    for recipe in result["recipes"].values():
        if recipe["matrix"] is None:
            continue
        per_model = stability_per_run(recipe["matrix"])
        for name, value in zip(recipe["runs"], per_model.tolist(), strict=True):
            models[name][key] = value
        matrices[f"{recipe['loss']}/{key}"] = recipe["matrix"]
    return matrices


def evaluate_runs(
    data_root: str | os.PathLike[str],
    runs: Sequence[Path],
    load: object = None,
    batch_size: int = 256,
    upsample_to: int = 32,
) -> dict:
    """Accuracy, ground-truth checks, entropy and stability of every run, per model and per recipe.

    Every number comes from the measurement engine (:func:`salience_lib.evaluate`, clean passes only):
    the test split at the native map size and upsampled to ``upsample_to`` px (stability), and the
    validation split, whose human annotations give ``annotation_ssim`` and ``annotation_pearson``.
    Per model, ``stability_ssim_<size>`` is its mean similarity to the other runs of its recipe (the
    row mean of the engine's K×K matrix). ``load`` is ignored (kept for old callers): runs are
    loaded by the engine.

    Returns:
        ``{"models": {run: {metric: value}}, "recipes": summarise_recipes(...), "between_recipes_ssim_native",
        "stability_matrices", "settings"}``.
    """
    common = {"batch_size": batch_size, "device": "cpu", "progress": False, "measures": ("stability",)}
    native = engine_evaluate(list(runs), data_root, split="test", **common)
    upsampled = engine_evaluate(list(runs), data_root, split="test", map_size=upsample_to, **common)
    models: dict[str, dict] = {}
    for name, model in native["models"].items():
        flat = _flat_metrics(model, model["ground_truth"]["detection"])
        models[name] = {"loss": model["loss"], "seed": model["seed"], "arch": model["arch"], **flat}
    matrices = _stability_per_model(native, models, "stability_ssim_native")
    matrices |= _stability_per_model(upsampled, models, f"stability_ssim_{upsample_to}px")
    try:
        for similarity, key in (("ssim", "annotation_ssim"), ("pearson", "annotation_pearson")):
            val = engine_evaluate(list(runs), data_root, split="val", similarity=similarity, **common)
            for name, model in val["models"].items():
                if model["annotation_agreement"] is not None:
                    models[name][key] = model["annotation_agreement"]["mean"]
    except (FileNotFoundError, ValueError):
        pass  # no validation split with annotations (or maps below SSIM's window): no annotation numbers
    label = {r: info["loss"] for r, info in native["recipes"].items()}
    between = {
        f"{label[a]}_vs_{label[b]}": pair["similarity"]
        for pair in native["between_recipes"]
        for a, b in [pair["recipes"]]
        if pair["similarity"] is not None
    }
    return {
        "settings": {
            "data": str(data_root),
            "salience": "GradCAM, predicted class, automatic target layer (salience_lib.evaluate)",
            "similarity": "SSIM (7×7 window) at native map resolution unless named otherwise",
            "upsample_to": upsample_to,
            "pointing_game_tolerance_px_at_224": 15,
        },
        "models": models,
        "recipes": summarise_recipes(models),
        "between_recipes_ssim_native": between,
        "stability_matrices": matrices,
    }


def write_json(payload: dict, path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` as JSON atomically (:func:`salience_lib.runtime.files.write_atomic`)."""
    return write_atomic(path, json_dumps(json_safe(payload)))


def main_evaluate(args: object) -> Path:
    """CLI entry: ``python -m salience_lib evaluate --data DIR --runs RUNS --out FILE``."""
    torch.set_num_threads(max(1, int(getattr(args, "threads", 1))))
    runs = find_runs(args.runs, data=args.data)
    if not runs:
        raise FileNotFoundError(f"no complete runs (model.pt + model.json) trained on {args.data} under {args.runs}")
    result = evaluate_runs(args.data, runs, batch_size=args.batch_size)
    return write_json(result, args.out)
