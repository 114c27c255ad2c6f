"""Per-layer gradient statistics: the norm of a weight's gradient, over backward passes."""

from __future__ import annotations

import math

import torch

from leaky.diagnosis.monitor.metric import Metric
from leaky.diagnosis.monitor.reductions import squared_norm_and_nonfinite

__all__ = ["LayerGradientStatistics"]


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
        if self.grad_sq.device != grad.device:
            self.to(grad.device)
        squared, nonfinite = squared_norm_and_nonfinite(grad.detach())
        self.grad_sq.add_(squared)
        self.passes += 1
        self.nonfinite_passes.add_(nonfinite)

    def compute(self) -> float | None:
        """RMS of the gradient norm over the window."""
        s = self.synced()
        passes = int(s["passes"])
        return math.sqrt(float(s["grad_sq"]) / passes) if passes else None

    def nonfinite_passes_count(self) -> int:
        """Backward passes in the window whose gradient held NaN or inf."""
        return int(self.synced()["nonfinite_passes"])
