"""Stop the processes of a local Ray instance whose driver is gone, however it went.

A driver that starts a local Ray instance is the parent of its services (GCS, raylet,
monitors); the raylet starts the dashboard and runtime-env agents and the workers. When the
driver is killed outright (SIGKILL, the out-of-memory killer), the raylet follows it, but
the agents keep running for a minute or more: on their parent's death they first try to
report it to the GCS, which is gone too. This watchdog, started by
:func:`leaky.lab.ray_backend.start_local` in a session of its own, closes that gap.

It runs as a plain script (``python -I ray_watchdog.py DRIVER_PID RAY_DIR``), importing
nothing of leaky (no torch), and holds the read end of a pipe whose write end only the
driver has. Twice a second it notes the driver's descendants that are Ray's (their command
line names Ray's package folder, or Ray renamed them ``ray::...``). When the pipe closes
(the driver closed it after ``ray.shutdown()``, or the driver died), it waits
``GRACE_SECONDS`` for Ray's own shutdown, then sends SIGTERM, and SIGKILL after
``GRACE_SECONDS`` more, to every noted process still running. psutil checks each
process's start time, so a process number reused since is never touched.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from contextlib import suppress

import psutil

GRACE_SECONDS = 2.0
POLL_SECONDS = 0.5


def _is_ray(process: psutil.Process, ray_dir: str) -> bool:
    try:
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return bool(command) and (command[0].startswith("ray::") or any(ray_dir in a for a in command))


def _ray_descendants(driver: psutil.Process, ray_dir: str) -> dict[int, psutil.Process]:
    try:
        children = driver.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}
    me = os.getpid()
    return {p.pid: p for p in children if p.pid != me and _is_ray(p, ray_dir)}


def _stop(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=GRACE_SECONDS)
    for process in alive:
        with suppress(psutil.Error):
            process.terminate()  # psutil refuses if the number now names another process
    _, alive = psutil.wait_procs(alive, timeout=GRACE_SECONDS)
    for process in alive:
        with suppress(psutil.Error):
            process.kill()


def watch(driver_pid: int, ray_dir: str, pipe: int) -> None:
    """Note the driver's Ray processes until ``pipe`` closes, then stop those still running."""
    driver = psutil.Process(driver_pid)
    seen: dict[int, psutil.Process] = {}
    while True:
        seen.update(_ray_descendants(driver, ray_dir))
        seen = {pid: p for pid, p in seen.items() if p.is_running()}
        readable, _, _ = select.select([pipe], [], [], POLL_SECONDS)
        if readable and not os.read(pipe, 4096):
            break  # end of file: the driver closed the pipe or exited
    _stop(list(seen.values()))


def main(argv: list[str]) -> int:
    """Entry point: ``ray_watchdog.py DRIVER_PID RAY_DIR``, the pipe on standard input."""
    # In a session of its own no terminal signal reaches it; the driver handles Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    driver_pid, ray_dir = int(argv[1]), argv[2]
    try:
        watch(driver_pid, ray_dir, sys.stdin.fileno())
    except psutil.NoSuchProcess:
        return 0  # the driver was gone before the first look: nothing was noted
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
