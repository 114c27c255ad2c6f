"""``LeakyTrainerCallback``: the Monitor in a Hugging Face ``Trainer``, its scalars in the logs.

    from transformers import Trainer
    from leaky.integrations.hugging_face import add_monitor

    trainer = Trainer(model=model, args=args, train_dataset=data)
    callback = add_monitor(trainer)  # first among the callbacks: see below
    trainer.train()
    print(callback.report)

The callback attaches a :class:`~leaky.diagnosis.monitor.Monitor` when training begins
and detaches it at the end. Every ``log_every_n_steps`` optimizer steps (the Trainer's
``logging_steps`` unless given) it puts compact scalars (see
:mod:`leaky.integrations.step_watch`) into the ``logs`` the Trainer hands to every
``report_to`` backend (TensorBoard, W&B, MLflow...), asking the Trainer to log at that
step if it would not have. The layers' gradient norms are the ones before clipping: the
Trainer clips before any callback runs (``on_pre_optimizer_step`` comes after), so the
callback reads each weight's gradient as it is accumulated, and under gradient
accumulation a point counts optimizer steps, not micro-batches.

Why :func:`add_monitor`: the Trainer calls its callbacks in order, the ``report_to``
backends first, then those passed as ``callbacks=``. A callback passed that way adds its
scalars after the backends have written theirs, so they reach only
``trainer.state.log_history``; it says so once, with a warning. :func:`add_monitor`
puts the callback first.

Needs ``pip install 'leaky[hf]'``.
"""

from __future__ import annotations

import warnings
from typing import Any

try:
    from transformers import Trainer, TrainerCallback
except ImportError as error:  # pragma: no cover - the extra is installed by make test
    raise ImportError(
        "leaky.integrations.hugging_face needs transformers; install it with: "
        "pip install 'leaky[hf]'"
    ) from error

import torch

from leaky.diagnosis.monitor import DYING_ABOVE, MonitorReport
from leaky.integrations.step_watch import (
    DeadUnitsWarning,
    RecycleWarning,
    StepWatch,
    WatchSettings,
)

__all__ = ["DeadUnitsWarning", "LeakyTrainerCallback", "RecycleWarning", "add_monitor"]


class LeakyTrainerCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that runs leaky's Monitor through training.

    Args:
        log_every_n_steps: optimizer steps per point. Default: the Trainer's
            ``logging_steps``
        prefix: the first part of every scalar's name. Default: ``"leaky"``
        layers: a regular expression: only sites and layers whose name it matches are
            logged and warned about. Default: all
        dead_above: the dead share that warns (once per site). Default: 0.1
        verbose: print the verdict when training ends. Default: ``True``
        recycle_every: recycle the dead units (ReDo) every this many optimizer steps, at a
            logged point, resetting the Trainer's optimizer state there (see
            :mod:`leaky.integrations.step_watch`; GPT-2's ``Conv1D`` layers are not a
            ``Linear`` and are refused, named once). Default: None (never)
        recycle_units: ``"dead"`` or ``"dormant"``. Default: ``"dead"``
        monitor_options: passed to :class:`~leaky.diagnosis.monitor.Monitor`.

    Attributes:
        report: the last window's :class:`~leaky.diagnosis.monitor.MonitorReport` once
            training has ended (None before).
        watch: the :class:`~leaky.integrations.step_watch.StepWatch` while training.
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
        self.settings = WatchSettings(
            log_every_n_steps,
            prefix,
            layers,
            dead_above,
            verbose,
            monitor_options,
            "the Trainer's logging_steps",
            recycle_every,
            recycle_units,
        )
        self.first = False  # set by add_monitor: called before the report_to backends
        self.watch: StepWatch | None = None
        self.report: MonitorReport | None = None
        self._pending: dict[str, float] | None = None
        self._norms: dict[str, float] = {}
        self._handles: list[Any] = []
        self._reading = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Attach the Monitor and the gradient readers to the model being trained."""
        # logging_steps below 1 is a share of the run's steps in transformers: one step here.
        every = max(1, int(args.logging_steps))
        self.watch = self.settings.watch(kwargs["model"], every)
        for name, weight in self.watch.weights().items():
            self._handles.append(
                weight.register_post_accumulate_grad_hook(
                    lambda p, name=name: self._read_norm(name, p)
                )
            )
        reporters = [r for r in (args.report_to or []) if r not in ("none", None)]
        if reporters and not self.first:
            warnings.warn(
                "LeakyTrainerCallback was passed as callbacks=, so the Trainer calls it after "
                f"its report_to backends ({', '.join(reporters)}): its scalars reach only "
                "trainer.state.log_history. Add it with leaky.integrations.hugging_face."
                "add_monitor(trainer) to put it first.",
                UserWarning,
                stacklevel=2,
            )

    def _read_norm(self, name: str, weight: torch.Tensor) -> None:
        # The gradient as accumulated so far: the last call before the optimizer step sees
        # the whole step's gradient, before the Trainer clips it.
        if self._reading and weight.grad is not None:
            self._norms[name] = float(torch.linalg.vector_norm(weight.grad.detach().float()))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Read gradient norms during the steps that end a point only."""
        self._reading = self.watch is not None and self.watch.logs_at(state.global_step)
        self._norms = {}

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Keep the weights before the step, and the unclipped gradient norms."""
        if self.watch is not None:
            self.watch.before_optimizer_step(state.global_step, dict(self._norms))
        self._reading = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """After an optimizer step: compute a point when one is due, and ask for a log."""
        if self.watch is None:
            return None
        metrics = self.watch.after_optimizer_step(state.global_step - 1, kwargs.get("optimizer"))
        if metrics:
            self._pending = metrics
            control.should_log = True
        return control

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        """Put the point's scalars into the logs every report_to backend receives."""
        if self._pending is None or logs is None:
            return
        logs.update(self._pending)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(self._pending)
        self._pending = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Detach, keep the report and print its verdict."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self.watch is None:
            return
        self.report = self.watch.finish()
        self.settings.announce(self.report, state.is_world_process_zero)


def add_monitor(trainer: Trainer, **options: Any) -> LeakyTrainerCallback:
    """Make a :class:`LeakyTrainerCallback` and put it first among ``trainer``'s callbacks.

    First, so that its scalars are in the logs before the ``report_to`` backends write
    them. ``options`` go to :class:`LeakyTrainerCallback`.
    """
    callback = LeakyTrainerCallback(**options)
    callback.first = True
    trainer.callback_handler.callbacks.insert(0, callback)
    return callback
