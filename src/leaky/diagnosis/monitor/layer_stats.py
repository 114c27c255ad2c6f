"""Per-layer gradient statistics: the norm of a weight's gradient, over backward passes."""

from __future__ import annotations

import math

import torch

from leaky.diagnosis.monitor.metric import Metric
from leaky.diagnosis.monitor.reductions import (
    host_squared_norm_and_nonfinite,
    squared_norm_and_nonfinite,
)

__all__ = ["LayerGradientStatistics", "add_squared_norm"]


def add_squared_norm(metric: Metric, t: torch.Tensor, squared: str, nonfinite: str) -> None:
    """Add ``t``'s squared norm to state ``squared`` and 1 to ``nonfinite`` if it held NaN / inf.

    The metric's states move to ``t``'s device first. On the CPU both are read as host
    numbers (see :meth:`Metric.add_on_host`); elsewhere they stay on the device.

    Examples:
        >>> stats = LayerGradientStatistics()
        >>> add_squared_norm(stats, torch.tensor([3.0, 4.0]), "grad_sq", "nonfinite_passes")
        >>> float(stats.state()["grad_sq"])
        25.0
    """
    if getattr(metric, squared).device != t.device:
        metric.to(t.device)
    if t.is_cpu:
        value, bad = host_squared_norm_and_nonfinite(t)
        metric.add_on_host(squared, value)
        if bad:
            metric.add_on_host(nonfinite, 1)
        return
    value_on_device, bad_on_device = squared_norm_and_nonfinite(t)
    getattr(metric, squared).add_(value_on_device)
    getattr(metric, nonfinite).add_(bad_on_device)


class LayerGradientStatistics(Metric):
    """Sum of squared weight-gradient norms, backward passes, and passes with NaN or inf.

    :meth:`compute` returns the root mean square of the norms (None before any backward).

    Examples:
        >>> stats = LayerGradientStatistics()
        >>> stats.update(torch.tensor([3.0, 4.0])); stats.compute()
        5.0
    """

    def __init__(self) -> None:
        super().__init__()
        self.add_state("grad_sq", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("passes", 0, "sum")  # a host count: no tensor op per pass
        self.add_state("nonfinite_passes", torch.zeros((), dtype=torch.int64), "sum")

    def update(self, grad: torch.Tensor | None) -> None:
        """Add the gradient of one backward pass."""
        if grad is None:
            return
        self.passes += 1
        add_squared_norm(self, grad.detach(), "grad_sq", "nonfinite_passes")

    def compute(self) -> float | None:
        """RMS of the gradient norm over the window."""
        s = self.synced()
        passes = int(s["passes"])
        return math.sqrt(float(s["grad_sq"]) / passes) if passes else None

    def nonfinite_passes_count(self) -> int:
        """Backward passes in the window whose gradient held NaN or inf."""
        return int(self.synced()["nonfinite_passes"])
