"""Streaming, mergeable state for the measures (the TorchMetrics pattern, with sum and cat states).

An accumulator keeps *sum* states (tensors added element-wise, e.g. a mean map or a K×K matrix) and
*cat* states (per-image scalars, concatenated). Maps themselves are never kept, so memory does not
grow with the number of images beyond a few bytes per image. Two accumulators of the same kind and
configuration merge (``a.merge(b)``), and :meth:`Accumulator.sync` all-reduces / all-gathers the
state across ``torch.distributed`` processes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from salience_lib.stats import Summary, summarise

__all__ = ["Accumulator"]


class Accumulator:
    """Base class. Subclasses implement ``update(...)``, ``compute()`` and :meth:`config`."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._cats: dict[str, list[torch.Tensor]] = {}

    # -- state -------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Settings that must match for two accumulators to merge (and that reports record)."""
        return {}

    def reset(self) -> None:
        """Forget every update."""
        self._sums.clear()
        self._cats.clear()

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().double()
        self._sums[name] = self._sums[name] + value if name in self._sums else value.clone()

    def _cat(self, name: str, values: torch.Tensor) -> None:
        self._cats.setdefault(name, []).append(values.detach().double().reshape(-1))

    def values(self, name: str) -> torch.Tensor:
        """All per-image values of the cat state ``name``, in update order (float64)."""
        if name not in self._cats:
            raise ValueError(f"{type(self).__name__} has no values for {name!r}: call update() first")
        parts = self._cats[name]
        if len(parts) > 1:
            self._cats[name] = parts = [torch.cat(parts)]
        return parts[0]

    def total(self, name: str) -> torch.Tensor:
        """The sum state ``name``."""
        if name not in self._sums:
            raise ValueError(f"{type(self).__name__} has no total for {name!r}: call update() first")
        return self._sums[name]

    @property
    def count(self) -> int:
        """Number of images seen (length of the first cat state)."""
        if not self._cats:
            return 0
        return int(self.values(next(iter(self._cats))).numel())

    def summary(self, name: str, confidence: float = 0.95) -> Summary:
        """Mean and bootstrap CI of the cat state ``name``."""
        return summarise(self.values(name), confidence=confidence)

    # -- combining ---------------------------------------------------------------------------------
    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s state to this one (same class and configuration); returns ``self``."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.config() != self.config():
            raise ValueError(f"cannot merge accumulators with different settings: {self.config()} vs {other.config()}")
        for name, value in other._sums.items():
            self._add(name, value.to(self._sums[name].device) if name in self._sums else value)
        for name in other._cats:
            self._cat(name, other.values(name))
        return self

    def _layout(self) -> dict[str, Any]:
        return {"sums": {name: tuple(value.shape) for name, value in self._sums.items()}, "cats": sorted(self._cats)}

    def _state_device(self, device: torch.device | str | None) -> torch.device:
        """Where missing states are created: ``device``, else that of a state held, else the backend's."""
        if device is not None:
            return torch.device(device)
        for tensor in [*self._sums.values(), *(parts[0] for parts in self._cats.values() if parts)]:
            return tensor.device
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _align_layout(self, device: torch.device | str | None) -> None:
        """Create, empty, every state some other process holds and this one does not.

        A process that saw no image of a kind (e.g. no non-face image in its shard) then still
        takes part in every collective call, in the same order.

        Raises:
            ValueError: a sum state whose shape differs between processes.
        """
        layouts: list[dict[str, Any] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(layouts, self._layout())
        where = self._state_device(device)
        for layout in layouts:
            assert layout is not None
            for name, shape in layout["sums"].items():
                mine = self._sums.get(name)
                if mine is None:
                    self._sums[name] = torch.zeros(shape, dtype=torch.float64, device=where)
                elif tuple(mine.shape) != tuple(shape):
                    raise ValueError(
                        f"{type(self).__name__} state {name!r} has shape {tuple(mine.shape)} in this process "
                        f"but {tuple(shape)} in another"
                    )
            for name in layout["cats"]:
                self._cats.setdefault(name, [torch.empty(0, dtype=torch.float64, device=where)])

    def sync(self, device: torch.device | str | None = None) -> None:
        """Combine the state of every ``torch.distributed`` process (no-op when not initialised).

        Every process must call it (a collective). States that exist in some processes only are
        first created empty where missing (zeros for sums, no values for cat states; on ``device``,
        else where this accumulator's states live, else CPU for gloo and the current GPU for NCCL).
        Sum states are then all-reduced; cat states are all-gathered in rank order (uneven lengths
        are padded and trimmed). Afterwards every process holds the global state.

        Raises:
            ValueError: a sum state whose shape differs between processes.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        self._align_layout(device)
        for name in sorted(self._sums):
            dist.all_reduce(self._sums[name])
        for name in sorted(self._cats):
            local = self.values(name)
            sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(dist.get_world_size())]
            dist.all_gather(sizes, torch.tensor([local.numel()], device=local.device))
            longest = int(max(int(s) for s in sizes))
            padded = torch.zeros(longest, dtype=local.dtype, device=local.device)
            padded[: local.numel()] = local
            gathered = [torch.empty_like(padded) for _ in sizes]
            dist.all_gather(gathered, padded)
            self._cats[name] = [torch.cat([g[: int(s)] for g, s in zip(gathered, sizes, strict=True)])]
