"""Running a measurement on several processes (``torchrun``): set-up, sharding and state exchange.

``torchrun --nproc_per_node N -m salience_lib report ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. :func:`setup` joins them into a process
group (``nccl`` on CUDA, ``gloo`` on CPU) and gives each its device (``cuda:<LOCAL_RANK>``).

Sharding is by *whole batches* (:func:`shard_batches`): the data set's batches — fixed by the batch
size, not by the number of processes — are split into contiguous runs, one per rank. Every image is
measured exactly once (``DistributedSampler`` would pad the last shard with duplicates), each batch
holds the same images as in a single-process run, and concatenating the ranks' per-image values in
rank order restores the single-process order. A rank may receive no batch at all.

Random draws must not depend on the shard either: :func:`indexed_uniform` and
:func:`indexed_salt_and_pepper` derive them from a counter-based hash of ``(seed, stream, image
index, element)``, so image ``i`` gets the same noise in any batch, on any rank and on any device.

:func:`sync_accumulator` makes an accumulator's state global on every rank, through
:meth:`~salience_lib.measures.accumulator.Accumulator.sync`, which first gives every rank the same
set of state names (a rank that saw no image of some group has never created that state; the
collective calls would otherwise not line up and hang).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from salience_lib.runtime.device import resolve_device

__all__ = [
    "Context",
    "barrier",
    "broadcast_object",
    "gather_object",
    "indexed_salt_and_pepper",
    "indexed_uniform",
    "resolve_device",
    "setup",
    "shard_batches",
    "teardown",
]

_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one process is in use."""
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """Join the ``torchrun`` process group if there is one; a single process otherwise.

    Reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (set by ``torchrun``). With more than one
    process, initialises ``torch.distributed`` (``nccl`` for CUDA devices, ``gloo`` for CPU) unless
    the caller already did.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return Context(rank, world_size, local_rank, resolved, owns_group)


def teardown(context: Context) -> None:
    """Leave the process group if :func:`setup` created it (a caller's own group is left alone)."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    """Wait for every process (no-op in a single process)."""
    if context.distributed:
        dist.barrier()


def broadcast_object(context: Context, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects; returns ``obj`` in a single process)."""
    if not context.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard_batches(n: int, batch_size: int, rank: int, world_size: int) -> range:
    """The image indices ``range(n)`` of rank ``rank``: a contiguous run of whole batches.

    The ``ceil(n / batch_size)`` batches are split as evenly as possible (the first ranks get one
    more when they do not divide); the union over ranks is ``range(n)``, without overlap.

    Raises:
        ValueError: non-positive ``batch_size`` or ``world_size``, or ``rank`` outside ``[0, world_size)``.
    """
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}")
    n_batches = -(-n // batch_size)
    base, extra = divmod(n_batches, world_size)
    first = rank * base + min(rank, extra)
    last = first + base + (1 if rank < extra else 0)
    return range(min(n, first * batch_size), min(n, last * batch_size))


# ---------------------------------------------------------------------------------------------
# per-image randomness


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """``lowbias32`` integer hash (C. Wellons) of int64 tensors holding 32-bit values (no overflow)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _MASK32
    return x ^ (x >> 15)


def _indexed_bits(indices: torch.Tensor, count: int, seed: int, stream: int) -> torch.Tensor:
    """``(B, count)`` 32-bit hashes, a function of ``(seed, stream, indices[b], element)`` only."""
    device = indices.device
    base = _hash32(_hash32(torch.tensor(seed, dtype=torch.long, device=device)) ^ (stream & _MASK32))
    keys = _hash32(indices.long() ^ base)
    cells = _hash32(torch.arange(count, dtype=torch.long, device=device) * 0x9E3779B1 + 0x7F4A7C15)
    return _hash32(keys[:, None] ^ cells[None, :])


def indexed_uniform(indices: torch.Tensor, count: int, seed: int = 0, stream: int = 0) -> torch.Tensor:
    """Uniform float32 values in [0, 1) (24-bit), shape ``(B, count)``, fixed by each image's index.

    Args:
        indices: ``(B,)`` integer image indices (global, not shard-local).
        count: values per image.
        seed: in ``[0, 2**32)``.
        stream: separates independent draws for the same images.
    """
    return (_indexed_bits(indices, count, seed, stream) >> 8).float() / float(1 << 24)


def indexed_salt_and_pepper(
    indices: torch.Tensor, seed: int = 0, per_channel: bool = False
) -> Callable[..., torch.Tensor]:
    """Salt-and-pepper noise as in :func:`salience_lib.imaging.salt_and_pepper`, drawn per image index.

    Returns a perturbation family ``f(images, fraction, generator=None)`` for
    :func:`~salience_lib.measures.out_of_set.perturbation_curve` (``generator`` is ignored), with
    its draws fixed by hashes of ``(seed, fraction, indices[b])`` — so the noise of an image does not
    depend on the batch, the shard or the process it lands in:

    * ``per_channel=True`` (the authors' skimage ``random_noise(mode="s&p")``): every element of image
      ``b`` is replaced with probability ``fraction``, by salt or pepper with probability 1/2 each;
    * ``per_channel=False``: exactly ``round(fraction·H·W)`` pixel positions become black or white (50/50).
    """

    def salt_and_pepper(images: torch.Tensor, fraction: float, generator: object = None) -> torch.Tensor:
        batch, channels, height, width = images.shape
        stream = 2 * round(float(fraction) * 1e6) + 1
        if per_channel:
            if float(fraction) == 0.0:
                return images.clone()
            size = channels * height * width
            flipped = indexed_uniform(indices, size, seed, stream) < float(fraction)
            salt = indexed_uniform(indices, size, seed, stream + 1) < 0.5
            noisy = torch.where(flipped, salt.to(images.dtype), images.reshape(batch, size))
            return noisy.view(batch, channels, height, width)
        count = round(float(fraction) * height * width)
        if count == 0:
            return images.clone()
        order = _indexed_bits(indices, height * width, seed, stream).argsort(dim=1, stable=True)
        chosen = (order.argsort(dim=1) < count).view(batch, 1, height, width)
        salt = indexed_uniform(indices, height * width, seed, stream + 1) < 0.5
        return torch.where(chosen, salt.view(batch, 1, height, width).to(images.dtype), images)

    return salt_and_pepper


def gather_object(context: Context, obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (``[obj]`` in a single process)."""
    if not context.distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
