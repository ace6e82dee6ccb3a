"""Streaming, mergeable, distributed state for the measures, on TorchMetrics' :class:`~torchmetrics.Metric`.

An accumulator declares its states once, in ``__init__``, with their reductions — TorchMetrics'
``add_state`` — so every process holds the same states whatever it has seen:

* *sum* states (:meth:`Accumulator.add_sum_state`): float64 tensors added element-wise (a mean map's
  sum, a K×K matrix, a count); all-reduced across processes;
* *cat* states (:meth:`Accumulator.add_cat_state`): per-image values (rows of a fixed trailing
  shape), concatenated in update order; all-gathered across processes in rank order — what the
  bootstrap confidence intervals need.

Maps themselves are never kept, so memory grows by a few bytes per image. What TorchMetrics gives:
``merge_state`` (two accumulators of one kind and configuration, :meth:`Accumulator.merge`), a sync
that refuses to run twice (``sync()``/``unsync()``, and ``compute()`` syncs by itself inside
``torch.distributed`` and restores the local state afterwards), ``reset()``, and ``.to(device)``.
What it lacks and this class adds: a rank that saw no image holds *empty* cat states, which
TorchMetrics would gather as 1-D float32 tensors whatever the state's shape and dtype — here they
are created with the declared trailing shape in float64 (``tests/test_distributed.py`` shows both).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torchmetrics import Metric

from salience_lib.stats import Summary, bootstrap_ci

__all__ = ["Accumulator", "ValuesAccumulator", "summary_of"]

# Bootstrap resamples are drawn in chunks of at most this many indices: ~16 MB transient memory
# whatever the number of images.
BOOTSTRAP_CHUNK = 2**20
# A rank of a sharded run may hold no image of some kind; computing its (empty) state is expected.
warnings.filterwarnings("ignore", message=r"The ``compute`` method of metric .* was called before the ``update``")


def summary_of(values: torch.Tensor, confidence: float = 0.95) -> Summary:
    """Mean and percentile-bootstrap CI of ``values`` (any shape, flattened), in bounded memory.

    Raises:
        ValueError: no values, or NaN or infinite ones (a measure never reports them as a number).
    """
    data = values.detach().to("cpu", torch.float64).reshape(-1)
    low, high = bootstrap_ci(data, confidence=confidence, chunk_elements=BOOTSTRAP_CHUNK)
    return Summary(float(data.mean()), low, high, int(data.numel()), confidence)


class Accumulator(Metric):
    """Base class: a :class:`torchmetrics.Metric` with float64 sum and cat states.

    Subclasses declare states in ``__init__`` and implement ``update(...)``, ``compute()`` and, when
    they have settings, :meth:`config`.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cat_shapes: dict[str, tuple[int, ...]] = {}

    # -- declaring and filling states --------------------------------------------------------------
    def add_sum_state(self, name: str, shape: tuple[int, ...] = ()) -> None:
        """A float64 tensor of ``shape``, summed over updates and processes."""
        self.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def add_cat_state(self, name: str, shape: tuple[int, ...] = ()) -> None:
        """Per-image float64 rows of trailing ``shape``, concatenated over updates and processes."""
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self._cat_shapes[name] = tuple(shape)

    def config(self) -> dict[str, Any]:
        """Settings that must match for two accumulators to merge (and that reports record)."""
        return {}

    def _add(self, name: str, value: torch.Tensor) -> None:
        state = getattr(self, name)
        setattr(self, name, state + value.detach().to(state.device, torch.float64))

    def _cat(self, name: str, values: torch.Tensor) -> None:
        rows = values.detach().to(torch.float64).reshape(-1, *self._cat_shapes[name])
        state = getattr(self, name)
        if isinstance(state, torch.Tensor):  # after a sync, a cat state is one tensor
            setattr(self, name, [state, rows])
        else:
            state.append(rows)

    # -- reading states ----------------------------------------------------------------------------
    def values(self, name: str) -> torch.Tensor:
        """All rows of the cat state ``name``, in update order (float64; empty if nothing was added)."""
        if name not in self._cat_shapes:
            known = sorted(self._cat_shapes)
            raise ValueError(f"{type(self).__name__} has no per-image state {name!r}; it has {known}")
        state = getattr(self, name)
        if isinstance(state, torch.Tensor):
            return state
        if not state:
            return torch.empty((0, *self._cat_shapes[name]), dtype=torch.float64, device=self.device)
        if len(state) > 1:
            state[:] = [torch.cat(state)]
        return state[0]

    def total(self, name: str) -> torch.Tensor:
        """The sum state ``name``."""
        if name not in self._defaults or name in self._cat_shapes:
            raise ValueError(f"{type(self).__name__} has no sum state {name!r}")
        return getattr(self, name)

    @property
    def count(self) -> int:
        """Number of images seen (rows of the first cat state; 0 for an accumulator without one)."""
        return int(self.values(next(iter(self._cat_shapes))).shape[0]) if self._cat_shapes else 0

    def summary(self, name: str, confidence: float = 0.95) -> Summary:
        """Mean and bootstrap CI of the cat state ``name``."""
        return summary_of(self.values(name), confidence)

    # -- combining ---------------------------------------------------------------------------------
    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s state to this one (same class and configuration); returns ``self``.

        TorchMetrics' ``merge_state``; per-image values keep the order ``self`` then ``other``.
        """
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.config() != self.config():
            raise ValueError(f"cannot merge accumulators with different settings: {self.config()} vs {other.config()}")
        mine = {name: self._state_for_merge(name) for name in self._defaults}
        for name in self._defaults:
            setattr(self, name, other._state_for_merge(name))
        self.merge_state(mine)  # incoming state first: ``mine`` + other's
        self._update_count += other._update_count
        self._computed = None
        return self

    def _state_for_merge(self, name: str) -> Any:
        if name in self._cat_shapes:
            return [self.values(name)]
        return getattr(self, name).clone()

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        for name, shape in self._cat_shapes.items():
            state = getattr(self, name)
            if isinstance(state, list) and not state:
                setattr(self, name, [torch.empty((0, *shape), dtype=torch.float64, device=self.device)])
        kwargs = {} if dist_sync_fn is None else {"dist_sync_fn": dist_sync_fn}
        try:
            super()._sync_dist(process_group=process_group, **kwargs)
        except RuntimeError as err:  # TorchMetrics gathers first, so every rank gets here: no hang
            raise ValueError(
                f"{type(self).__name__} states differ in shape between processes "
                f"(settings here: {self.config()}): {err}"
            ) from err
        for name in self._cat_shapes:  # a single gathered row comes back squeezed
            state = getattr(self, name)
            if isinstance(state, torch.Tensor):
                setattr(self, name, state.reshape(-1, *self._cat_shapes[name]))


class ValuesAccumulator(Accumulator):
    """Named per-image values, e.g. agreement with annotations or a between-recipe baseline.

    Args:
        names: the values it holds (each a per-image cat state).
    """

    def __init__(self, names: tuple[str, ...] | list[str]) -> None:
        super().__init__()
        self.names = tuple(names)
        for name in self.names:
            self.add_cat_state(name)

    def config(self) -> dict[str, Any]:
        return {"names": self.names}

    def update(self, name: str, values: torch.Tensor) -> None:
        """Add ``(B,)`` values to ``name``."""
        self._cat(name, values)

    def compute(self) -> dict[str, Summary | None]:
        """Summary of each name's values (None for a name that received none) and their ``n``."""
        return {name: self.summary(name) if self.values(name).numel() else None for name in self.names}
