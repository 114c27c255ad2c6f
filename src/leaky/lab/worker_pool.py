"""Worker processes for a sweep, kept under the sweep's control.

Each worker is a fresh (spawned) process joined to the process that started it by a pipe:
it takes one task at a time, sends back the result or the error, and exits when the pipe
closes. The starting process decides when to stop, so workers ignore Ctrl-C (SIGINT from a
terminal reaches the whole process group) and are terminated by the pool instead; and they
die with their parent, so a parent killed with SIGKILL leaves no workers computing for no
one: on Linux through ``PR_SET_PDEATHSIG``, elsewhere through a thread watching the parent.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerPool"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:  # the portable fallback: an orphan is adopted by another process
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="leaky-parent-watch", daemon=True).start()


def _serve(
    connection: multiprocessing.connection.Connection,
    function: Callable[[Any], Any],
    threads: int,
    parent_pid: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by the parent while it started us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)
    while True:
        try:
            task = connection.recv()
        except EOFError:  # the parent closed the pipe (or died)
            return
        if task is None:
            return
        try:
            message: tuple[Any, ...] = ("done", function(task))
        except BaseException as error:
            message = ("failed", error, traceback.format_exc())
        try:
            connection.send(message)
        except Exception:  # the error itself cannot be pickled: send its text
            connection.send(("failed", RuntimeError(repr(message[1])), message[-1]))


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    # A worker imports leaky, torch and scipy before it can ignore SIGINT itself, and a
    # Ctrl-C to the process group in that time must not end in a traceback from it. A
    # child inherits an ignored SIGINT across exec, and Python keeps it ignored, so it is
    # ignored here while the workers start (and blocked, so that a Ctrl-C meant for this
    # process stays pending until its own handler is back).
    blocked = hasattr(signal, "pthread_sigmask")
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocked else None
    main = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous_handler)
        if previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _stop_resource_tracker() -> None:
    # The spawn context starts multiprocessing's resource tracker, a child process that
    # lives as long as this one; stopped and reaped here, it cannot outlive a stopped sweep
    # as a zombie (where PID 1 does not reap). The next pool starts it again.
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        with suppress(Exception):
            stop()


@dataclass
class _Worker:
    process: Any
    connection: multiprocessing.connection.Connection
    task: Any = None  # the task in flight, or None when the worker is idle


class WorkerPool:
    """``workers`` spawned processes that apply ``function`` to tasks, one task each at a time.

    Use it as a context manager: leaving the block normally lets the workers finish and exit;
    leaving it by an exception (an error, Ctrl-C) terminates them at once.

    Args:
        function: a picklable (module-level) function of one task.
        workers: how many processes.
        threads: torch threads in each process.
    """

    def __init__(self, function: Callable[[Any], Any], workers: int, *, threads: int = 1) -> None:
        context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        try:
            with _sigint_blocked():
                for index in range(workers):
                    ours, theirs = context.Pipe()
                    process = context.Process(
                        target=_serve,
                        args=(theirs, function, threads, os.getpid()),
                        name=f"leaky-worker-{index}",
                        daemon=True,
                    )
                    process.start()
                    theirs.close()
                    self._workers.append(_Worker(process, ours))
        except BaseException:
            self.terminate()
            raise

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [w.process.pid for w in self._workers]

    def idle(self) -> list[_Worker]:
        """Workers without a task."""
        return [w for w in self._workers if w.task is None]

    def busy(self) -> list[Any]:
        """The tasks in flight."""
        return [w.task for w in self._workers if w.task is not None]

    def submit(self, worker: _Worker, task: Any) -> None:
        """Give ``task`` to an idle ``worker``."""
        worker.connection.send(task)
        worker.task = task

    def wait(self, timeout: float) -> list[tuple[Any, Any]]:
        """(task, result) pairs finished within ``timeout`` seconds.

        Raises a task's own exception when it failed, and ``ChildProcessError`` when a
        worker died without answering.
        """
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            time.sleep(timeout)
            return []
        handles = [w.connection for w in busy] + [w.process.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(handles, timeout))
        finished = []
        for worker in busy:
            if worker.connection in ready or worker.process.sentinel in ready:
                finished.append(self._receive(worker))
        return finished

    def ready(self) -> list[tuple[Any, Any]]:
        """Results already sent and not yet read (nothing waits); failures are skipped."""
        finished = []
        for worker in self._workers:
            try:
                if worker.task is not None and worker.connection.poll(0):
                    finished.append(self._receive(worker))
            except Exception:
                continue
        return finished

    def _receive(self, worker: _Worker) -> tuple[Any, Any]:
        task = worker.task
        try:
            message = worker.connection.recv()
        except (EOFError, OSError):
            worker.process.join(1)
            code = worker.process.exitcode
            raise ChildProcessError(
                f"A worker process stopped (exit code {code}) while running {task}"
                + ("; it may have run out of memory" if code == -signal.SIGKILL else "")
            ) from None
        worker.task = None
        if message[0] == "failed":
            error = message[1]
            if isinstance(error, BaseException):
                error.add_note(f"In the worker process:\n{message[2]}")
                raise error
        return task, message[1]

    def close(self) -> None:
        """Ask every worker to exit and wait for it."""
        for worker in self._workers:
            with suppress(OSError):
                worker.connection.send(None)
        for worker in self._workers:
            worker.process.join(10)
        self.terminate()

    def terminate(self) -> None:
        """Stop every worker now (SIGTERM, then SIGKILL after a second) and reap it."""
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + 1.0
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
            worker.connection.close()
            if worker.process.exitcode is not None:
                worker.process.close()
        self._workers = []
        _stop_resource_tracker()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.close()
        else:
            self.terminate()
