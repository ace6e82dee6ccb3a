"""The images the engine measures: a CYBORG-layout folder or any torch Dataset, sharded into batches.

A folder gives its split (:class:`~salience_lib.data.CsvImageDataset`; its CSV is ``dataset.csv``
or ``settings.csv``, absolute or relative to the folder, e.g. CYBORG's ``csvs/test.csv``), the
distribution-shift groups (:func:`_groups`), artifact masks and shortcut flags where the metadata
has them, the human annotations that exist (``heatmaps/<file name>``; when only some images have
one, annotation agreement is measured over those, their count is ``annotated_images`` and a warning
names the first missing file), and the non-face set (``nonface.csv``), which only distribution
shift uses. A Dataset yields ``(image, label)`` or ``(image, label, annotation)``.

Groups and the in-set reference (``in_set_groups``) of distribution shift:

* ``metadata.csv`` with a ``group`` column (the generator's ``real``/``seen``/``unseen``): those
  groups; the in-set images are those of the ``in_set_groups`` that exist (none: an error).
* ``metadata.csv`` with only a ``family`` column: one group per family, every image in-set.
* no such metadata, but image folders named ``<family>_aligned`` (CYBORG's
  ``/test/1_fake/stylegan1-0.5_aligned/000000/x.png``): one group per family, named without
  ``_aligned`` (``stylegan1-0.5``; the deepest such folder counts); Real images without such a folder
  are group ``real``, Synthetic ones ``synthetic``. The in-set images are those of the
  ``in_set_groups`` that exist; when none exists and ``in_set_groups`` is the default, the groups of
  the Real images (the model's familiar class); a group holding both labels is an error.
* otherwise one group ``all``, every image in-set.

Batches are whole batches of the first ``n`` images, split between ``torch.distributed`` ranks by
:func:`~salience_lib.runtime.distributed.shard_batches`; every image carries its global index (the
key of the per-image random draws), so a sharded run measures exactly what one process does.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from salience_lib.data import CSV_NAME, LABELS, METADATA_NAME, NONFACE_NAME, CsvImageDataset, NonFaceDataset
from salience_lib.data.layout import resolve_csv
from salience_lib.engine.settings import EngineSettings, SettingsError
from salience_lib.runtime import distributed as dist_utils

__all__ = ["Batch", "Source", "open_source"]

NONFACE_GROUP = "nonface"
ALIGNED_SUFFIX = "_aligned"
_DEFAULT_IN_SET = next(f.default for f in fields(EngineSettings) if f.name == "in_set_groups")


@dataclass
class Batch:
    """One batch on the device; ``label`` is -1 and ``group`` the non-face id for non-face images.

    ``annotated`` marks the images whose ``annotation`` is a real map (the others hold NaN).
    """

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    group: torch.Tensor
    in_set: torch.Tensor
    shortcut: torch.Tensor
    annotation: torch.Tensor | None
    mask: torch.Tensor | None
    nonface: bool
    annotated: torch.Tensor | None = None

    @classmethod
    def of(cls, item: dict[str, torch.Tensor], device: torch.device, nonface: bool) -> Batch:
        """Move a collated item dict to ``device``."""
        moved = {k: v.to(device, non_blocking=True) for k, v in item.items()}
        names = ("image", "label", "index", "group", "in_set", "shortcut")
        annotation = moved.get("annotation")
        annotated = moved.get("annotated")
        if annotation is not None and annotated is None:
            annotated = torch.ones(annotation.shape[0], dtype=torch.bool, device=annotation.device)
        return cls(*(moved[k] for k in names), annotation, moved.get("mask"), nonface, annotated)


class _Items(Dataset):
    """Dict items of ``base`` at ``indices``: image, label, global index, per-image columns, annotation, mask."""

    def __init__(
        self,
        base: Dataset,
        indices: range,
        columns: dict[str, torch.Tensor],
        offset: int = 0,
        masks: CsvImageDataset | None = None,
        annotations: bool = True,
    ) -> None:
        self.base, self.indices, self.columns, self.offset, self.masks = base, indices, columns, offset, masks
        self.annotations = annotations

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = self.indices[i]
        raw = self.base[j]
        image, *rest = raw if isinstance(raw, tuple | list) else (raw,)
        item = {"image": image, "index": self.offset + j} | {name: col[j] for name, col in self.columns.items()}
        if rest:
            item["label"] = int(rest[0])
        if len(rest) > 1 and self.annotations:
            item["annotation"] = rest[1]
        if self.masks is not None:
            item["mask"] = self.masks.mask(j)
        return item


@dataclass
class Source:
    """The chosen images and what is known about them.

    Attributes:
        dataset: yields ``(image, label[, annotation])``; its first ``n`` items are measured.
        groups: names of the group ids (``group_ids`` per image); ``in_set``: the images whose mean
            map is distribution shift's reference; ``shortcut``: 1/0 per image, -1 unknown.
        annotations, masks: whether items carry human annotations / whether artifact masks exist.
        nonface: the non-face set (``n_nonface`` of its images are used), or None.
        description: what a report says about the data (root, CSV, ``annotated_images``, ``groups_from``, ...).
        annotated: bool ``(n,)``: which images have an annotation (None: all of them, or none).
    """

    dataset: Dataset
    n: int
    groups: list[str]
    group_ids: torch.Tensor
    in_set: torch.Tensor
    shortcut: torch.Tensor
    annotations: bool
    masks: bool
    nonface: NonFaceDataset | None
    n_nonface: int
    description: dict[str, Any]
    annotated: torch.Tensor | None = None

    @property
    def shift_groups(self) -> list[str] | None:
        """Groups compared by distribution shift (None: one group and no non-face set — nothing to compare)."""
        if len(self.groups) < 2 and not self.n_nonface:
            return None
        return self.groups + ([NONFACE_GROUP] if self.n_nonface else [])

    def in_set_groups(self) -> list[str]:
        """The groups whose images make the in-set mean map."""
        return [self.groups[g] for g in self.group_ids[self.in_set].unique().tolist()]

    def summary(self) -> dict[str, Any]:
        """What a report says about the data."""
        counts = torch.bincount(self.group_ids, minlength=len(self.groups)).tolist()
        groups = dict(zip(self.groups, counts, strict=True))
        if self.n_nonface:
            groups[NONFACE_GROUP] = self.n_nonface
        return self.description | {
            "n_images": self.n,
            "annotations": self.annotations,
            "masks": self.masks,
            "groups": groups,
            "in_set_groups": self.in_set_groups(),
        }

    def batches(
        self, context: dist_utils.Context, batch_size: int, num_workers: int = 0, nonface: bool = True
    ) -> Iterator[Batch]:
        """This rank's batches of the chosen images, then (``nonface``) of the non-face images."""
        for loader, is_nonface in self._loaders(context, batch_size, num_workers, nonface):
            for item in loader:
                yield Batch.of(item, context.device, is_nonface)

    def n_batches(self, context: dist_utils.Context, batch_size: int, nonface: bool = True) -> int:
        """How many batches :meth:`batches` yields on this rank."""
        sizes = [self.n] + ([self.n_nonface] if nonface and self.n_nonface else [])
        shards = [dist_utils.shard_batches(n, batch_size, context.rank, context.world_size) for n in sizes]
        return sum(-(-len(shard) // batch_size) for shard in shards)

    def _loaders(
        self, context: dist_utils.Context, batch_size: int, num_workers: int, nonface: bool
    ) -> list[tuple[DataLoader, bool]]:
        common = {"batch_size": batch_size, "shuffle": False, "num_workers": num_workers,
                  "persistent_workers": num_workers > 0, "pin_memory": context.device.type == "cuda"}
        shard = dist_utils.shard_batches(self.n, batch_size, context.rank, context.world_size)
        columns = {"group": self.group_ids, "in_set": self.in_set, "shortcut": self.shortcut}
        if self.annotations and self.annotated is not None:
            columns["annotated"] = self.annotated
        masks = self.dataset if self.masks else None
        items = _Items(self.dataset, shard, columns, masks=masks, annotations=self.annotations)
        loaders = [(DataLoader(items, **common), False)]
        if nonface and self.nonface is not None and self.n_nonface:
            m = self.n_nonface
            columns = {
                "label": torch.full((m,), -1),
                "group": torch.full((m,), len(self.groups)),
                "in_set": torch.zeros(m, dtype=torch.bool),
                "shortcut": torch.full((m,), -1),
            }
            shard = dist_utils.shard_batches(m, batch_size, context.rank, context.world_size)
            loaders.append((DataLoader(_Items(self.nonface, shard, columns, offset=self.n), **common), True))
        return loaders


def folder_group(path: str, label: int) -> str:
    """The group of an image from its folders: ``<family>`` of the deepest ``<family>_aligned`` folder,
    else ``real`` or ``synthetic`` by its label (module docstring)."""
    for part in reversed(PurePosixPath(path).parts[:-1]):
        if part.endswith(ALIGNED_SUFFIX) and len(part) > len(ALIGNED_SUFFIX):
            return part[: -len(ALIGNED_SUFFIX)]
    return "real" if label == LABELS["Real"] else "synthetic"


def _group_labels(dataset: CsvImageDataset, n: int) -> tuple[list[str], str]:
    """Per-image group names of the first ``n`` images and where they come from."""
    columns = dataset.metadata[0] if dataset.metadata else {}
    column = next((c for c in ("group", "family") if c in columns), None)
    if column:
        return [dataset.metadata[i][column] for i in range(n)], f"metadata {column}"
    if any(ALIGNED_SUFFIX in p for p in dataset.paths[:n]):
        labels = [folder_group(dataset.paths[i], int(dataset.labels[i])) for i in range(n)]
        if any(label not in ("real", "synthetic") for label in labels):
            return labels, f"folders (<family>{ALIGNED_SUFFIX})"
    return ["all"] * n, "none"


def _groups(
    dataset: CsvImageDataset, n: int, in_set_groups: Sequence[str], needed: bool = True
) -> tuple[list[str], torch.Tensor, torch.Tensor, str]:
    """Group names, per-image ids, the in-set mask and the groups' origin (module docstring).

    ``needed``: distribution shift is measured, so an in-set reference must exist; without it an
    empty in-set mask is no error (nothing uses it).
    """
    labels, origin = _group_labels(dataset, n)
    names = sorted(set(labels))
    ids = torch.tensor([names.index(label) for label in labels], dtype=torch.long)
    if origin in ("none", "metadata family"):
        return names, ids, torch.ones(n, dtype=torch.bool), origin
    chosen = [names.index(g) for g in in_set_groups if g in names]
    if origin != "metadata group":
        _check_one_label_per_group(dataset, names, ids)
        if not chosen and tuple(in_set_groups) == _DEFAULT_IN_SET:
            chosen = ids[dataset.labels[:n] == LABELS["Real"]].unique().tolist()
    if not chosen and needed:
        raise SettingsError(f"--in-set-groups {list(in_set_groups)}: none of them is among the data's groups {names}")
    return names, ids, torch.isin(ids, torch.tensor(chosen, dtype=torch.long)), origin


def _check_one_label_per_group(dataset: CsvImageDataset, names: list[str], ids: torch.Tensor) -> None:
    labels = dataset.labels[: len(ids)]
    for g, name in enumerate(names):
        inside = (ids == g).nonzero()[:, 0]
        mixed = inside[labels[inside] != labels[inside[0]]]
        if len(mixed):
            first, other = int(inside[0]), int(mixed[0])
            raise ValueError(
                f"{dataset.csv_path}: folder group {name!r} holds Real and Synthetic images (lines "
                f"{dataset.lines[first]} and {dataset.lines[other]}); give metadata.csv a 'group' column"
            )


def _open_csv(root: Path, settings: EngineSettings) -> Path:
    """The folder's CSV (``settings.csv``, absolute or relative to ``root``); a missing one is named with a hint."""
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} not found")
    csv_path = resolve_csv(root, settings.csv)
    if csv_path.is_file():
        return csv_path
    found = [p.relative_to(root).as_posix() for p in sorted([*root.glob("*.csv"), *root.glob("csvs/*.csv")])]
    found += [f"../csvs/{p.name}" for p in sorted(root.parent.glob("csvs/*.csv"))]  # the authors' repository
    found = [p for p in found if p not in (NONFACE_NAME, METADATA_NAME)]
    hint = f" (CSVs in the folder: {', '.join(found[:6])})" if found else ""
    if settings.csv is None:
        raise FileNotFoundError(
            f"{csv_path} not found: the data folder has no {CSV_NAME}; choose its CSV with csv= (--csv), "
            f"absolute or relative to the folder, e.g. csvs/test.csv{hint}"
        )
    raise FileNotFoundError(f"CSV file {csv_path} not found (csv= / --csv is absolute or relative to {root}){hint}")


def _warn_unannotated(split: CsvImageDataset, present: torch.Tensor) -> None:
    """Warn when some but not all chosen images have a map, or a map exists that cannot be used."""
    n, annotated = len(present), int(present.sum())
    ambiguous = [i for i in sorted(split.ambiguous) if i < n]
    if not ambiguous and annotated in (0, n):
        return
    i = int((~present).nonzero()[0])
    message = (
        f"{split.csv_path}: {n - annotated} of {n} images have no usable annotation map (first: "
        f"{split.annotation_file(i)} for line {split.lines[i]})"
    )
    if ambiguous:
        message += f"; {len(ambiguous)} of them have an ambiguous one ({split.ambiguous[ambiguous[0]]})"
    tail = f"measured over the {annotated} annotated images" if annotated else "not measured"
    warnings.warn(f"{message}; annotation agreement is {tail}", stacklevel=4)


def _folder(root: Path, settings: EngineSettings, image_size: int | None) -> Source:
    csv_path = _open_csv(root, settings)
    split = CsvImageDataset(
        root, settings.split, image_size=image_size, annotations="available", csv_name=csv_path.absolute()
    )
    n = min(settings.limit or len(split), len(split))
    present = split.annotated[:n]
    annotated = int(present.sum())
    _warn_unannotated(split, present)
    nonface_csv = root / NONFACE_NAME
    nonface = NonFaceDataset(root, image_size=split.image_size) if nonface_csv.is_file() else None
    n_nonface = 0 if nonface is None else min(settings.limit or len(nonface), len(nonface))
    groups, ids, in_set, origin = _groups(split, n, settings.in_set_groups, settings.runs("out_of_set"))
    meta = split.metadata
    shortcut = torch.full((n,), -1, dtype=torch.long)
    if meta and "shortcut" in meta[0]:
        shortcut = torch.tensor([int(meta[i]["shortcut"] == "1") for i in range(n)], dtype=torch.long)
    masks = bool(meta) and "mask_path" in meta[0]
    description = {
        "root": str(root),
        "csv": str(split.csv_path),
        "split": settings.split,
        "image_size": list(split.image_size),
        "annotated_images": annotated,
        "groups_from": origin,
    }
    return Source(split, n, groups, ids, in_set, shortcut, annotated > 0, masks, nonface, n_nonface, description,
                  present.clone() if 0 < annotated < n else None)


def _dataset(dataset: Dataset, settings: EngineSettings) -> Source:
    n = min(settings.limit or len(dataset), len(dataset))
    if n == 0:
        raise ValueError("the data set is empty")
    first = dataset[0]
    if not isinstance(first, tuple | list) or len(first) not in (2, 3):
        raise ValueError(
            f"a Dataset given to evaluate() must yield (image, label) or (image, label, annotation), "
            f"got {type(first).__name__}"
        )
    ids = torch.zeros(n, dtype=torch.long)
    description = {"dataset": type(dataset).__name__, "image_size": list(first[0].shape[-2:])}
    return Source(dataset, n, ["all"], ids, torch.ones(n, dtype=torch.bool), torch.full((n,), -1),
                  len(first) == 3, False, None, 0, description)


def open_source(data: str | os.PathLike[str] | Dataset, settings: EngineSettings, image_size: int | None) -> Source:
    """The :class:`Source` of a CYBORG-layout folder or a Dataset.

    Raises:
        FileNotFoundError, ValueError: a missing folder or file, a bad CSV line, an empty data set
            (the message names the file and line).
    """
    if isinstance(data, Dataset):
        return _dataset(data, settings)
    if isinstance(data, str | os.PathLike):
        return _folder(Path(data), settings, image_size)
    raise TypeError(f"`data` must be a data folder or a torch Dataset, got {type(data).__name__}")
