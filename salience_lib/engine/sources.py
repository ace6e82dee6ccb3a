"""The images the engine measures: a CYBORG-layout folder or any torch Dataset, sharded into batches.

A folder gives its split (:class:`~salience_lib.data.CsvImageDataset`), the groups of its metadata
(``group``, else ``family``; one group ``all`` without metadata), artifact masks and shortcut flags
where the metadata has them, human annotations when every chosen image has one, and the non-face
set (``nonface.csv``), which only distribution shift uses. A Dataset yields ``(image, label)`` or
``(image, label, annotation)``.

Batches are whole batches of the first ``n`` images, split between ``torch.distributed`` ranks by
:func:`~salience_lib.runtime.distributed.shard_batches`; every image carries its global index (the
key of the per-image random draws), so a sharded run measures exactly what one process does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from salience_lib.data import CsvImageDataset, NonFaceDataset
from salience_lib.engine.settings import EngineSettings, SettingsError
from salience_lib.runtime import distributed as dist_utils

__all__ = ["Batch", "Source", "open_source"]

NONFACE_GROUP = "nonface"


@dataclass
class Batch:
    """One batch on the device; ``label`` is -1 and ``group`` the non-face id for non-face images."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    group: torch.Tensor
    in_set: torch.Tensor
    shortcut: torch.Tensor
    annotation: torch.Tensor | None
    mask: torch.Tensor | None
    nonface: bool

    @classmethod
    def of(cls, item: dict[str, torch.Tensor], device: torch.device, nonface: bool) -> Batch:
        """Move a collated item dict to ``device``."""
        moved = {k: v.to(device, non_blocking=True) for k, v in item.items()}
        fields = ("image", "label", "index", "group", "in_set", "shortcut")
        return cls(*(moved[k] for k in fields), moved.get("annotation"), moved.get("mask"), nonface)


class _Items(Dataset):
    """Dict items of ``base`` at ``indices``: image, label, global index, per-image columns, annotation, mask."""

    def __init__(
        self,
        base: Dataset,
        indices: range,
        columns: dict[str, torch.Tensor],
        offset: int = 0,
        masks: CsvImageDataset | None = None,
    ) -> None:
        self.base, self.indices, self.columns, self.offset, self.masks = base, indices, columns, offset, masks

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = self.indices[i]
        raw = self.base[j]
        image, *rest = raw if isinstance(raw, tuple | list) else (raw,)
        item = {"image": image, "index": self.offset + j} | {name: col[j] for name, col in self.columns.items()}
        if rest:
            item["label"] = int(rest[0])
        if len(rest) > 1:
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
        masks = self.dataset if self.masks else None
        loaders = [(DataLoader(_Items(self.dataset, shard, columns, masks=masks), **common), False)]
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


def _groups(
    dataset: CsvImageDataset, n: int, in_set_groups: Sequence[str]
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Group names (metadata ``group``, else ``family``, else one group), per-image ids, in-set mask."""
    columns = dataset.metadata[0] if dataset.metadata else {}
    column = next((c for c in ("group", "family") if c in columns), None)
    labels = [dataset.metadata[i][column] for i in range(n)] if column else ["all"] * n
    names = sorted(set(labels))
    ids = torch.tensor([names.index(label) for label in labels], dtype=torch.long)
    if column != "group":
        return names, ids, torch.ones(n, dtype=torch.bool)
    chosen = [names.index(g) for g in in_set_groups if g in names]
    if not chosen:
        raise SettingsError(f"--in-set-groups {list(in_set_groups)}: none of them is among the data's groups {names}")
    return names, ids, torch.isin(ids, torch.tensor(chosen))


def _folder(root: Path, settings: EngineSettings, image_size: int | None) -> Source:
    csv_name = {} if settings.csv is None else {"csv_name": str(settings.csv)}
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} not found")
    split = CsvImageDataset(root, settings.split, image_size=image_size, **csv_name)
    n = min(settings.limit or len(split), len(split))
    annotated = sum(split.annotation_file(i).is_file() for i in range(n))
    if annotated == n:
        split = CsvImageDataset(root, settings.split, image_size=image_size, annotations=True, **csv_name)
    nonface = NonFaceDataset(root, image_size=split.image_size) if (root / "nonface.csv").is_file() else None
    n_nonface = 0 if nonface is None else min(settings.limit or len(nonface), len(nonface))
    groups, ids, in_set = _groups(split, n, settings.in_set_groups)
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
    }
    return Source(split, n, groups, ids, in_set, shortcut, annotated == n, masks, nonface, n_nonface, description)


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
