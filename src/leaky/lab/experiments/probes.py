"""Dead and never-active fractions of a model on a probe batch, through the Monitor."""

from __future__ import annotations

import torch
from torch import nn

from leaky.diagnosis.monitor import Monitor

__all__ = ["dormant_units", "unit_fractions"]


@torch.no_grad()
def unit_fractions(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(dead fraction, never-active fraction) over all hidden units, on inputs ``x``.

    Units that cannot die (a non-zero slope below zero) count as not dead.
    """
    was_training = model.training
    model.eval()
    with Monitor(model, gradients=False, bins=0) as monitor:
        model(x)
    model.train(was_training)
    units = dead = never = 0
    for row in monitor.report().sites:
        units += row.summary.units
        dead += row.summary.dead or 0
        never += row.summary.never_active
    return (dead / units, never / units) if units else (0.0, 0.0)


@torch.no_grad()
def dormant_units(model: nn.Module, x: torch.Tensor, tau: float) -> dict[str, list[int]]:
    """Site name -> its τ-dormant units on inputs ``x`` (ReDo's score; τ = 0: the dead)."""
    was_training = model.training
    model.eval()
    with Monitor(model, gradients=False, bins=0, every=1, dormant_tau=tau) as monitor:
        model(x)
    model.train(was_training)
    report = monitor.report()
    return report.dormant_units if tau > 0 else report.dead_units
