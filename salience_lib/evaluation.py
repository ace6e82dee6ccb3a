"""XENT vs CYBORG on the synthetic-face benchmark: accuracy and ground-truth salience checks.

The five measures (:mod:`salience_lib.report`) need no ground truth. The generated data set has
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

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from salience_lib.data import CsvImageDataset
from salience_lib.inference import class_probabilities
from salience_lib.maps import resize_maps
from salience_lib.measures.entropy import salience_entropy
from salience_lib.measures.stability import agreement_with_reference, pairwise_similarity
from salience_lib.salience import GradCAM
from salience_lib.similarity import pearson, ssim
from salience_lib.stats import mann_whitney, roc_auc, summarise

__all__ = [
    "EvaluationData",
    "evaluate_model",
    "evaluate_runs",
    "load_split",
    "mask_mass",
    "pointing_game",
    "stability_per_model",
    "summarise_recipes",
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


def mask_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's salience mass inside its mask, maps upsampled to the mask size, ``(B,)``.

    An all-zero map scores 0 (it points at nothing).
    """
    up = resize_maps(maps, tuple(masks.shape[-2:])).clamp_min(0)
    total = up.flatten(1).sum(1)
    inside = (up * masks).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance_at_224: float = 15.0) -> torch.Tensor:
    """1 where the maximum of the (upsampled) map lies within the tolerance of the mask, ``(B,)``.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop" (ECCV 2016): a hit when the
    maximum is within 15 px of the object at 224 px; the tolerance scales with the image side.
    """
    size = tuple(masks.shape[-2:])
    up = resize_maps(maps, size)
    radius = round(tolerance_at_224 * size[0] / 224)
    grown = F.max_pool2d(masks[:, None], 2 * radius + 1, stride=1, padding=radius)[:, 0] if radius else masks
    peak = up.flatten(1).argmax(1)
    return grown.flatten(1).gather(1, peak[:, None])[:, 0]


def _balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    recalls = [(predicted[labels == c] == c).float().mean() for c in (0, 1) if bool((labels == c).any())]
    return float(torch.stack(recalls).mean())


def _auc_if_possible(positives: torch.Tensor, negatives: torch.Tensor) -> float | None:
    """ROC AUC, or None (recorded as null) when a tiny data set has no image on one side."""
    return roc_auc(positives, negatives) if len(positives) and len(negatives) else None


def _detection_metrics(p_synthetic: torch.Tensor, data: EvaluationData) -> dict[str, float | None]:
    predicted = (p_synthetic > 0.5).long()
    out = {"accuracy": float((predicted == data.labels).float().mean())}
    if data.groups is None or data.shortcut is None:
        return out
    real = data.group("real")
    cue = data.shortcut
    for name in ("seen", "unseen"):
        fake = data.group(name)
        out[f"auc_{name}"] = _auc_if_possible(p_synthetic[fake], p_synthetic[real])
        out[f"auc_{name}_cue_free"] = _auc_if_possible(p_synthetic[fake & ~cue], p_synthetic[real & ~cue])
        keep = fake | real
        out[f"balanced_accuracy_{name}"] = _balanced_accuracy(predicted[keep], data.labels[keep])
    conflict = (data.group("seen", "unseen") & ~cue) | (real & cue)
    out["balanced_accuracy_cue_conflict"] = _balanced_accuracy(predicted[conflict], data.labels[conflict])
    for name in ("seen", "unseen"):
        chosen = (data.group(name) & ~cue) | (real & cue)
        out[f"balanced_accuracy_cue_conflict_{name}"] = _balanced_accuracy(predicted[chosen], data.labels[chosen])
    return out


def _maps(explainer: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([explainer(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate_model(
    model: nn.Module,
    test: EvaluationData,
    val: EvaluationData | None = None,
    batch_size: int = 256,
) -> tuple[dict[str, float | None], torch.Tensor]:
    """Metrics of one model; also returns its test maps ``(N, h, w)`` for the stability step."""
    probabilities = torch.cat(
        [class_probabilities(model, test.images[i : i + batch_size]) for i in range(0, len(test.images), batch_size)]
    )
    metrics = _detection_metrics(probabilities[:, 1], test)
    with GradCAM(model) as cam:
        maps = _maps(cam, test.images, batch_size)
        metrics["entropy_spatial"] = float(salience_entropy(maps, "spatial").mean())
        metrics["entropy_histogram"] = float(salience_entropy(maps, "histogram").mean())
        if test.masks is not None and test.groups is not None:
            for name in ("seen", "unseen"):
                chosen = test.group(name)
                metrics[f"mask_mass_{name}"] = float(mask_mass(maps[chosen], test.masks[chosen]).mean())
                metrics[f"pointing_game_{name}"] = float(pointing_game(maps[chosen], test.masks[chosen]).mean())
        if val is not None and val.annotations is not None:
            val_maps = _maps(cam, val.images, batch_size)
            reference = resize_maps(val.annotations, tuple(val_maps.shape[-2:]), mode="area")
            metrics["annotation_pearson"] = float(pearson(val_maps, reference).mean())
            if min(val_maps.shape[-2:]) >= 7:
                metrics["annotation_ssim"] = float(agreement_with_reference(val_maps, reference).mean())
    return metrics, maps


def stability_per_model(maps: torch.Tensor, upsample_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For ``(K, N, h, w)`` maps of one recipe: each model's mean SSIM to the other K−1, and the K×K matrix.

    Returns ``(per_model (K,), matrix (K, K))`` averaged over the N images.
    """
    if upsample_to is not None:
        k, n = maps.shape[:2]
        maps = resize_maps(maps.flatten(0, 1), upsample_to).view(k, n, upsample_to, upsample_to)
    matrix = pairwise_similarity(maps, ssim).mean(-1)
    k = matrix.shape[0]
    off = matrix * (1 - torch.eye(k, dtype=matrix.dtype))
    return off.sum(1) / (k - 1), matrix


def evaluate_runs(
    data_root: str | os.PathLike[str],
    runs: Sequence[Path],
    load: Callable[[Path], tuple[nn.Module, dict]],
    batch_size: int = 256,
    upsample_to: int = 32,
) -> dict:
    """Evaluate every run; returns ``{"models": ..., "recipes": ..., "between_recipes": ..., "settings": ...}``."""
    test = load_split(data_root, "test")
    try:
        val = load_split(data_root, "val", annotations=True)
    except (FileNotFoundError, ValueError):
        val = None
    models: dict[str, dict] = {}
    maps_by_recipe: dict[str, list[torch.Tensor]] = {}
    names_by_recipe: dict[str, list[str]] = {}
    for run in tqdm(list(runs), desc="evaluate", unit="model"):
        model, sidecar = load(run)
        metrics, maps = evaluate_model(model, test, val, batch_size)
        recipe = sidecar["loss"]
        models[run.name] = {"loss": recipe, "seed": sidecar["seed"], "arch": sidecar["arch"], **metrics}
        maps_by_recipe.setdefault(recipe, []).append(maps)
        names_by_recipe.setdefault(recipe, []).append(run.name)
    matrices = {}
    for recipe, maps_list in maps_by_recipe.items():
        if len(maps_list) < 2:
            continue
        stacked = torch.stack(maps_list)
        for key, size in (("stability_ssim_native", None), (f"stability_ssim_{upsample_to}px", upsample_to)):
            per_model, matrix = stability_per_model(stacked, size)
            for name, value in zip(names_by_recipe[recipe], per_model.tolist(), strict=True):
                models[name][key] = value
            matrices[f"{recipe}/{key}"] = matrix.tolist()
    between = {}
    recipes = sorted(maps_by_recipe)
    for i, a in enumerate(recipes):
        for b in recipes[i + 1 :]:
            sims = [float(ssim(x, y).mean()) for x in maps_by_recipe[a] for y in maps_by_recipe[b]]
            between[f"{a}_vs_{b}"] = summarise(sims).as_dict()
    return {
        "settings": {
            "data": str(data_root),
            "salience": "GradCAM, predicted class, automatic target layer",
            "similarity": "SSIM (7×7 window) at native map resolution unless named otherwise",
            "upsample_to": upsample_to,
            "pointing_game_tolerance_px_at_224": 15,
        },
        "models": models,
        "recipes": summarise_recipes(models),
        "between_recipes_ssim_native": between,
        "stability_matrices": matrices,
    }


def summarise_recipes(models: dict[str, dict], a: str = "xent", b: str = "cyborg") -> dict:
    """Per metric: per-recipe values, mean and 95% bootstrap CI over seeds, and Mann–Whitney of a vs b."""
    metrics = sorted({k for m in models.values() for k, v in m.items() if isinstance(v, float)})
    out: dict[str, dict] = {}
    for metric in metrics:
        entry: dict[str, object] = {}
        values = {}
        for recipe in sorted({m["loss"] for m in models.values()}):
            vals = [m[metric] for m in models.values() if m["loss"] == recipe and metric in m]
            if vals:
                values[recipe] = vals
                entry[recipe] = {"values": vals, **summarise(vals).as_dict()}
        if a in values and b in values and len(values[a]) > 1 and len(values[b]) > 1:
            entry["mann_whitney"] = mann_whitney(values[a], values[b])
        out[metric] = entry
    return out


def write_json(payload: dict, path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` as JSON atomically (temp file in the same folder, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def main_evaluate(args: object) -> Path:
    """CLI entry: ``python -m salience_lib evaluate --data DIR --runs RUNS --out FILE``."""
    from salience_lib.models.runs import find_runs, load_model

    torch.set_num_threads(max(1, int(getattr(args, "threads", 1))))
    runs = find_runs(args.runs, data=args.data)
    if not runs:
        raise FileNotFoundError(f"no complete runs (model.pt + model.json) trained on {args.data} under {args.runs}")
    result = evaluate_runs(args.data, runs, load_model, batch_size=args.batch_size)
    return write_json(result, args.out)


def comparison_table(summary: dict, metrics: Sequence[str] | None = None, recipes: Sequence[str] = ("xent", "cyborg")):
    """A pandas table of :func:`summarise_recipes` output: per metric, ``mean [CI]`` per recipe and p.

    Columns: ``<recipe> mean``, ``<recipe> 95% CI`` for each recipe, ``Mann–Whitney p``.
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
