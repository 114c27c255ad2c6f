"""``LeakyMonitor``: dead units, saturation and gradient flow in a Lightning fit, one line.

    import lightning as L
    from leaky.integrations.lightning import LeakyMonitor

    trainer = L.Trainer(callbacks=[LeakyMonitor()])
    trainer.fit(model, data)

The callback attaches a :class:`~leaky.diagnosis.monitor.Monitor` to the LightningModule
when fitting starts and detaches it at the end. Every ``log_every_n_steps`` optimizer
steps (the trainer's own setting unless given) it logs compact scalars through the
trainer's loggers, under one prefix (see :mod:`leaky.integrations.step_watch`): per
site the dead, never-active and saturated fractions; per layer the gradient norm before
clipping (Lightning calls ``on_before_optimizer_step`` before it clips) and the update's
size over the weight's; the first/last layer gradient ratio. Under gradient accumulation
a point counts optimizer steps, not micro-batches; under DDP every rank computes the
report (the Monitor reduces across ranks) and the loggers write rank 0's. Its history
(the steps logged, the sites warned about) is saved in checkpoints, so a resumed fit
goes on. At the end it prints the verdict and keeps the report (``.report``).

Needs ``pip install 'leaky[lightning]'``.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:  # pragma: no cover - the extra is installed by make test
    raise ImportError(
        "leaky.integrations.lightning needs Lightning; install it with: "
        "pip install 'leaky[lightning]'"
    ) from error

from leaky.diagnosis.monitor import DYING_ABOVE, MonitorReport
from leaky.integrations.step_watch import (
    DeadUnitsWarning,
    RecycleWarning,
    StepWatch,
    WatchSettings,
)

__all__ = ["DeadUnitsWarning", "LeakyMonitor", "RecycleWarning"]


class LeakyMonitor(pl.Callback):
    """A Lightning callback that runs leaky's Monitor through a fit and logs what it sees.

    Args:
        log_every_n_steps: optimizer steps per logged point. Default: the trainer's
            ``log_every_n_steps``
        prefix: the first part of every scalar's name. Default: ``"leaky"``
        layers: a regular expression: only sites and layers whose name it matches are
            logged and warned about. Default: all
        dead_above: the dead share that warns (once per site). Default: 0.1
        verbose: print the verdict when fitting ends (rank 0). Default: ``True``
        recycle_every: recycle the dead units (ReDo) every this many optimizer steps, at a
            logged point, resetting the first optimizer's state there (see
            :mod:`leaky.integrations.step_watch`). Default: None (never)
        recycle_units: ``"dead"`` or ``"dormant"``. Default: ``"dead"``
        monitor_options: passed to :class:`~leaky.diagnosis.monitor.Monitor` (``every``,
            ``unit_dim``...).

    Attributes:
        report: the :class:`~leaky.diagnosis.monitor.MonitorReport` of the fit's last
            window, once fitting has ended (None before).
        watch: the :class:`~leaky.integrations.step_watch.StepWatch` while fitting.
    """

    def __init__(
        self,
        *,
        log_every_n_steps: int | None = None,
        prefix: str = "leaky",
        layers: str | None = None,
        dead_above: float = DYING_ABOVE,
        verbose: bool = True,
        recycle_every: int | None = None,
        recycle_units: str = "dead",
        **monitor_options: Any,
    ) -> None:
        super().__init__()
        self.settings = WatchSettings(
            log_every_n_steps,
            prefix,
            layers,
            dead_above,
            verbose,
            monitor_options,
            "the trainer's log_every_n_steps",
            recycle_every,
            recycle_units,
        )
        self.watch: StepWatch | None = None
        self.report: MonitorReport | None = None
        self._restored: dict[str, Any] | None = None
        self._stepped = False

    @property
    def state_key(self) -> str:
        """The checkpoint key of this callback's state."""
        return self._generate_state_key(prefix=self.settings.prefix)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Attach the Monitor to the module being fitted."""
        self.watch = self.settings.watch(pl_module, trainer.log_every_n_steps, self._restored)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        """Read the step's gradients, accumulated and not yet clipped."""
        if self.watch is not None:
            self.watch.before_optimizer_step(trainer.global_step)
            self._stepped = True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        """After an optimizer step: log a point when one is due."""
        if self.watch is None or not self._stepped:
            return
        self._stepped = False
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        metrics = self.watch.after_optimizer_step(trainer.global_step - 1, optimizer)
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Detach, keep the report and print its verdict."""
        self._finish(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Detach the hooks even when the fit fails."""
        if self.watch is not None:
            self.watch.monitor.detach()

    def _finish(self, trainer: pl.Trainer) -> None:
        if self.watch is None:
            return
        self.report = self.watch.finish()
        self._restored = self.watch.state_dict()
        self.settings.announce(self.report, trainer.is_global_zero)

    def state_dict(self) -> dict[str, Any]:
        """The steps logged and the sites warned about, for the checkpoint."""
        if self.watch is not None:
            return self.watch.state_dict()
        return dict(self._restored or {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Go on from a checkpoint: the history continues, no site is warned about twice."""
        self._restored = dict(state_dict)
        if self.watch is not None:
            self.watch.load_state_dict(self._restored)
