"""The monitor's result: per-site and per-layer rows, a gradient-flow verdict, a table, a plot.

Gradient-flow verdict. Layers are ordered by when they first ran in ``forward``. The ratio
is the RMS weight-gradient norm of the first layer divided by that of the last one:

* below :data:`VANISHING_BELOW` (1e-2, two orders of magnitude): ``"vanishing"``: the
  early layers barely learn (the deep sigmoid network's problem);
* above :data:`EXPLODING_ABOVE` (1e2): ``"exploding"``;
* otherwise ``"healthy"``; ``"unknown"`` when fewer than two layers saw a backward pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leaky.monitor.site_stats import SiteSummary

__all__ = ["EXPLODING_ABOVE", "VANISHING_BELOW", "LayerRow", "MonitorReport", "SiteRow"]

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2


@dataclass(frozen=True)
class SiteRow:
    """One activation site: its name in the model, its kind, and its statistics."""

    name: str
    kind: str
    functional: bool
    summary: SiteSummary


@dataclass(frozen=True)
class LayerRow:
    """One layer with a weight: RMS norm of the weight gradient (None: no backward seen)."""

    name: str
    grad_norm: float | None


def _fmt(value: float | None, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


@dataclass
class MonitorReport:
    """What :meth:`leaky.monitor.Monitor.report` returns."""

    sites: list[SiteRow]
    layers: list[LayerRow]
    batches: int
    not_run: list[str] = field(default_factory=list)
    functional_watched: bool = True

    @property
    def gradient_ratio(self) -> float | None:
        """First layer's weight-gradient norm over the last layer's (None if unknown)."""
        norms = [row.grad_norm for row in self.layers if row.grad_norm is not None]
        if len(norms) < 2 or norms[-1] == 0:
            return None
        return norms[0] / norms[-1]

    @property
    def verdict(self) -> str:
        """``"vanishing"``, ``"exploding"``, ``"healthy"`` or ``"unknown"``."""
        ratio = self.gradient_ratio
        if ratio is None:
            return "unknown"
        if ratio < VANISHING_BELOW:
            return "vanishing"
        if ratio > EXPLODING_ABOVE:
            return "exploding"
        return "healthy"

    @property
    def dead_units(self) -> dict[str, list[int]]:
        """Site name -> indices of its dead units (sites with none are left out)."""
        return {row.name: row.summary.dead_units for row in self.sites if row.summary.dead_units}

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values."""
        return {
            "batches": self.batches,
            "sites": [
                {
                    "name": row.name,
                    "kind": row.kind,
                    "functional": row.functional,
                    **asdict(row.summary),
                    "never_active_fraction": row.summary.never_active_fraction,
                    "dead_fraction": row.summary.dead_fraction,
                }
                for row in self.sites
            ],
            "layers": [asdict(row) for row in self.layers],
            "gradient_ratio": self.gradient_ratio,
            "verdict": self.verdict,
            "thresholds": {"vanishing_below": VANISHING_BELOW, "exploding_above": EXPLODING_ABOVE},
            "not_run": self.not_run,
            "functional_watched": self.functional_watched,
        }

    def __str__(self) -> str:
        header = ["site", "kind", "units", "never active", "dead", "saturated", "mean", "std"]
        header.append("|dL/dy|")
        body = []
        cannot_die = False
        for row in self.sites:
            s = row.summary
            if s.dead is None:
                dead = "can't die"
                cannot_die = True
            else:
                dead = f"{s.dead} ({s.dead_fraction:.0%})"
            body.append(
                [
                    row.name + (" (fn)" if row.functional else ""),
                    row.kind,
                    str(s.units),
                    f"{s.never_active} ({s.never_active_fraction:.0%})",
                    dead,
                    _fmt(s.saturated_fraction, ".1%"),
                    _fmt(s.mean),
                    _fmt(s.std),
                    _fmt(s.output_grad_norm),
                ]
            )
        lines = [f"Activation sites ({self.batches} batches)", *_table(header, body)]
        if cannot_die:
            lines.append(
                "can't die: a non-zero slope below zero passes gradient, so these units can be "
                "inactive but never dead."
            )
        if any(row.functional for row in self.sites):
            lines.append("(fn): called as a function inside forward, found by call order.")
        if self.not_run:
            lines.append(f"Activation modules that never ran: {', '.join(self.not_run)}")
        if not self.functional_watched:
            lines.append("Functional activation calls were not watched (functional=False).")
        if self.layers:
            lines += ["", "Layers (weight gradient norm, RMS over backward passes)"]
            lines += _table(
                ["layer", "|dL/dW|"], [[r.name, _fmt(r.grad_norm)] for r in self.layers]
            )
        ratio = self.gradient_ratio
        lines += [
            "",
            f"Gradient flow: first/last layer = {_fmt(ratio)} -> {self.verdict} "
            f"(vanishing below {VANISHING_BELOW:g}, exploding above {EXPLODING_ABOVE:g})",
        ]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Draw dead / never-active fraction per site and gradient norm against depth."""
        from leaky.report.monitor_plot import plot_monitor_report

        return plot_monitor_report(self, path)


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
