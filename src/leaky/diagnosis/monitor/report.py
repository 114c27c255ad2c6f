"""The monitor's result: per-site and per-layer rows, a verdict, a table, a plot.

Rows are in forward order: the order in which sites and layers first ran in ``forward``.
The verdict is the first of these that applies:

* ``"non-finite"``: NaN or infinite values in the inputs, a layer's weight, an activation
  output, or a gradient. :attr:`MonitorReport.verdict_site` names where they first
  appear: the input, else the first weight or activation output in forward order that
  holds one, else (gradients only) the first site the backward pass reached, which is
  the last one in forward order;
* ``"dying"``: a site with at least ``dying_above`` (:data:`DYING_ABOVE`, a tenth, unless
  the monitor was given another) of its units dead, their local gradient 0 for every
  sample of the window: the units stopped learning for good, the first thing leaky exists
  to find. :attr:`MonitorReport.verdict_site` names the first such site in forward order;
* ``"saturated"``: a bounded activation (sigmoid, tanh, ...) with at least
  :data:`SATURATED_ABOVE` (half) of its outputs near a saturating bound (see
  :mod:`leaky.diagnosis.monitor.site_stats`); :attr:`MonitorReport.verdict_site` names the first
  such site in forward order. It comes before the gradient-flow verdict because it says
  where the gradient is lost (Glorot and Bengio's saturated top layer);
* gradient flow, from the RMS weight-gradient norm of the first layer in forward order
  divided by that of the last one: below :data:`VANISHING_BELOW` (1e-2, two orders of
  magnitude) ``"vanishing"``: the early layers barely learn (the deep sigmoid network's
  problem); above :data:`EXPLODING_ABOVE` (1e2) ``"exploding"``;
* otherwise ``"healthy"``; ``"unknown"`` when fewer than two layers saw a backward pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leaky.diagnosis.monitor.site_stats import SiteSummary

__all__ = [
    "DYING_ABOVE",
    "EXPLODING_ABOVE",
    "SATURATED_ABOVE",
    "VANISHING_BELOW",
    "LayerRow",
    "MonitorReport",
    "SiteRow",
]

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2
SATURATED_ABOVE = 0.5
DYING_ABOVE = 0.1  # share of a site's units dead from which the verdict is "dying"


@dataclass(frozen=True)
class SiteRow:
    """One activation site: its name in the model, its kind, and its statistics."""

    name: str
    kind: str
    functional: bool
    summary: SiteSummary
    order: int | None = None  # place of its first call in forward (sites and layers)


@dataclass(frozen=True)
class LayerRow:
    """One layer with a weight: RMS norm of the weight gradient (None: no backward seen)."""

    name: str
    grad_norm: float | None
    order: int | None = None  # place of its weight's first use in forward
    grad_nonfinite_passes: int = 0  # backward passes whose weight gradient held NaN or inf
    weight_nonfinite: bool = False  # the weight held NaN or inf when reported


def _fmt(value: float | None, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _share(fraction: float | None, decimals: int = 0) -> str:
    """A fraction as a percentage that never rounds a non-zero share to 0%.

    Nor a share short of all to 100%: one decimal below 1% and above 99%, then "<0.1%"
    and ">99.9%".

    Examples:
        >>> _share(0.005), _share(0.25), _share(0.0002), _share(0.0), _share(0.9996, 1)
        ('0.5%', '25%', '<0.1%', '0%', '>99.9%')
    """
    if fraction is None or math.isnan(fraction):
        return "-"
    if 0 < fraction < 0.01 or 0.99 < fraction < 1:
        decimals = max(decimals, 1)
    text = format(fraction, f".{decimals}%")
    if 0 < fraction < 1:
        smallest = 10.0 ** -(decimals + 2)
        if text == format(0.0, f".{decimals}%"):
            return "<" + format(smallest, f".{decimals}%")
        if text == format(1.0, f".{decimals}%"):
            return ">" + format(1 - smallest, f".{decimals}%")
    return text


@dataclass
class MonitorReport:
    """What :meth:`leaky.diagnosis.monitor.Monitor.report` returns."""

    sites: list[SiteRow]
    layers: list[LayerRow]
    batches: int
    not_run: list[str] = field(default_factory=list)
    functional_watched: bool = True

    not_monitored: list[str] = field(default_factory=list)
    input_nonfinite: int = 0  # forward passes whose input held NaN or inf
    saturation_margin: float = 0.05
    dying_above: float = DYING_ABOVE

    @property
    def gradient_ratio(self) -> float | None:
        """First layer's weight-gradient norm over the last layer's (None if unknown).

        NaN when the gradients hold NaN or infinite values.
        """
        norms = [row.grad_norm for row in self.layers if row.grad_norm is not None]
        if len(norms) < 2 or norms[-1] == 0:
            return None
        if not (math.isfinite(norms[0]) and math.isfinite(norms[-1])):
            return math.nan
        return norms[0] / norms[-1]

    @property
    def gradient_ratio_layers(self) -> tuple[str, str] | None:
        """The first and last layers (forward order) that :attr:`gradient_ratio` compares."""
        seen = [row.name for row in self.layers if row.grad_norm is not None]
        return (seen[0], seen[-1]) if len(seen) >= 2 else None

    @property
    def nonfinite_at(self) -> tuple[str, str] | None:
        """Where NaN or infinite values first appear, as (name, what), or None."""
        if self.input_nonfinite:
            return "input", "the model's input"
        forward: list[tuple[float, str, str]] = []
        backward: list[tuple[float, str, str]] = []
        for row in self.layers:
            place = math.inf if row.order is None else row.order
            if row.weight_nonfinite:
                forward.append((place, row.name, "weight"))
            if row.grad_nonfinite_passes:
                backward.append((place, row.name, "weight gradient"))
        for site in self.sites:
            place = math.inf if site.order is None else site.order
            if site.summary.nonfinite_batches:
                forward.append((place, site.name, "activation output"))
            if site.summary.grad_nonfinite_passes:
                backward.append((place, site.name, "gradient at the activation output"))
        if forward:
            _, name, what = min(forward, key=lambda item: item[0])
            return name, what
        if backward:
            _, name, what = max(backward, key=lambda item: item[0])
            return name, what
        return None

    @property
    def saturated_sites(self) -> list[str]:
        """Sites (forward order) with at least :data:`SATURATED_ABOVE` of outputs at a bound."""
        return [
            row.name
            for row in self.sites
            if row.summary.saturated_fraction is not None
            and row.summary.saturated_fraction >= SATURATED_ABOVE
        ]

    @property
    def dying_sites(self) -> list[str]:
        """Sites (forward order) with at least ``dying_above`` of their units dead."""
        return [
            row.name
            for row in self.sites
            if row.summary.dead_units and (row.summary.dead_fraction or 0.0) >= self.dying_above
        ]

    @property
    def verdict(self) -> str:
        """The first verdict that applies (see the module's docstring).

        One of ``"non-finite"``, ``"dying"``, ``"saturated"``, ``"vanishing"``,
        ``"exploding"``, ``"healthy"`` or ``"unknown"``.
        """
        if self.nonfinite_at is not None:
            return "non-finite"
        ratio = self.gradient_ratio
        if ratio is not None and math.isnan(ratio):
            return "non-finite"  # a non-finite norm the counts missed: never "healthy"
        if self.dying_sites:
            return "dying"
        if self.saturated_sites:
            return "saturated"
        if ratio is not None and ratio < VANISHING_BELOW:
            return "vanishing"
        if ratio is not None and ratio > EXPLODING_ABOVE:
            return "exploding"
        return "unknown" if ratio is None else "healthy"

    @property
    def verdict_site(self) -> str | None:
        """The site or layer the verdict names (non-finite, saturated), else None."""
        verdict = self.verdict
        if verdict == "non-finite":
            at = self.nonfinite_at
            return None if at is None else at[0]
        if verdict == "dying":
            return self.dying_sites[0]
        if verdict == "saturated":
            return self.saturated_sites[0]
        return None

    def verdict_sentence(self) -> str:
        """The verdict in one sentence, naming the site where it applies."""
        verdict = self.verdict
        ratio = self.gradient_ratio
        if verdict == "non-finite":
            at = self.nonfinite_at
            where = (
                "in the gradients"
                if at is None
                else (
                    "in the model's input"
                    if at[0] == "input"
                    else f"first at {at[0]!r} ({at[1]}, in forward order)"
                    if at[1] in ("weight", "activation output")
                    else f"first at {at[0]!r} ({at[1]}, the first reached by backward)"
                )
            )
            return f"non-finite: NaN or infinite values {where}"
        if verdict == "dying":
            name, *others = self.dying_sites
            row = next(r for r in self.sites if r.name == name)
            dead = len(row.summary.dead_units)
            return (
                f"dying: {_share(row.summary.dead_fraction)} of the units at {name!r} "
                f"({row.kind}) are dead ({dead} of {row.summary.units}: their gradient was 0 "
                f"for every sample; dying from {_share(self.dying_above)})"
                + (f"; also dying: {', '.join(others)}" if others else "")
                + f"; first/last layer gradient = {_fmt(ratio)}"
            )
        if verdict == "saturated":
            name = self.saturated_sites[0]
            row = next(r for r in self.sites if r.name == name)
            others = self.saturated_sites[1:]
            return (
                f"saturated: {name!r} ({row.kind}) has {_share(row.summary.saturated_fraction)} "
                f"of its outputs within {_share(self.saturation_margin)} of a bound of its "
                f"range (saturated from {_share(SATURATED_ABOVE)}), where little gradient "
                "passes"
                + (f"; also saturated: {', '.join(others)}" if others else "")
                + f"; first/last layer gradient = {_fmt(ratio)}"
            )
        return (
            f"{verdict}: first/last layer gradient = {_fmt(ratio)} (vanishing below "
            f"{VANISHING_BELOW:g}, exploding above {EXPLODING_ABOVE:g})"
        )

    @property
    def dead_units(self) -> dict[str, list[int]]:
        """Site name -> indices of its dead units (sites with none are left out)."""
        return {row.name: row.summary.dead_units for row in self.sites if row.summary.dead_units}

    @property
    def dormant_units(self) -> dict[str, list[int]]:
        """Site name -> indices of its τ-dormant units (sites with none are left out)."""
        return {
            row.name: row.summary.dormant_units for row in self.sites if row.summary.dormant_units
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values (NaN and infinities become None)."""
        return _finite_or_none(
            {
                "batches": self.batches,
                "sites": [
                    {
                        "name": row.name,
                        "kind": row.kind,
                        "functional": row.functional,
                        **asdict(row.summary),
                        "never_active_fraction": row.summary.never_active_fraction,
                        "dead_fraction": row.summary.dead_fraction,
                        "dormant_fraction": row.summary.dormant_fraction,
                        "near_zero_fraction": row.summary.near_zero_fraction,
                    }
                    for row in self.sites
                ],
                "layers": [asdict(row) for row in self.layers],
                "gradient_ratio": _json_number(self.gradient_ratio),
                "verdict": self.verdict,
                "verdict_site": self.verdict_site,
                "verdict_sentence": self.verdict_sentence(),
                "saturated_sites": self.saturated_sites,
                "input_nonfinite": self.input_nonfinite,
                "thresholds": {
                    "vanishing_below": VANISHING_BELOW,
                    "exploding_above": EXPLODING_ABOVE,
                    "saturated_above": SATURATED_ABOVE,
                    "dying_above": self.dying_above,
                },
                "not_run": self.not_run,
                "not_monitored": self.not_monitored,
                "functional_watched": self.functional_watched,
                "saturation_margin": self.saturation_margin,
            }
        )

    def __str__(self) -> str:
        if self.batches == 0:
            return (
                "The Monitor saw no forward pass of the model. Attach it before the model "
                "runs; under torch.compile, before the compiled model's first call, and call "
                "torch._dynamo.reset() first if another model of the same structure was "
                "compiled in this process (Dynamo may run that graph, without the hooks)."
            )
        header = ["site", "kind", "units", "unit dim", "never active", "dead", "dormant"]
        header += ["near 0", "saturated"]
        header += ["mean", "std", "|dL/dy|"]
        body = []
        cannot_die = False
        for row in self.sites:
            s = row.summary
            if s.dead is None:
                dead = "can't die"
                cannot_die = True
            else:
                dead = f"{s.dead} ({_share(s.dead_fraction)})"
            body.append(
                [
                    row.name + (" (fn)" if row.functional else ""),
                    row.kind,
                    str(s.units),
                    "-" if s.unit_dim is None else f"{s.unit_dim} ({s.unit_dim_from})",
                    f"{s.never_active} ({_share(s.never_active_fraction)})",
                    dead,
                    f"{len(s.dormant_units)} ({_share(s.dormant_fraction)})",
                    _share(s.near_zero_fraction, 1),
                    _share(s.saturated_fraction, 1),
                    _fmt(s.mean),
                    _fmt(s.std),
                    _fmt(s.output_grad_norm),
                ]
            )
        lines = [f"Activation sites ({self.batches} batches)", *_table(header, body)]
        if self.sites:
            tau = self.sites[0].summary.dormant_tau
            lines.append(
                "never active: output <= 0 for every sample; dead: local gradient 0 for every "
                f"sample; dormant: mean |output| at most {tau:g} of the site's mean (ReDo's "
                f"τ-dormant); near 0: outputs with |output| <= {self.sites[0].summary.near_zero:g}."
            )
        if cannot_die:
            lines.append(
                "can't die: a non-zero slope below zero passes gradient, so these units can be "
                "inactive but never dead."
            )
        if any(row.functional for row in self.sites):
            lines.append("(fn): called as a function inside forward, found by call order.")
        if self.sites:
            lines.append(
                "unit dim: the output dimension that holds the units, from the layer that "
                "produced the input (Linear, HF Conv1D: last; Conv, BatchNorm: 1);\n"
                "'default' (1) where no such layer was found, 'given' when set. "
                f"saturated: outputs within {_share(self.saturation_margin)} of the range "
                "from a bound."
            )
        defaulted = [row.name for row in self.sites if row.summary.unit_dim_from == "default"]
        if defaulted:
            lines.append(
                f"The unit dimension of {', '.join(defaulted)} could not be inferred (no "
                "Linear, Conv1D-like or Conv layer produced its input): if dimension 1 "
                "does not hold the features, set it with Monitor(model, unit_dim=...)."
            )
        if self.not_run:
            lines.append(f"Activation modules that never ran: {', '.join(self.not_run)}")
        if self.not_monitored:
            lines.append(
                "Not monitored (activations without a row in the spec table, and the gates "
                "of recurrent layers): " + ", ".join(self.not_monitored)
            )
        if not self.functional_watched:
            lines.append("Functional activation calls were not watched (functional=False).")
        if self.layers:
            lines += ["", "Layers (weight gradient norm, RMS over backward passes)"]
            lines += _table(
                ["layer", "|dL/dW|"], [[r.name, _fmt(r.grad_norm)] for r in self.layers]
            )
        ratio = self.gradient_ratio
        between = self.gradient_ratio_layers
        lines += [
            "",
            f"Gradient flow: first/last layer = {_fmt(ratio)} "
            + (f"({between[0]!r} / {between[1]!r}) " if between else "")
            + f"(vanishing below {VANISHING_BELOW:g}, exploding above {EXPLODING_ABOVE:g})",
            "Verdict: "
            + (
                self.verdict
                if self.verdict in ("vanishing", "exploding", "healthy", "unknown")
                else self.verdict_sentence()
            ),
        ]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Draw dead / never-active fraction per site and gradient norm against depth."""
        from leaky.diagnosis.monitor.plot import plot_monitor_report

        return plot_monitor_report(self, path)


def _json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _finite_or_none(value: Any) -> Any:
    # Strict JSON has no NaN: a diverged model's statistics are written as null.
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
