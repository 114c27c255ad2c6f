"""A minimal metric base: states with declared reductions, ``update`` / ``compute`` / ``reset``.

Shaped like torchmetrics' ``Metric``: each state is a tensor registered with how it merges
across windows and ranks (``"sum"`` for counts, ``"max"`` / ``"min"`` for extremes). When
``torch.distributed`` is initialised, :meth:`Metric.synced` reduces every state across ranks
first, so a unit is only called dead when no rank saw it active.

A state whose default is a Python ``int`` is a *host count*: a sum kept on the host, for
numbers known from shapes alone (samples, elements, passes). Adding to it costs no tensor
op and no device synchronisation; :meth:`Metric.state` hands it out as an int64 tensor on
the device of the other states, so it merges and reduces across ranks like any other.

On the CPU a tensor state can also take host numbers (:meth:`Metric.add_on_host`): reading a
0-dim result there costs less than a tensor op folding it in, so a batch's scalar sums and
extremes wait as Python numbers and are folded into their states, one op each, whenever
the states are read (:meth:`Metric.state`, :meth:`Metric.merge`, :meth:`Metric.to`).

Examples:
    >>> class Count(Metric):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.add_state("n", torch.zeros((), dtype=torch.int64), "sum")
    ...     def update(self, x):
    ...         self.n += x.numel()
    ...     def compute(self):
    ...         return int(self.synced()["n"])
    >>> c = Count(); c.update(torch.ones(3)); c.update(torch.ones(2)); c.compute()
    5
    >>> c.reset(); c.compute()
    0
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.distributed as dist

__all__ = ["Metric", "Reduction"]

Reduction = Literal["sum", "max", "min"]

_DIST_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN"}


class Metric:
    """Base class: subclasses call :meth:`add_state` and implement ``update`` / ``compute``."""

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._host_counts: dict[str, int] = {}
        self._reductions: dict[str, Reduction] = {}
        self._on_host: dict[str, float] = {}  # host numbers not yet in their tensor states

    def add_state(self, name: str, default: torch.Tensor | int, reduction: Reduction) -> None:
        """Register a state, its reset value and how it merges (an ``int``: a host count)."""
        if reduction not in _DIST_OPS:
            raise ValueError(f"Expected reduction sum, max or min, but got {reduction!r}")
        if isinstance(default, int):
            if reduction != "sum":
                raise ValueError(f"Expected a host count {name!r} to be summed, not {reduction}")
            self._host_counts[name] = default
            self._reductions[name] = reduction
            setattr(self, name, default)
            return
        self._defaults[name] = default.detach().clone()
        self._reductions[name] = reduction
        setattr(self, name, default.detach().clone())

    def add_on_host(self, name: str, value: float) -> None:
        """Fold a host number into tensor state ``name`` with its reduction, when next read.

        A NaN is kept by ``"max"`` and ``"min"`` as ``torch.maximum`` / ``torch.minimum`` keep it.

        Examples:
            >>> class Low(Metric):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.add_state("low", torch.tensor(math.inf), "min")
            >>> m = Low(); m.add_on_host("low", 3.0); m.add_on_host("low", 2.0)
            >>> float(m.state()["low"])
            2.0
        """
        old = self._on_host.get(name)
        reduction = self._reductions[name]
        if old is not None and reduction == "sum":
            value = old + value
        elif old is not None and not math.isnan(value):  # an old NaN stays: it compares False
            value = max(old, value) if reduction == "max" else min(old, value)
        self._on_host[name] = value

    def add_sum(self, name: str, value: torch.Tensor) -> None:
        """Add a 0-dim result to the summed state ``name``: on the CPU as a host number.

        Reading it there (see :meth:`add_on_host`) costs less than a tensor op adding it;
        elsewhere it is added on the device, with no wait for it.

        Examples:
            >>> class Total(Metric):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.add_state("total", torch.zeros(()), "sum")
            >>> m = Total()
            >>> m.add_sum("total", torch.tensor(2.5)); m.add_sum("total", torch.tensor(1.0))
            >>> float(m.state()["total"])
            3.5
        """
        if value.is_cpu:
            self.add_on_host(name, value.item())
        else:
            getattr(self, name).add_(value)

    def _fold_host(self) -> None:
        # Host numbers into their tensor states: one in-place op each.
        for name, value in self._on_host.items():
            state, reduction = getattr(self, name), self._reductions[name]
            if reduction == "sum":
                state.add_(value)
            elif reduction == "max":
                state.clamp_(min=value)  # a NaN bound makes the state NaN
            else:
                state.clamp_(max=value)
        self._on_host.clear()

    def to(self, device: torch.device | str) -> Metric:
        """Move every tensor state (and its reset value) to ``device``."""
        self._fold_host()
        for name in self._defaults:
            self._defaults[name] = self._defaults[name].to(device)
            setattr(self, name, getattr(self, name).to(device))
        return self

    def reset(self) -> None:
        """Return every state to its default (start a new window)."""
        self._on_host.clear()
        for name, default in self._defaults.items():
            setattr(self, name, default.clone().to(getattr(self, name).device))
        for name, count in self._host_counts.items():
            setattr(self, name, count)

    def _device(self) -> torch.device:
        for name in self._defaults:
            return getattr(self, name).device
        return torch.device("cpu")

    def state(self) -> dict[str, torch.Tensor]:
        """The current local states (this rank only); host counts as int64 tensors."""
        self._fold_host()
        device = self._device()
        return {
            name: (
                torch.tensor(getattr(self, name), dtype=torch.int64, device=device)
                if name in self._host_counts
                else getattr(self, name)
            )
            for name in self._reductions
        }

    def merge(self, other: Metric) -> None:
        """Fold another metric's states into this one, with the declared reductions."""
        self._fold_host()
        other._fold_host()
        for name, reduction in self._reductions.items():
            if name in self._host_counts:
                setattr(self, name, getattr(self, name) + getattr(other, name))
                continue
            mine, theirs = getattr(self, name), getattr(other, name).to(getattr(self, name).device)
            if reduction == "sum":
                setattr(self, name, mine + theirs)
            elif reduction == "max":
                setattr(self, name, torch.maximum(mine, theirs))
            else:
                setattr(self, name, torch.minimum(mine, theirs))

    def synced(self) -> dict[str, torch.Tensor]:
        """States reduced across ranks when ``torch.distributed`` is initialised.

        The local states are not changed, so ``compute`` can be called at any time.
        """
        states = {name: value.clone() for name, value in self.state().items()}
        if dist.is_available() and dist.is_initialized():
            for name, value in states.items():
                op = getattr(dist.ReduceOp, _DIST_OPS[self._reductions[name]])
                dist.all_reduce(value, op=op)
        return states
