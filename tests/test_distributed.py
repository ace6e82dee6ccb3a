"""Tests for salience_lib.distributed: batch-aligned sharding and syncing accumulators across gloo ranks."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st
from torchmetrics.utilities.exceptions import TorchMetricsUserError

from salience_lib.measures.accumulator import Accumulator
from salience_lib.measures.entropy import EntropyAccumulator
from salience_lib.measures.out_of_set import MeanMapAccumulator
from salience_lib.runtime import distributed as dist_utils


class _Values(Accumulator):
    """Per-image values in two groups; a rank may see no image of a group."""

    def __init__(self) -> None:
        super().__init__()
        self.add_cat_state("a")
        self.add_cat_state("b", (2,))

    def update(self, name: str, values: torch.Tensor) -> None:
        self._cat(name, values)

    def compute(self) -> dict[str, torch.Tensor]:
        return {"a": self.values("a"), "b": self.values("b")}


@given(st.integers(0, 200), st.integers(1, 17), st.integers(1, 6))
def test_shards_cover_every_image_once_in_whole_batches(n: int, batch_size: int, world_size: int) -> None:
    shards = [dist_utils.shard_batches(n, batch_size, rank, world_size) for rank in range(world_size)]
    assert [i for shard in shards for i in shard] == list(range(n))
    for shard in shards:
        if len(shard):
            assert shard.start % batch_size == 0 and (shard.stop % batch_size == 0 or shard.stop == n)
    sizes = [-(-len(shard) // batch_size) for shard in shards]
    assert max(sizes) - min(sizes) <= 1


def test_shard_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rank"):
        dist_utils.shard_batches(10, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        dist_utils.shard_batches(10, 0, rank=0, world_size=1)


def test_single_process_context_and_device_errors() -> None:
    context = dist_utils.setup("cpu")
    assert (context.rank, context.world_size, context.is_main, context.distributed) == (0, 1, True, False)
    assert dist_utils.broadcast_object(context, {"a": 1}) == {"a": 1}
    with pytest.raises(ValueError, match="device"):
        dist_utils.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            dist_utils.resolve_device("cuda")


def test_indexed_uniform_depends_only_on_the_image_index() -> None:
    whole = dist_utils.indexed_uniform(torch.arange(50), 64, seed=3, stream=1)
    part = dist_utils.indexed_uniform(torch.tensor([49, 7, 20]), 64, seed=3, stream=1)
    assert torch.equal(part, whole[[49, 7, 20]])
    assert whole.min() >= 0 and whole.max() < 1 and abs(float(whole.mean()) - 0.5) < 0.02
    assert not torch.equal(whole, dist_utils.indexed_uniform(torch.arange(50), 64, seed=4, stream=1))
    assert not torch.equal(whole, dist_utils.indexed_uniform(torch.arange(50), 64, seed=3, stream=2))


def test_indexed_salt_and_pepper_replaces_exact_counts() -> None:
    images = torch.full((4, 3, 10, 10), 0.5)
    noisy = dist_utils.indexed_salt_and_pepper(torch.arange(4), seed=0)(images, 0.25)
    changed = (noisy != 0.5).all(dim=1)
    assert changed.flatten(1).sum(dim=1).tolist() == [25] * 4
    assert set(noisy[:, 0][changed].unique().tolist()) == {0.0, 1.0}
    again = dist_utils.indexed_salt_and_pepper(torch.tensor([2]), seed=0)(images[:1], 0.25)
    assert torch.equal(again, noisy[2:3])


def _maps(rank: int) -> torch.Tensor:
    return torch.rand(3 + 2 * rank, 8, 8, generator=torch.Generator().manual_seed(rank))


def _fill(ranks: tuple[int, ...]) -> tuple[EntropyAccumulator, MeanMapAccumulator, _Values]:
    """Rank 0: 3 maps into every accumulator; rank 1: 5 maps into the entropy only (the others stay empty)."""
    entropy, mean_map, values = EntropyAccumulator("spatial"), MeanMapAccumulator((8, 8)), _Values()
    for rank in ranks:
        entropy.update(_maps(rank))
    if 0 in ranks:
        mean_map.update(_maps(0))
        values.update("a", _maps(0).mean(dim=(1, 2))[:1])
        values.update("b", _maps(0)[1:, 0, :2])
    return entropy, mean_map, values


def _state(entropy: EntropyAccumulator, mean_map: MeanMapAccumulator, values: _Values) -> list[torch.Tensor]:
    return [entropy.values("entropy"), entropy.total("all_zero"), mean_map.total("sum"), mean_map.total("images"),
            values.values("a"), values.values("b")]


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": "2"}
    torch.set_num_threads(1)
    context = dist_utils.setup("cpu")
    try:
        accumulators = _fill((rank,))
        local = [accumulators[0].values("entropy").clone()]
        computed = accumulators[0].compute()  # compute() syncs by itself and restores the local state
        for acc in accumulators:
            acc.sync()  # TorchMetrics' sync: states rank 1 never filled take part, empty
        state = _state(*accumulators)
        errors = []
        try:
            accumulators[0].sync()
        except TorchMetricsUserError as err:  # a second sync would add the ranks' sums again
            errors.append(str(err))
        accumulators[0].unsync()
        state += [accumulators[0].values("entropy"), torch.tensor(computed["n"])]
        mismatched = MeanMapAccumulator((4 + rank, 4))
        mismatched.update(torch.rand(2, 4 + rank, 4))
        try:
            mismatched.sync()
            errors.append("no error")
        except ValueError as err:
            errors.append(str(err))
        torch.save({"state": state, "local": local, "errors": errors}, os.path.join(folder, f"{rank}.pt"))
    finally:
        dist_utils.teardown(context)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sync_with_an_empty_rank_equals_one_process(tmp_path: Path) -> None:
    """Two gloo ranks with uneven lengths, rank 1 never filling some states: after TorchMetrics' sync
    both hold the one-process state; a second sync is refused, unsync restores the local state, compute()
    syncs by itself; a state whose shape differs between ranks raises on both (no hang)."""
    assert not dist.is_initialized()
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    expected = _state(*_fill((0, 1)))
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        *state, local_entropy, computed_n = saved["state"]
        for got, want in zip(state, expected, strict=True):
            assert torch.equal(got, want)
        assert torch.equal(local_entropy, saved["local"][0]) and int(computed_n) == 8
        synced_twice, mismatch = saved["errors"]
        assert "already been synced" in synced_twice
        assert "MeanMapAccumulator states differ in shape between processes" in mismatch, mismatch
