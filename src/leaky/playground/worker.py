"""A session's worker thread: trains while playing, answers commands, publishes views.

The web app never trains on its event loop: each page gets a :class:`SessionWorker`, a
thread that owns one :class:`~leaky.playground.session.TrainingSession`. Commands arrive
through a queue (:meth:`SessionWorker.send`); views leave through the ``publish`` callback,
at most one every ``update_interval`` seconds while playing. While paused the thread
blocks on its queue and uses no CPU (once the born-dead estimate is complete).

Commands (JSON objects):

* ``{"type": "params", "params": {...}}``: change settings (validated; errors come back
  as ``{"type": "errors", "errors": {field: {...}}}``);
* ``{"type": "play"}``, ``{"type": "pause"}``, ``{"type": "reset"}``;
* ``{"type": "step", "steps": n}``: ``n`` optimiser steps (1 to 1000, default 1).

At most :data:`MAX_QUEUED` commands wait; one more is dropped with an error (code
``busy``). :meth:`SessionWorker.stop` cancels the training under way between two steps,
and the commands still waiting with it.

Examples:
    >>> import queue
    >>> messages = queue.Queue()
    >>> worker = SessionWorker(messages.put, {"depth": 1, "width": 4})
    >>> worker.start()
    >>> messages.get(timeout=60)["type"]
    'update'
    >>> worker.send({"type": "step", "steps": 3})
    True
    >>> message = messages.get(timeout=60)
    >>> while message["type"] != "update" or message["step"] != 3:
    ...     message = messages.get(timeout=60)
    >>> worker.stop(); worker.join(timeout=60)
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from leaky.playground.session import TrainingSession

__all__ = ["MAX_QUEUED", "MAX_STEPS", "SessionWorker"]

MAX_STEPS = 1000  # steps one "step" command may ask for
# Commands waiting for the thread. A page sends one per click or change, so a few are
# plenty; a bound keeps a page (or a script) from queueing hours of training.
MAX_QUEUED = 32
_STOP = object()


class SessionWorker(threading.Thread):
    """The thread of one page's session.

    Args:
        publish: called with each message for the page (a dict): from this thread, and
            from :meth:`send`'s caller when a command is dropped.
        changes: initial settings (defaults otherwise).
        update_interval: seconds of training between two views while playing.
    """

    def __init__(
        self,
        publish: Callable[[dict[str, Any]], None],
        changes: dict[str, Any] | None = None,
        *,
        update_interval: float = 0.2,
    ) -> None:
        super().__init__(name="leaky-playground-session", daemon=True)
        self.publish = publish
        self.changes = changes or {}
        self.update_interval = update_interval
        self.commands: queue.Queue[Any] = queue.Queue(maxsize=MAX_QUEUED)
        self.cancelled = threading.Event()  # set by stop(); training checks it between steps
        self.running = False
        self.session: TrainingSession | None = None
        self._born_dead_sent = 0.0

    def send(self, command: Any) -> bool:
        """Queue a command from the page (checked in the worker).

        Returns False, and publishes an error, when :data:`MAX_QUEUED` commands already
        wait: the command is dropped.
        """
        try:
            self.commands.put_nowait(command)
        except queue.Full:
            self.publish(
                {
                    "type": "error",
                    "code": "busy",
                    "max_commands": MAX_QUEUED,
                    "message": f"Expected at most {MAX_QUEUED} commands waiting, but got one "
                    "more while the session works through them; it was dropped. Wait for "
                    "the page to catch up, then try again.",
                }
            )
            return False
        return True

    def stop(self) -> None:
        """Ask the thread to end.

        It stops after the training step it is taking and drops the commands still waiting.
        """
        self.cancelled.set()
        with contextlib.suppress(queue.Full):  # a full queue wakes the thread anyway
            self.commands.put_nowait(_STOP)

    def _update(self) -> None:
        assert self.session is not None
        if self.cancelled.is_set():  # nobody is left to see it
            return
        self.publish({"type": "update", "running": self.running, **self.session.snapshot()})

    def _handle(self, command: Any) -> None:
        session = self.session
        assert session is not None
        kind = command.get("type") if isinstance(command, dict) else None
        if kind == "params":
            errors = session.update(command.get("params"))
            if errors:
                self.publish(
                    {
                        "type": "errors",
                        "errors": {name: error.to_dict() for name, error in errors.items()},
                        "params": session.params.to_dict(),
                    }
                )
                return
            self.publish({"type": "accepted", "params": session.params.to_dict()})
        elif kind == "play":
            self.running = True
        elif kind == "pause":
            self.running = False
        elif kind == "reset":
            session.reset()
        elif kind == "step":
            steps = command.get("steps", 1)
            if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
                self.publish(
                    {
                        "type": "error",
                        "message": f"Expected `steps` to be an integer from 1 to {MAX_STEPS}, "
                        f"but got {steps!r}.",
                    }
                )
                return
            self.running = False
            session.train(steps, cancel=self.cancelled)
        else:
            self.publish(
                {
                    "type": "error",
                    "message": "Expected a command of type params, play, pause, step or reset, "
                    f"but got {str(command)[:80]!r}.",
                }
            )
            return
        self._update()

    def run(self) -> None:
        """The thread: commands first, then a slice of training or of the born-dead estimate."""
        try:
            self.session = TrainingSession(self.changes)
        except ValueError as error:
            self.publish({"type": "error", "message": str(error)})
            return
        self._update()
        while not self.cancelled.is_set():
            estimate = self.session.born_dead
            busy = self.running or (estimate is not None and not estimate.done)
            try:
                # Paused with nothing left to estimate: block, using no CPU.
                command = self.commands.get(block=not busy)
            except queue.Empty:
                command = None
            if command is _STOP:
                return
            try:
                if command is not None:
                    self._handle(command)
                elif self.running:
                    self.session.train_for(self.update_interval, cancel=self.cancelled)
                    self._update()
                elif estimate is not None:
                    estimate.advance()
                    now = time.monotonic()
                    if estimate.done or now - self._born_dead_sent >= self.update_interval:
                        self._born_dead_sent = now
                        self.publish({"type": "born_dead", "born_dead": estimate.to_dict()})
            except Exception as error:  # keep the page alive and say what went wrong
                self.running = False
                self.publish({"type": "error", "message": f"{type(error).__name__}: {error}"})
