"""Turn an experiment and its grid into runs, and execute the ones not yet in the store.

Each run is identified by a hash of the experiment, its resolved config, the cell, the seed,
the leaky version and the torch thread count it runs with. Every run executes with that fixed
thread count (1 unless asked), in the calling process (``workers=1``), in a pool of fresh
processes, or as Ray tasks (``backend="ray"``, :mod:`leaky.lab.ray_backend`), so its numbers do
not depend on how many workers shared the sweep nor where they ran. The calling
process alone writes the store, one transaction per finished run, and claims each run in the
store before computing it, so two sweeps on one store do not compute a run twice. A run whose
loss turns NaN or infinite is stored as diverged and the sweep goes on.

Ctrl-C (SIGINT) or SIGTERM stops a sweep within a second or two: the workers are terminated,
every run that finished is stored, and :class:`SweepInterrupted` says how many were kept.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from leaky.data import data_fingerprint, remember_file_hashes
from leaky.lab.config import resolve
from leaky.lab.experiments import check_stored_results, get_experiment
from leaky.lab.plan import DEFAULT_THREADS, RunSpec, Sweep
from leaky.lab.ray_backend import DEFAULT_MAX_RETRIES, RayRunner, check_address, import_ray
from leaky.lab.store import RunRecord, Store
from leaky.lab.worker_pool import WorkerPool
from leaky.system.errors import ParameterError
from leaky.system.machine import cpu_model, usable_cores
from leaky.system.version import __version__

__all__ = [
    "BACKENDS",
    "Backend",
    "RunSpec",
    "SweepInterrupted",
    "SweepResult",
    "check_backend",
    "check_parallelism",
    "execute",
    "run_one",
    "usable_cores",
]

BACKENDS = ("local", "ray")  # where runs compute: this machine's processes, or Ray tasks
_LEASE = 60.0  # seconds a claim lasts unless its owner renews it


@dataclass(frozen=True)
class SweepResult:
    """How a sweep went."""

    total: int
    ran: int
    skipped: int
    diverged: int
    elsewhere: int = 0  # stored meanwhile by another process on the same store
    retried: int = 0  # runs submitted again after their worker died (Ray backend)

    def summary(self, description: str, store: object) -> str:
        """One line: what ran, what was stored already (in ``store``), what went wrong.

        Examples:
            >>> SweepResult(4, 3, 1, 0).summary("slope", "out/results.db")
            'slope: 3 runs done, 1 already in out/results.db'
        """
        return (
            f"{description}: {self.ran} runs done, {self.skipped} already in {store}"
            + (f", {self.elsewhere} by another process" if self.elsewhere else "")
            + (f", {self.diverged} diverged" if self.diverged else "")
            + (f", {self.retried} submitted again after a worker died" if self.retried else "")
        )


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": str(torch.get_num_threads()),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "leaky": __version__,
    }


def run_one(spec: RunSpec) -> RunRecord:
    """Run one spec in this process with its seed and thread count; return the record."""
    experiment = get_experiment(spec.experiment)
    config = resolve(experiment.config, spec.config)
    _check_data_unchanged(spec)
    previous = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        torch.manual_seed(spec.seed)
        start = time.perf_counter()
        output = experiment.run(config, dict(spec.cell), spec.seed)
        seconds = time.perf_counter() - start
        versions: dict[str, Any] = _versions()
        if spec.data:
            versions["data"] = dict(spec.data)
    finally:
        torch.set_num_threads(previous)
    return RunRecord(
        run_id=spec.run_id,
        experiment=spec.experiment,
        cell=spec.cell,
        seed=spec.seed,
        config=spec.config,
        status="diverged" if output.diverged else "finished",
        seconds=seconds,
        metrics=output.metrics,
        layers=output.layers,
        results=output.results,
        versions=versions,
    )


def _check_data_unchanged(spec: RunSpec) -> None:
    # The plan's file hashes stand for files whose size and modification time are
    # unchanged; a changed file is read and hashed again, and its fingerprint differs.
    remember_file_hashes(dict(spec.file_hashes))
    for data_spec, planned in spec.data.items():
        if data_fingerprint(data_spec) != planned:
            raise ValueError(
                f"The data of {data_spec!r} changed while its sweep ran (its SHA-256 is not "
                "the one planned); run the command again for a sweep on the new data"
            )


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(
            f"Expected {{{name}}} to be a whole number >= 1, but got {value!r}", name
        )
    return value


def check_parallelism(workers: object, threads: object = DEFAULT_THREADS) -> tuple[int, int]:
    """Validate workers and torch threads per run: ``workers x threads`` must fit the cores.

    More would only make the processes wait for each other (and a busy machine slower).

    Examples:
        >>> check_parallelism(1, 1)
        (1, 1)
    """
    workers, threads = _check_count("workers", workers), _check_count("threads", threads)
    cores = usable_cores()
    if workers * threads > cores:
        raise ParameterError(
            f"Expected {{workers}} x {{threads}} to be at most {cores} (the usable cores "
            f"here), but got {workers} x {threads} = {workers * threads}; lower {{workers}} "
            "or {threads}",
            "workers",
            "threads",
        )
    return workers, threads


def default_workers(threads: int = DEFAULT_THREADS) -> int:
    """As many workers as the usable cores hold at ``threads`` each."""
    return max(1, usable_cores() // threads)


_SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT or SIGTERM after storing every run that had finished.

    ``exit_code`` is the shell's convention for the signal: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(
        self, signum: int, *, description: str, kept: int, stored: int, planned: int, store: Any
    ) -> None:
        self.signum, self.kept, self.stored, self.planned = signum, kept, stored, planned
        self.exit_code = 128 + signum
        name = _SIGNAL_NAMES.get(signum, f"signal {signum}")
        super().__init__(
            f"{description}: stopped by {name}; kept the {kept} runs that finished "
            f"({stored} of {planned} planned runs are in {store}); run the same command "
            "again to resume"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    # SIGTERM stops a sweep the way Ctrl-C does (only the main thread can set handlers).
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Signalled(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Progress:
    """A bar on a terminal; a line every few seconds when writing to a log; or nothing."""

    def __init__(self, description: str, total: int, done: int, show: bool | None) -> None:
        self.description, self.total, self.done = description, total, done
        self.diverged = 0
        self.start = self.last = time.monotonic()
        self.lines = show is None and not sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            initial=done,
            desc=description,
            disable=not (sys.stderr.isatty() if show is None else show),
            unit="run",
            leave=False,
        )
        if self.lines:
            self._line(f"{total - done} runs to do, {done} already stored")

    def _line(self, text: str) -> None:
        print(f"{self.description}: {text}", file=sys.stderr, flush=True)

    def update(self, diverged: bool) -> None:
        self.done += 1
        self.diverged += diverged
        self.bar.update()
        now = time.monotonic()
        if self.lines and (now - self.last >= 2.0 or self.done == self.total):
            self.last = now
            extra = f" ({self.diverged} diverged)" if self.diverged else ""
            self._line(f"{self.done}/{self.total} runs{extra}, {now - self.start:.0f} s")

    def note(self, text: str) -> None:
        self.bar.clear()
        self._line(text)

    def close(self) -> None:
        self.bar.close()


class _Claims:
    """The runs left to do, handed out only once this process holds their claim."""

    def __init__(self, store: Store, todo: list[RunSpec], progress: _Progress) -> None:
        self.store, self.progress = store, progress
        self.owner = f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pending = deque(todo)
        self.waiting: list[RunSpec] = []
        self.elsewhere = 0
        self.checked = 0.0
        self.warned = False

    def empty(self) -> bool:
        return not self.pending and not self.waiting

    def next(self) -> RunSpec | None:
        """A run to compute now, or None (nothing left, or only runs others hold)."""
        while self.pending:
            spec = self.pending.popleft()
            if (spec := self._try(spec)) is not None:
                return spec
        now = time.monotonic()
        if self.waiting and now - self.checked >= 1.0:  # runs another process holds
            self.checked = now
            waiting, self.waiting = self.waiting, []
            self.pending.extend(waiting)
            while self.pending:
                if (spec := self._try(self.pending.popleft())) is not None:
                    return spec
        return None

    def _try(self, spec: RunSpec) -> RunSpec | None:
        state = self.store.claim(spec.run_id, self.owner, _LEASE)
        if state == "claimed":
            return spec
        if state == "stored":
            self.elsewhere += 1
            self.progress.update(diverged=False)
            return None
        self.waiting.append(spec)
        if not self.warned:
            self.warned = True
            holder = self.store.claim_of(spec.run_id)
            who = f" (pid {holder.pid} on {holder.host})" if holder else ""
            self.progress.note(
                f"another process{who} is computing runs of this sweep on the same store; "
                "this one leaves them to it and takes the others"
            )
        return None

    def release(self, run_id: str | None = None) -> None:
        self.store.release_claims(self.owner, run_id)


@contextmanager
def _renewing(store: Store, owner: str) -> Iterator[None]:
    # Renews this process's claims while runs compute (the main thread may be busy in one).
    stop = threading.Event()

    def renew() -> None:
        # A failed renewal (the store busy past its timeout, a transient error) is tried
        # again at the next beat rather than ending the thread: a lease left to run out lets
        # another sweep on the store compute the same runs. Three beats remain before it does.
        own: Store | None = None
        try:
            while not stop.wait(_LEASE / 4):
                try:
                    if own is None:
                        own = Store(store.path)
                    own.renew_claims(owner, _LEASE)
                except Exception:
                    if own is not None:
                        with suppress(Exception):
                            own.close()
                    own = None
        finally:
            if own is not None:
                with suppress(Exception):
                    own.close()

    thread = threading.Thread(target=renew, name="leaky-claims", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


@dataclass(frozen=True)
class Backend:
    """Where a sweep's runs compute, checked: made by :func:`check_backend` only."""

    kind: str  # "local" or "ray"
    address: str | None  # a Ray cluster, or None: this machine
    workers: int  # processes (local) or the CPUs of a local Ray instance / threads
    threads: int  # torch threads per run


def check_backend(
    backend: object, address: object = None, *, workers: object = 1, threads: object = 1
) -> Backend:
    """Validate where a sweep runs, before anything starts; return it as a :class:`Backend`.

    ``backend="local"``: ``workers`` processes on this machine, ``workers x threads``
    within its cores. ``backend="ray"``: Ray tasks, on a new local Ray instance of
    ``workers x threads`` CPUs (same limit), or on the cluster at ``address``, whose CPUs
    decide how many runs go at once; Ray must be installed and the address must answer
    (within seconds). :func:`execute` takes the result and checks nothing again.

    Examples:
        >>> check_backend("local", workers=1, threads=1)
        Backend(kind='local', address=None, workers=1, threads=1)
        >>> check_backend("mpi")
        Traceback (most recent call last):
        ...
        leaky.system.errors.ParameterError: Expected backend to be one of local, ray, but got 'mpi'
    """
    if backend not in BACKENDS:
        choices = ", ".join(BACKENDS)
        raise ParameterError(
            f"Expected {{backend}} to be one of {choices}, but got {backend!r}", "backend"
        )
    if backend == "local" or address is None:
        if address is not None:
            raise ParameterError(
                "{address} names a Ray cluster: pass it with {backend} ray", "address", "backend"
            )
        workers, threads = check_parallelism(workers, threads)
    else:
        threads = _check_count("threads", threads)
        if workers != 1:
            raise ParameterError(
                f"Expected no {{workers}} with {{address}} (got {workers!r}): on a Ray cluster "
                "its CPUs decide how many runs go at once; {workers} sizes a local instance "
                "only",
                "workers",
                "address",
            )
    if backend == "ray":
        import_ray()
        check_address(address)
    return Backend(str(backend), None if address is None else str(address), workers, threads)


def execute(
    sweep: Sweep | Sequence[RunSpec],
    store: Store,
    *,
    workers: int = 1,
    progress: bool | None = None,
    description: str | None = None,
    on_saved: Callable[[RunRecord], None] | None = None,
    backend: str | Backend = "local",
    address: str | None = None,
    max_retries: int | None = None,
) -> SweepResult:
    """Run every run of ``sweep`` not yet in ``store``; save each as soon as it finishes.

    ``sweep``: a :class:`~leaky.lab.plan.Sweep` (or a list of its run specs).
    ``workers`` processes compute in parallel (1: this process); each run uses its spec's
    torch thread count, and ``workers x threads`` must fit the usable cores. ``progress``:
    True a bar, False nothing, None a bar on a terminal and a line every few seconds
    otherwise (logs, CI). ``on_saved`` is called in this process with each run the store
    has just saved (``leaky run --tensorboard`` logs it there).

    ``backend="ray"`` computes the runs as Ray tasks instead (:mod:`leaky.lab.ray_backend`):
    on the cluster at ``address`` (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``),
    or on a local instance of ``workers x threads`` CPUs when ``address`` is None (or the
    Ray this process initialised already). This process still writes the store, each run
    as it arrives; a run whose worker died is submitted again up to ``max_retries`` times
    (default 3). A :class:`Backend` from :func:`check_backend` stands for ``backend``,
    ``address`` and ``workers``, already checked.

    A stored run whose results are not what its experiment writes is damaged, so computed
    again: a ``store`` opened without a check of results is given
    :func:`~leaky.lab.experiments.check_stored_results`.

    Raises:
        SweepInterrupted: on Ctrl-C or SIGTERM, after storing every run that had finished.
    """
    specs = list(sweep)
    if description is None:
        description = sweep.name if isinstance(sweep, Sweep) else "runs"
    if not isinstance(backend, Backend):
        threads = max((spec.threads for spec in specs), default=1)
        backend = check_backend(backend, address, workers=workers, threads=threads)
    if store.check_results is None:
        store.check_results = check_stored_results
    done = store.run_ids()
    todo = [spec for spec in specs if spec.run_id not in done]
    connection: Any = nullcontext()
    if backend.kind == "ray" and todo:  # connects (or starts Ray) before anything is shown
        retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        connection = RayRunner(
            run_one,
            backend.address,
            cpus=backend.workers * backend.threads,
            max_retries=retries,
        )
    with connection as ray_runner:
        return _sweep(
            specs, todo, store, backend.workers, ray_runner, progress, description, on_saved
        )


def _sweep(
    specs: list[RunSpec],
    todo: list[RunSpec],
    store: Store,
    workers: int,
    ray_runner: Any,
    progress: bool | None,
    description: str,
    on_saved: Callable[[RunRecord], None] | None,
) -> SweepResult:
    report = _Progress(description, len(specs), len(specs) - len(todo), progress)
    claims = _Claims(store, todo, report)
    kept = diverged = 0
    counted: set[str] = set()
    store_failed = False

    def keep(record: RunRecord) -> None:
        nonlocal kept, diverged, store_failed
        try:
            store.save(record)
        except BaseException:
            store_failed = True  # nothing more can be kept
            raise
        # Counted before its claim is released: a Ctrl-C between the two leaves a stored
        # run this process still claims, which the stop below counts as kept too.
        counted.add(record.run_id)
        kept += 1
        claims.release(record.run_id)
        diverged += record.status == "diverged"
        report.update(record.status == "diverged")
        if on_saved is not None:
            on_saved(record)

    try:
        with _sigterm_raises(), _renewing(store, claims.owner):
            if ray_runner is not None:
                ray_runner.run(
                    claims.next,
                    claims.empty,
                    keep,
                    note=report.note,
                    store_failed=lambda: store_failed,
                )
            elif workers == 1 or len(todo) <= 1:
                _run_here(claims, keep)
            else:
                _run_in_pool(claims, keep, workers, lambda: store_failed)
    except (KeyboardInterrupt, _Signalled) as stop:
        signum = stop.signum if isinstance(stop, _Signalled) else signal.SIGINT
        planned = {spec.run_id for spec in specs}
        try:
            now = store.run_ids()
            stored = len(planned & now)
            kept += sum(  # saved just before the stop landed, not yet counted
                1
                for spec in todo
                if spec.run_id in now
                and spec.run_id not in counted
                and (held := store.claim_of(spec.run_id)) is not None
                and held.owner == claims.owner
            )
        except Exception:
            stored = len(specs) - len(todo) + kept
        raise SweepInterrupted(
            signum,
            description=description,
            kept=kept,
            stored=stored,
            planned=len(planned),
            store=store.path,
        ) from None
    finally:
        report.close()
        with suppress(Exception):
            claims.release()
    retried = ray_runner.retried if ray_runner is not None else 0
    return SweepResult(
        len(specs), kept, len(specs) - len(todo), diverged, claims.elsewhere, retried
    )


def _run_here(claims: _Claims, keep: Any) -> None:
    while not claims.empty():
        spec = claims.next()
        if spec is None:
            time.sleep(1.0)  # every run left is another process's: wait for it
            continue
        keep(run_one(spec))


def _run_in_pool(claims: _Claims, keep: Any, workers: int, store_failed: Any) -> None:

    with WorkerPool(run_one, workers) as pool:
        try:
            while True:
                for worker in pool.idle():
                    spec = claims.next()
                    if spec is None:
                        break
                    pool.submit(worker, spec)
                if not pool.busy() and claims.empty():
                    return
                for _spec, record in pool.wait(timeout=1.0):
                    keep(record)
        except BaseException:
            # Stopping (an error, Ctrl-C, SIGTERM): keep the runs that did finish, unless
            # the store itself failed; leaving the block terminates the workers.
            if not store_failed():
                for _spec, record in pool.ready():
                    keep(record)
            raise
