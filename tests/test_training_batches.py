"""Tests for salience_lib.training.batches: in-memory data, seeded batch order, paired flips."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from salience_lib.training.batches import InMemoryDataset, epoch_batches, iterate_batches, preload, random_hflip


def _images(n: int, quantised: bool) -> torch.Tensor:
    images = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return torch.round(images * 255) / 255 if quantised else images


def test_hflip_flips_annotation_with_image(generator) -> None:
    images = torch.rand(16, 3, 4, 5, generator=generator)
    batch = (images, torch.zeros(16, dtype=torch.long), images[:, 0].clone())
    flipped = random_hflip(batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(flipped[0][:, 0], flipped[2])
    changed = (flipped[0] != images).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 16


def test_preload_packs_exact_8bit_data() -> None:
    labels = torch.arange(8) % 2
    packed = preload(TensorDataset(_images(8, quantised=True), labels))
    assert packed.images.dtype == torch.uint8
    assert packed.annotations is None
    torch.testing.assert_close(packed.batch(torch.arange(8))[0], _images(8, quantised=True))
    assert preload(TensorDataset(_images(8, quantised=False), labels)).images.dtype == torch.float32
    assert preload(packed) is packed


def test_in_memory_items_match_batches() -> None:
    data = preload(TensorDataset(_images(6, quantised=True), torch.arange(6) % 2, torch.rand(6, 8, 8)))
    assert isinstance(data, InMemoryDataset) and len(data) == 6
    image, label, annotation = data[4]
    images, labels, annotations = data.batch(torch.tensor([4]))
    assert torch.equal(image, images[0]) and int(label) == int(labels[0]) and torch.equal(annotation, annotations[0])


def test_epoch_batches_seeded_permutation_drops_a_lone_sample() -> None:
    batches = epoch_batches(40, 13, seed=0, epoch=0)
    assert [len(b) for b in batches] == [13, 13, 13]  # 40 = 3 * 13 + 1
    assert len(set(torch.cat(batches).tolist())) == 39
    assert all(torch.equal(a, b) for a, b in zip(batches, epoch_batches(40, 13, seed=0, epoch=0), strict=True))
    assert not torch.equal(torch.cat(batches), torch.cat(epoch_batches(40, 13, seed=0, epoch=1)))


def test_iterate_batches_same_in_memory_and_streamed() -> None:
    dataset = TensorDataset(_images(10, quantised=True), torch.arange(10) % 2)
    batches = epoch_batches(10, 4, seed=1, epoch=0)
    streamed = list(iterate_batches(dataset, batches, num_workers=0))
    indexed = list(iterate_batches(preload(dataset), batches, num_workers=0))
    for a, b in zip(streamed, indexed, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
