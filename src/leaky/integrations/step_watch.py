"""The Monitor driven by optimizer steps: what the Lightning and Hugging Face callbacks share.

A trainer calls :meth:`StepWatch.before_optimizer_step` once the gradients of a step are
complete (all its micro-batches accumulated) and before they are clipped, and
:meth:`StepWatch.after_optimizer_step` once the optimizer has stepped. Every
``log_every`` optimizer steps the second returns compact scalars, one name each:

- per activation site: ``{prefix}/{site}/dead_fraction`` (local gradient 0 for every
  sample), ``never_active_fraction`` (output <= 0 for every sample),
  ``dormant_fraction`` (ReDo's τ-dormant units, τ = the Monitor's ``dormant_tau``),
  ``near_zero_fraction`` (outputs with |output| <= the Monitor's ``near_zero``) and
  ``saturated_fraction``, over the forward passes since the last point (definitions in
  :mod:`leaky.diagnosis.monitor.site_stats`);
- per layer: ``{prefix}/{layer}/grad_norm`` (the gradient's norm before any clipping) and
  ``{prefix}/{layer}/update_ratio`` (how far the step moved the weight, over its norm);
- ``{prefix}/gradient_ratio`` (first over last layer's gradient norm).

With ``recycle_every``, the units of the window's report that are dead (or τ-dormant,
``recycle_units="dormant"``) are recycled at the first point at least that many steps after
the last recycling (:func:`leaky.diagnosis.repair.recycle`, ReDo: new incoming weights,
zero outgoing ones, the optimizer's state there reset), traced on the last forward pass's
input; ``{prefix}/recycled_units`` counts them. A site ``recycle`` refuses (no single layer
before and after it) is named once in a :class:`RecycleWarning` and left as it is.

Then the Monitor starts a new window. Once per site, a warning says when its dead
fraction first reaches ``dead_above``. ``layers`` (a regular expression, searched in each
site's and layer's name) narrows what is logged and warned about; the Monitor watches
the whole model either way, so a verdict sees everything.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky.diagnosis.monitor import DYING_ABOVE, Monitor, MonitorReport
from leaky.diagnosis.repair import RecycleError, recycle

__all__ = [
    "DeadUnitsWarning",
    "RecycleWarning",
    "StepWatch",
    "WatchSettings",
    "check_pattern",
    "check_recycling",
]


@dataclass(frozen=True)
class WatchSettings:
    """What a callback was asked for: checked when it is made, used when training starts.

    ``log_every_n_steps`` None takes the trainer's own setting; ``default`` names that
    setting in the refusal's words.
    """

    log_every_n_steps: int | None
    prefix: str
    layers: str | None
    dead_above: float
    verbose: bool
    monitor_options: dict[str, Any]
    default: str
    recycle_every: int | None = None
    recycle_units: str = "dead"

    def __post_init__(self) -> None:
        check_recycling(self.recycle_every, self.recycle_units)
        steps = self.log_every_n_steps
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
        ):
            raise ValueError(
                f"Expected log_every_n_steps to be an integer >= 1 (or None: {self.default}), "
                f"but got {steps!r}"
            )
        check_pattern(self.layers)

    def watch(
        self, model: torch.nn.Module, trainer_every: int, state: dict[str, Any] | None = None
    ) -> StepWatch:
        """A started :class:`StepWatch` on ``model``, going on from ``state`` if given."""
        every = trainer_every if self.log_every_n_steps is None else self.log_every_n_steps
        watch = StepWatch(
            model,
            log_every=every,
            prefix=self.prefix,
            layers=self.layers,
            dead_above=self.dead_above,
            recycle_every=self.recycle_every,
            recycle_units=self.recycle_units,
            **self.monitor_options,
        )
        if state is not None:
            watch.load_state_dict(state)
        watch.start()
        return watch

    def announce(self, report: MonitorReport, first_process: bool) -> None:
        """Print the verdict at the end of training (once, on the first process)."""
        if self.verbose and first_process:
            print(f"leaky: {report.verdict_sentence()}")


def check_pattern(layers: str | None) -> re.Pattern[str] | None:
    """``layers`` compiled, or a ``ValueError`` that says what is wrong with it."""
    try:
        return None if layers is None else re.compile(layers)
    except (re.error, TypeError) as error:
        raise ValueError(
            f"Expected layers to be a regular expression, but {layers!r} is not: {error}"
        ) from None


def check_recycling(every: int | None, units: str) -> None:
    """A ``ValueError`` naming what is wrong with ``recycle_every`` or ``recycle_units``."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ValueError(
            f"Expected recycle_every to be an integer >= 1 (optimizer steps) or None (never), "
            f"but got {every!r}"
        )
    if units not in ("dead", "dormant"):
        raise ValueError(f"Expected recycle_units to be 'dead' or 'dormant', but got {units!r}")


class DeadUnitsWarning(UserWarning):
    """A site's share of dead units reached the threshold (once per site)."""


class RecycleWarning(UserWarning):
    """A site's units cannot be recycled (the reason is given); once per site."""


@dataclass
class _History:
    steps: list[int] = field(default_factory=list)  # optimizer steps with a point
    warned: list[str] = field(default_factory=list)  # sites warned about, in order
    recycled_at: int = 0  # optimizer steps when units were last recycled
    refused: list[str] = field(default_factory=list)  # sites recycle refused, warned once


class StepWatch:
    """A :class:`~leaky.diagnosis.monitor.Monitor` on ``model``, read per optimizer step.

    Args:
        model: the module to watch (attached by :meth:`start`).
        log_every: optimizer steps per point. Default: 50
        prefix: the first part of every scalar's name. Default: ``"leaky"``
        layers: a regular expression; only sites and layers whose name it matches (by
            ``re.search``) are logged and warned about. Default: all
        dead_above: the dead share that raises a :class:`DeadUnitsWarning`, once per
            site. Default: 0.1, the Monitor's "dying" threshold
        recycle_every: recycle the dead (or dormant) units at the first point at least
            this many optimizer steps after the last recycling. Default: None (never)
        recycle_units: ``"dead"`` or ``"dormant"`` (τ-dormant, the Monitor's
            ``dormant_tau``). Default: ``"dead"``
        monitor_options: passed to :class:`~leaky.diagnosis.monitor.Monitor` (``every``,
            ``unit_dim``, ``functional``...).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        log_every: int = 50,
        prefix: str = "leaky",
        layers: str | None = None,
        dead_above: float = DYING_ABOVE,
        recycle_every: int | None = None,
        recycle_units: str = "dead",
        **monitor_options: Any,
    ) -> None:
        check_recycling(recycle_every, recycle_units)
        if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"Expected log_every to be an integer >= 1, but got {log_every!r}")
        if not 0 < dead_above <= 1:
            raise ValueError(f"Expected dead_above in (0, 1], but got {dead_above!r}")
        self.pattern = check_pattern(layers)
        self.monitor = Monitor(model, dying_above=dead_above, **monitor_options)
        self.recycle_every, self.recycle_units = recycle_every, recycle_units
        self.monitor.keep_last_input = recycle_every is not None
        self.log_every = log_every
        self.prefix = prefix.rstrip("/")
        self.dead_above = dead_above
        self.history = _History()
        self.last_report: MonitorReport | None = None
        self._grad_norms: dict[str, float] = {}
        self._before_step: dict[str, torch.Tensor] = {}

    def _chosen(self, name: str) -> bool:
        return self.pattern is None or self.pattern.search(name) is not None

    def start(self) -> None:
        """Attach the Monitor (idempotent)."""
        self.monitor.attach()

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: w for k, w in self.monitor.layer_weights.items() if self._chosen(k)}

    def logs_at(self, step: int) -> bool:
        """Whether optimizer step ``step`` (counted from 0) ends a point."""
        return (step + 1) % self.log_every == 0

    def weights(self) -> dict[str, torch.Tensor]:
        """The chosen layers' weight matrices, by layer name."""
        return self._weights()

    def before_optimizer_step(self, step: int, grad_norms: dict[str, float] | None = None) -> None:
        """The gradients of optimizer step ``step`` (counted from 0) are complete.

        ``grad_norms``: the layers' gradient norms read before any clipping, where the
        caller's trainer clips before it can call this; else they are read here.
        """
        if not self.logs_at(step):
            return
        self._before_step = {}
        if grad_norms is not None:
            self._grad_norms = dict(grad_norms)
        else:
            self._grad_norms = {}
            for name, weight in self._weights().items():
                if weight.grad is not None:
                    norm = torch.linalg.vector_norm(weight.grad.detach().float())
                    self._grad_norms[name] = float(norm)
        for name, weight in self._weights().items():
            self._before_step[name] = weight.detach().clone()

    def after_optimizer_step(
        self, step: int, optimizer: torch.optim.Optimizer | None = None
    ) -> dict[str, float] | None:
        """The optimizer took step ``step``: its scalars when it ends a point, else None.

        ``optimizer``: the one whose state recycling resets (with ``recycle_every``).
        """
        if not self.logs_at(step):
            return None
        report = self.monitor.report()
        self.monitor.reset()
        self.last_report = report
        metrics: dict[str, float] = {}
        for row in report.sites:
            if not self._chosen(row.name):
                continue
            summary = row.summary
            tag = f"{self.prefix}/{row.name}"
            values = {
                "dead_fraction": summary.dead_fraction,
                "never_active_fraction": summary.never_active_fraction,
                "dormant_fraction": summary.dormant_fraction,
                "near_zero_fraction": summary.near_zero_fraction,
                "saturated_fraction": summary.saturated_fraction,
            }
            metrics.update({f"{tag}/{k}": float(v) for k, v in values.items() if v is not None})
            dead = summary.dead_fraction
            if dead is not None and dead >= self.dead_above and row.name not in self.history.warned:
                self.history.warned.append(row.name)
                warnings.warn(
                    f"{dead:.0%} of the units at {row.name!r} ({row.kind}) were dead over the "
                    f"last {self.log_every} optimizer steps (step {step + 1}); dying from "
                    f"{self.dead_above:.0%}. This warning is given once per site.",
                    DeadUnitsWarning,
                    stacklevel=2,
                )
        for name, norm in self._grad_norms.items():
            metrics[f"{self.prefix}/{name}/grad_norm"] = norm
        weights = self._weights()
        for name, old in self._before_step.items():
            scale = float(torch.linalg.vector_norm(old.float()))
            moved = float(torch.linalg.vector_norm((weights[name].detach() - old).float()))
            if scale > 0:
                metrics[f"{self.prefix}/{name}/update_ratio"] = moved / scale
        if report.gradient_ratio is not None and math.isfinite(report.gradient_ratio):
            metrics[f"{self.prefix}/gradient_ratio"] = float(report.gradient_ratio)
        self._before_step = {}
        self.history.steps.append(step + 1)
        every = self.recycle_every
        if every is not None and step + 1 - self.history.recycled_at >= every:
            metrics[f"{self.prefix}/recycled_units"] = float(self._recycle(report, optimizer))
            self.history.recycled_at = step + 1
        return metrics

    def _recycle(self, report: MonitorReport, optimizer: torch.optim.Optimizer | None) -> int:
        # The window's dead (or dormant) units, site by site, traced on the last pass.
        last = self.monitor.last_input
        chosen = report.dormant_units if self.recycle_units == "dormant" else report.dead_units
        if last is None or not chosen:
            return 0
        module, args, kwargs = last
        example: Any = kwargs if kwargs and not args else args
        names = {id(m): n for n, m in self.monitor.model.named_modules()}
        scope = names.get(id(module), "")
        count = 0
        for site, units in chosen.items():
            inside = not scope or site.startswith(scope + ".")
            if not self._chosen(site) or not inside or site in self.history.refused:
                continue
            local = site[len(scope) + 1 :] if scope else site
            try:
                done = recycle(module, {local: units}, example, optimizer=optimizer)
            except RecycleError as error:
                self.history.refused.append(site)
                warnings.warn(f"{error} (not recycled again)", RecycleWarning, stacklevel=3)
                continue
            count += sum(len(change.units) for change in done)
        return count

    def finish(self) -> MonitorReport:
        """Detach the Monitor; the report of the steps since the last point (or all of them)."""
        self.monitor.detach()
        report = self.monitor.report()
        if report.batches == 0 and self.last_report is not None:
            report = self.last_report
        self.last_report = report
        return report

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the steps with a point, the sites warned about, recycling."""
        return {
            "steps": list(self.history.steps),
            "warned": list(self.history.warned),
            "recycled_at": self.history.recycled_at,
            "refused": list(self.history.refused),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a checkpoint's :meth:`state_dict`."""
        self.history = _History(
            list(state.get("steps", [])),
            list(state.get("warned", [])),
            int(state.get("recycled_at", 0)),
            list(state.get("refused", [])),
        )
