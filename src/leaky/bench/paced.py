"""Alternating A/B timing of two variants that each need a process of their own.

Two compiled copies of one network in one process share Dynamo's cache (hooks on one
change what the other runs), and a Lightning fit owns its loop. So each variant runs in
a fresh Python process, stepping its own loop, and calls ``pace()`` once per step: the
call reports how long the step since the last one took and waits for the parent's word
to take the next. The parent lets the two processes step in turn, swapping which goes
first each pair, exactly as :func:`leaky.bench.timing.compare` does in one process; the
process that waits is blocked on a pipe and takes no CPU.

A variant is a function named ``"module:function"``, called in the worker as
``function(pace, **options)``; it builds its model and loops forever, calling
``pace()`` before each step. It may set ``pace.note``, a callable returning a short
text, read when the parent stops it (what the variant saw: the Monitor's batches).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from leaky.bench.timing import Comparison

__all__ = ["Pace", "Variant", "WorkerError", "compare_processes"]


@dataclass(frozen=True)
class Variant:
    """A loop to time in its own process: ``function(pace, **options)``."""

    function: str  # "module:function"
    options: dict[str, Any] = field(default_factory=dict)


class WorkerError(RuntimeError):
    """A timed process ended before it was told to, or answered nonsense."""


class _Worker:
    """One variant's process and the two pipes that pace it."""

    def __init__(self, variant: Variant, threads: int) -> None:
        to_worker_read, self._to_worker = os.pipe()
        self._from_worker, from_worker_write = os.pipe()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        spec = json.dumps({"function": variant.function, "options": variant.options})
        self.variant = variant
        pipes = [str(to_worker_read), str(from_worker_write)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leaky.bench.paced", *pipes, str(threads), spec],
            pass_fds=(to_worker_read, from_worker_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        os.close(to_worker_read)
        os.close(from_worker_write)
        self._reader = os.fdopen(self._from_worker, "r")
        self._expect("ready")

    def _expect(self, word: str) -> str:
        line = self._reader.readline()
        if not line.startswith(word):
            self.process.wait(timeout=30)
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-15:]
            raise WorkerError(
                f"the timed process for {self.variant.function} ended or answered {line!r} "
                f"instead of {word!r}; its last lines:\n" + "\n".join(tail)
            )
        return line[len(word) :].strip()

    def step(self) -> float:
        """Let the worker take one step; the seconds it took, timed in the worker."""
        os.write(self._to_worker, b"go\n")
        return float(self._expect("t"))

    def turn(self, steps: int) -> float:
        """``steps`` steps in a row; the mean seconds of all but the first.

        The first step after the other process ran finds the caches full of that process's
        memory and took about a third longer than the next (27.5 against 20.6 ms on the small
        MLP): it is left out, so neither side pays for the switch.
        """
        times = [self.step() for _ in range(steps)]
        return sum(times[1:]) / (steps - 1)

    def stop(self) -> str:
        """End the worker; its note."""
        os.write(self._to_worker, b"stop\n")
        try:
            return self._expect("note")
        finally:
            self.close()

    def close(self) -> None:
        """Kill the worker if it still runs, and close the pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for handle in (self._reader, self._stderr):
            handle.close()
        with contextlib.suppress(OSError):  # closed already
            os.close(self._to_worker)


def compare_processes(
    candidate: Variant,
    baseline: Variant,
    *,
    pairs: int = 7,
    warmup: int = 3,
    steps_per_turn: int = 3,
    threads: int | None = None,
) -> tuple[Comparison, str, str]:
    """Time ``candidate`` against ``baseline``, each in its own process, in alternating pairs.

    ``warmup`` steps of each come first, untimed (compiling happens there). In each pair a
    process takes ``steps_per_turn`` steps (at least 2) and its sample is their mean less
    the first (see :meth:`_Worker.turn`). Returns the
    comparison and the two variants' notes. Each process uses ``threads`` torch threads
    (default: this process's).
    """
    if pairs < 1:
        raise ValueError(f"Expected at least 1 pair, got {pairs}")
    if steps_per_turn < 2:
        raise ValueError(f"Expected at least 2 steps per turn, got {steps_per_turn}")
    threads = threads or torch.get_num_threads()
    workers: list[_Worker] = []
    try:
        workers.append(_Worker(candidate, threads))
        workers.append(_Worker(baseline, threads))
        a, b = workers
        for _ in range(warmup):
            a.step()
            b.step()
        result = Comparison()
        for i in range(pairs):
            if i % 2 == 0:
                result.candidate.append(a.turn(steps_per_turn))
                result.baseline.append(b.turn(steps_per_turn))
            else:
                result.baseline.append(b.turn(steps_per_turn))
                result.candidate.append(a.turn(steps_per_turn))
        notes = a.stop(), b.stop()
    finally:
        for worker in workers:
            worker.close()
    return result, notes[0], notes[1]


class Pace:
    """The worker's side: called once before every step of the variant's loop."""

    def __init__(self, commands: int, answers: int) -> None:
        self._commands = os.fdopen(commands, "r")
        self._answers = answers
        self._started: float | None = None
        self.note: Callable[[], str] = lambda: ""

    def __call__(self) -> None:
        """Report the last step's seconds, then wait: the next step, or the end."""
        now = time.perf_counter()
        if self._started is None:
            self._send("ready")
        else:
            self._send(f"t {now - self._started!r}")
        command = self._commands.readline().strip()
        if command != "go":  # "stop", or the parent is gone
            self._send(f"note {self.note()}".replace("\n", " "))
            os._exit(0)  # nothing of the loop needs finishing
        self._started = time.perf_counter()

    def _send(self, line: str) -> None:
        os.write(self._answers, (line + "\n").encode())


def _serve(commands: int, answers: int, threads: int, spec: str) -> None:
    torch.set_num_threads(threads)
    parsed = json.loads(spec)
    module, _, name = parsed["function"].partition(":")
    function = getattr(importlib.import_module(module), name)
    function(Pace(commands, answers), **parsed["options"])
    raise WorkerError(f"{parsed['function']} returned; a timed loop must run until stopped")


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
