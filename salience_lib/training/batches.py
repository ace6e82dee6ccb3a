"""Training data: a data set decoded once into memory, the seeded batch order, paired flips.

Every epoch's batches are a permutation drawn from a generator seeded by
:func:`salience_lib.training.config.derive_seed` (run seed, ``"order"``, epoch), so the order depends only
on the seed and the epoch — an interrupted run resumes with the very batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from salience_lib.training.config import derive_seed

__all__ = ["InMemoryDataset", "epoch_batches", "image_size", "iterate_batches", "preload", "random_hflip"]


class InMemoryDataset(Dataset):
    """A data set decoded once: images (uint8 where that is exact, else float32), labels, annotations."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, annotations: torch.Tensor | None):
        self.images, self.labels, self.annotations = images, labels, annotations

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.batch(torch.tensor([i])))

    def to(self, device: torch.device) -> InMemoryDataset:
        """A copy with every tensor on ``device`` (batches are then gathered there)."""
        move = [None if t is None else t.to(device) for t in (self.images, self.labels, self.annotations)]
        return InMemoryDataset(*move)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Items ``idx`` as collated float32 tensors ``(images, labels[, annotations])``."""
        idx = idx.to(self.labels.device)
        out = [_unpack(self.images[idx]), self.labels[idx]]
        if self.annotations is not None:
            out.append(_unpack(self.annotations[idx]))
        return tuple(out)


def _pack(x: torch.Tensor) -> torch.Tensor:
    """uint8 if ``x`` (in [0, 1]) is exactly representable in 8 bits, else ``x`` unchanged."""
    q = torch.round(x * 255)
    return q.to(torch.uint8) if torch.equal(q / 255, x) else x


def _unpack(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x


def preload(dataset: Dataset, num_workers: int = 0) -> InMemoryDataset:
    """Decode ``dataset`` (items ``(image, label[, annotation])``) once into an :class:`InMemoryDataset`.

    A column is stored as uint8 only if every value of it is exactly 8-bit (as decoded PNGs are), else
    as float32; an :class:`InMemoryDataset` is returned as it is.
    """
    if isinstance(dataset, InMemoryDataset):
        return dataset
    parts: list[list[torch.Tensor]] = []
    for batch in DataLoader(dataset, batch_size=256, shuffle=False, num_workers=num_workers):
        packed = [_pack(batch[0].float()), batch[1].long()]
        if len(batch) > 2:
            packed.append(_pack(batch[2].float()))
        parts.append(packed)
    cols = [list(c) for c in zip(*parts, strict=True)]
    # A column is uint8 only if every chunk was exactly 8-bit; otherwise fall back to float32.
    merged = [torch.cat(c) if len({t.dtype for t in c}) == 1 else torch.cat([_unpack(t) for t in c]) for c in cols]
    return InMemoryDataset(merged[0], merged[1], merged[2] if len(merged) > 2 else None)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Seeded permutation of ``range(n)`` in batches; a trailing batch of one is dropped (BatchNorm)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))
    chunks = list(perm.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks


def iterate_batches(
    dataset: Dataset, batches: list[torch.Tensor], num_workers: int
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Collated batches of ``dataset`` in the given index order (indexing in memory, else a DataLoader)."""
    if isinstance(dataset, InMemoryDataset):
        yield from (dataset.batch(idx) for idx in batches)
        return
    sampler = [idx.tolist() for idx in batches]
    yield from DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)


def random_hflip(batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Flip each item left–right with probability 1/2; image and annotation together."""
    flip = (torch.rand(len(batch[1]), generator=generator) < 0.5).to(batch[0].device)
    out = list(batch)
    out[0] = torch.where(flip[:, None, None, None], batch[0].flip(-1), batch[0])
    if len(batch) > 2:
        out[2] = torch.where(flip[:, None, None], batch[2].flip(-1), batch[2])
    return tuple(out)


def image_size(data: Dataset) -> int:
    """The shorter side of the first image of ``data``."""
    image = data.images[0] if isinstance(data, InMemoryDataset) else data[0][0]
    return int(min(image.shape[-2:]))
