"""Run a sweep's runs as Ray tasks, on a Ray cluster or on a local Ray instance.

The process that runs the sweep (the driver) keeps the store: it claims a run, submits it
as a task that declares its CPUs (``num_cpus`` = the run's torch threads), and writes each
returned record in its own transaction as soon as :func:`ray.wait` hands it back. A killed
driver therefore loses no finished run, and rerunning the sweep skips them.

A task whose worker process or node dies (Ray's ``WorkerCrashedError``, ``NodeDiedError``,
``OutOfMemoryError``, a lost result) is submitted again, at most ``max_retries`` times, and
each retry is reported; an exception raised by the experiment itself is not retried: the
sweep stops with it after keeping the finished runs, as the local process pool does.

Ray is an optional extra (``pip install 'leaky[ray]'``) and is imported only here, only
when asked for.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from leaky.system.errors import ParameterError
from leaky.system.version import __version__

__all__ = [
    "CONNECT_SECONDS",
    "DEFAULT_MAX_RETRIES",
    "INSTALL_HINT",
    "RayRunner",
    "Watchdog",
    "check_address",
    "import_ray",
    "start_local",
]

INSTALL_HINT = "pip install 'leaky[ray]'"
CONNECT_SECONDS = 5.0  # how long an address may take to answer before it is refused
DEFAULT_MAX_RETRIES = 3  # submissions of a run after its worker died, beyond the first
_ADDRESS_FORMS = "auto, HOST:PORT or ray://HOST:PORT"


def import_ray() -> Any:
    """The ``ray`` module, or a ``ValueError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            f"The Ray backend needs Ray, which is not installed here; install it with: "
            f"{INSTALL_HINT}"
        ) from None
    return ray


def _host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) that a TCP connection to ``address`` goes to; None for ``auto``."""
    if address == "auto":
        return None
    client = address.startswith("ray://")
    if "://" in address and not client:
        raise ParameterError(
            f"Expected {{address}} to be {_ADDRESS_FORMS}, but got {address!r}", "address"
        )
    parts = urlsplit(address if client else f"//{address}")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number in 0..65535
        port = None
    if not parts.hostname or (port is None and not client):
        raise ParameterError(
            f"Expected {{address}} to be {_ADDRESS_FORMS}, but got {address!r}", "address"
        )
    return parts.hostname, port if port is not None else 10001


def check_address(address: str | None, *, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse, within about ``timeout`` seconds, an address where nothing answers.

    ``ray.init`` keeps retrying an address where no cluster listens for a minute or more,
    so the address is tried first with a plain TCP connection. ``None`` (a local instance)
    and ``auto`` (the cluster this machine runs, which Ray finds or refuses at once) pass.

    Examples:
        >>> check_address(None)
        >>> try:
        ...     check_address("cluster.example")
        ... except ValueError as error:
        ...     print(error)
        Expected address to be auto, HOST:PORT or ray://HOST:PORT, but got 'cluster.example'
    """
    if address is None:
        return
    if not isinstance(address, str) or not address.strip():
        raise ParameterError(
            f"Expected {{address}} to be {_ADDRESS_FORMS}, but got {address!r}", "address"
        )
    target = _host_and_port(address.strip())
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as error:
        reason = error.strerror or str(error)
    else:
        return
    raise ValueError(
        f"No Ray cluster answers at {address} ({reason}); start one with `ray start --head` "
        "on its head node and pass --address auto there, or HOST:6379 or ray://HOST:10001 "
        "from another machine"
    )


def _quiet_init(ray: Any, **options: Any) -> None:
    # Ray's own INFO lines (where it started, its dashboard) would bury the sweep's output.
    ray.init(logging_level=logging.WARNING, log_to_driver=False, **options)


_log = logging.getLogger(__name__)
_NODE_IN_ERROR = re.compile(r"Node IP: ([^\s,]+), node ID: ([0-9a-f]+)")


def _route_raylet_messages_to_the_log(ray: Any) -> Callable[[], None]:
    """Send the messages Ray's nodes publish to every driver to this module's logger.

    When a node dies, Ray prints its raylet's last 20 log lines into the driver's output,
    once per agent; the sweep says in one line which node was lost and what is done about
    it, and the messages stay in the node's own logs (and this module's DEBUG log). Returns
    the function that puts Ray's printer back.
    """
    module = getattr(getattr(ray, "_private", None), "worker", None)
    printer = getattr(module, "print_to_stdstream", None)
    if printer is None:  # another Ray version: its messages are printed as they are
        return lambda: None

    def print_or_log(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            printer(data, *args, **kwargs)
            return
        for line in data.get("lines", []):
            _log.debug("Ray: %s", line)

    module.print_to_stdstream = print_or_log

    def restore() -> None:
        if module.print_to_stdstream is print_or_log:
            module.print_to_stdstream = printer

    return restore


class Watchdog:
    """A process that stops a local Ray instance's processes once this process is gone.

    A driver killed outright leaves Ray's agents running for a minute or more (see
    :mod:`leaky.lab.ray_watchdog`). The watchdog runs in a session of its own and holds
    a pipe only this process writes to; :meth:`stop` (after ``ray.shutdown()``) closes it
    as this process's death would, and the watchdog stops whatever Ray process of this
    process is still running a moment later.
    """

    def __init__(self, ray: Any) -> None:
        read, self._pipe = os.pipe()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",  # no leaky, no current folder: the standard library and psutil
                    str(Path(__file__).with_name("ray_watchdog.py")),
                    str(os.getpid()),
                    os.path.dirname(ray.__file__),
                ],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(self._pipe)
            raise
        finally:
            os.close(read)

    def stop(self) -> None:
        """Close the pipe and wait for the watchdog to finish; idempotent."""
        if self._pipe < 0:
            return
        with suppress(OSError):
            os.close(self._pipe)
        self._pipe = -1
        with suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)  # reaped, not left a zombie


def start_local(cpus: int) -> Watchdog | None:
    """Start a local Ray instance of ``cpus`` CPUs in this process, on loopback only.

    Returns its :class:`Watchdog` (None where none could start), which stops the
    instance's processes if this process is killed: call its ``stop()`` after
    ``ray.shutdown()``.
    """
    ray = import_ray()
    try:
        watchdog: Watchdog | None = Watchdog(ray)
    except OSError:
        watchdog = None  # Ray runs without it, as it would anyway
    # Ray turns 127.0.0.1 into the machine's network address and listens on every
    # interface, unless it believes clusters are off (its setting for macOS and Windows):
    # a local instance has no reason to be reachable from other machines.
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    clusters = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if clusters is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        _quiet_init(
            ray,
            address="local",  # a new instance: never another user's cluster on this host
            num_cpus=cpus,
            include_dashboard=False,
        )
    except BaseException:
        with suppress(Exception):
            ray.shutdown()  # the processes that did start
        if watchdog is not None:
            watchdog.stop()
        raise
    finally:
        if clusters is not None:
            constants.ENABLE_RAY_CLUSTER = clusters
    return watchdog


def _run_task(function: Callable[[Any], Any], spec: Any, version: str) -> Any:
    """``function(spec)`` in a Ray worker, refused when its leaky differs from the driver's."""
    if version != __version__:
        raise ValueError(
            f"Expected every Ray node to have leaky {version} (the driver's version, part of "
            f"each run's id), but a worker has {__version__}; install the same version "
            "on every node"
        )
    return function(spec)  # leaky.lab.runner.run_one: sets torch's thread count to spec.threads


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _cannot_import_the_task(error: BaseException, cause: BaseException | None) -> bool:
    # A node without leaky (or with a version lacking this module) fails to unpickle the
    # task function: Ray reports that as the task's own error, before any run started.
    missing = cause.name or "" if isinstance(cause, ModuleNotFoundError) else ""
    return missing.split(".")[0] == "leaky" or "failed to import on the worker" in str(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class RayRunner:
    """Ray, connected for one sweep: a context manager that runs specs as Ray tasks.

    Args:
        function: a module-level function of one spec (:func:`leaky.lab.runner.run_one`); a
            spec is a :class:`leaky.lab.runner.RunSpec` (its ``threads``, ``cell``, ``seed``).
        address: ``None`` for a new local instance of ``cpus`` CPUs (or the Ray this
            process already initialised, which is then left running), ``"auto"`` for the
            cluster on this machine, ``"HOST:PORT"`` or ``"ray://HOST:10001"`` for another.
        cpus: the local instance's CPUs (the runs that go at once times their threads).
        max_retries: how many times a run is submitted again after its worker died.
    """

    def __init__(
        self,
        function: Callable[[Any], Any],
        address: str | None = None,
        *,
        cpus: int = 1,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(
                f"Expected max_retries to be a whole number >= 0, but got {max_retries!r}"
            )
        self.ray = import_ray()
        check_address(address)
        if address is not None and self.ray.is_initialized():
            raise ValueError(
                "Ray is already initialised in this process; pass no address to use it, or "
                "call ray.shutdown() first"
            )
        self.function, self.address, self.cpus = function, address, cpus
        self.max_retries = max_retries
        self.retried = 0
        self._owned = False
        self._sigterm: Any = None
        self._watchdog: Watchdog | None = None
        self._restore_printer: Callable[[], None] = lambda: None
        self._dead_nodes: set[str] = set()  # ids of the nodes already reported lost

    def __enter__(self) -> RayRunner:
        ray = self.ray
        if self.address is None and ray.is_initialized():
            self._restore_printer = _route_raylet_messages_to_the_log(ray)
            return self  # the caller's Ray: theirs to shut down
        # ray.init installs its own SIGTERM handler (sys.exit); ours comes back afterwards.
        self._sigterm = signal.getsignal(signal.SIGTERM)
        self._owned = True
        try:
            if self.address is None:
                self._watchdog = start_local(self.cpus)
            else:
                _quiet_init(ray, address=self.address.strip())
        except ConnectionError as error:
            self._close()
            raise ValueError(
                f"Cannot connect to Ray at {self.address}: {_first_line(error)}"
            ) from None
        except Exception as error:
            self._close()
            if self.address is not None or isinstance(error, ValueError | TypeError):
                raise
            # Ray gives up when its processes start too slowly (a busy machine): say so in
            # one line (an OSError, like a local worker that died), not a traceback.
            raise ChildProcessError(
                f"The local Ray instance did not start ({_first_line(error)}); try again when "
                "the machine is less busy, or run on the local pool (--backend local)"
            ) from error
        except BaseException:
            self._close()
            raise
        self._restore_printer = _route_raylet_messages_to_the_log(ray)
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()
        self._restore_printer()

    def _close(self) -> None:
        if not self._owned:
            return
        self._owned = False
        with suppress(Exception):
            self.ray.shutdown()
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        if self._sigterm is not None:
            with suppress(ValueError):  # not in the main thread
                signal.signal(signal.SIGTERM, self._sigterm)

    def _capacity(self, threads: int) -> int:
        # Runs in flight at once: what the cluster's CPUs hold, so that no run is claimed
        # in the store long before a CPU takes it (another process could compute it then).
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        return max(1, cpus // max(1, threads))

    def _lost_node(self, error: BaseException) -> tuple[str, bool] | None:
        """The node a task was lost with ("ADDRESS (node id ABCDEF12)"), and whether it is new.

        None when the error names no node.
        """
        # Ray says which node in the error's text only ("Node IP: ..., node ID: ...").
        found = _NODE_IN_ERROR.search(str(error))
        if found is None:
            return None
        address, identity = found.groups()
        first = identity not in self._dead_nodes
        self._dead_nodes.add(identity)
        return f"{address} (node id {identity[:8]})", first

    def run(
        self,
        next_spec: Callable[[], Any],
        finished: Callable[[], bool],
        keep: Callable[[Any], None],
        *,
        note: Callable[[str], None],
        store_failed: Callable[[], bool],
    ) -> None:
        """Submit ``next_spec()`` runs as tasks until ``finished()``; ``keep`` each record.

        ``next_spec`` returns a claimed run, or None when none is free now; ``finished``
        says whether any run is left to claim (runs other processes hold included).

        Raises:
            the experiment's own exception (not retried), ``ChildProcessError`` when a run's
            worker died more than ``max_retries`` times; KeyboardInterrupt stops the sweep.
            In each case the finished runs are kept first and the others cancelled.
        """
        ray = self.ray
        task = ray.remote(_run_task)
        lost = (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.ObjectLostError,
        )
        in_flight: dict[Any, tuple[Any, int]] = {}  # task -> (spec, retries so far)
        capacity: int | None = None  # known once the first run's threads are

        def submit(spec: Any, attempt: int) -> None:
            # Retries are the driver's, so that each is reported: none inside Ray.
            options = task.options(num_cpus=spec.threads, max_retries=0, retry_exceptions=False)
            ref = options.remote(self.function, spec, __version__)
            in_flight[ref] = (spec, attempt)

        def receive(ref: Any) -> None:
            nonlocal capacity
            spec, attempt = in_flight.pop(ref)
            try:
                record = ray.get(ref)
            except ray.exceptions.RayTaskError as error:  # the experiment raised
                cause = error.cause if isinstance(error.cause, BaseException) else None
                if _cannot_import_the_task(error, cause):
                    raise ValueError(
                        f"The Ray workers cannot load leaky's task ({_last_line(error)}); "
                        f"install leaky {__version__} (the driver's version) with its "
                        "ray extra on every node of the cluster"
                    ) from None
                if cause is None:
                    raise RuntimeError(str(error)) from None
                cause.add_note(f"In a Ray worker:\n{error}")  # the worker's traceback
                raise cause from None
            except lost as error:
                if attempt >= self.max_retries:
                    raise ChildProcessError(
                        f"A Ray worker stopped while running {spec.experiment} {spec.cell} "
                        f"seed {spec.seed}, {attempt + 1} times ({_first_line(error)}); the "
                        "runs that finished are kept: run the same command again to resume"
                    ) from None
                self.retried += 1
                retry = f"(retry {attempt + 1} of {self.max_retries})"
                node = self._lost_node(error)
                if node is not None:
                    name, first = node
                    if first:
                        capacity = None  # what the nodes left hold, counted at the next claim
                    note(
                        f"the Ray node {name} left the cluster while running "
                        f"{spec.cell} seed {spec.seed}; submitting it again to the nodes left "
                        + retry
                    )
                else:
                    what = (
                        "the Ray node"
                        if isinstance(error, ray.exceptions.NodeDiedError)
                        else "a Ray worker"
                    )
                    note(
                        f"{what} stopped while running {spec.cell} seed {spec.seed} "
                        f"({type(error).__name__}); submitting it again " + retry
                    )
                submit(spec, attempt + 1)
                return
            keep(record)

        try:
            while True:
                while capacity is None or len(in_flight) < capacity:
                    spec = next_spec()
                    if spec is None:
                        break
                    if capacity is None:
                        capacity = self._capacity(spec.threads)
                    submit(spec, 0)
                if not in_flight:
                    if finished():
                        return
                    time.sleep(1.0)  # every run left is another process's: wait for it
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                if ready:  # and whatever else is done by now
                    rest = [ref for ref in in_flight if ref not in ready]
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], 0)
                    ready = [*ready, *more]
                for ref in ready:
                    receive(ref)
        except BaseException as error:
            # Stopping (an error, Ctrl-C, SIGTERM): keep the runs that did finish, unless
            # the store itself failed, and cancel the rest.
            self._stop(in_flight, keep, store_failed)
            if isinstance(error, ray.exceptions.LocalRayletDiedError):
                # This machine's Ray itself stopped (killed, or out of memory): no run of
                # the sweep can go on, and it is neither the user's input nor leaky.
                raise ChildProcessError(
                    "The local Ray instance stopped during the sweep (its raylet died; "
                    "see Ray's raylet.out); the runs that finished are kept: run the same "
                    "command again to resume"
                ) from None
            raise

    def _stop(
        self,
        in_flight: dict[Any, tuple[Any, int]],
        keep: Callable[[Any], None],
        store_failed: Callable[[], bool],
    ) -> None:
        ray = self.ray
        refs = list(in_flight)
        with suppress(Exception):
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
            for ref in done:
                if store_failed():
                    break
                with suppress(Exception):
                    keep(ray.get(ref, timeout=0))
        for ref in refs:
            with suppress(Exception):
                ray.cancel(ref, force=True)
