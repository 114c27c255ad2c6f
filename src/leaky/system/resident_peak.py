"""The peak resident memory of one step, read from Linux's /proc in a fresh process.

A step's peak growth is VmHWM (the resident set's high-water mark, reset through
``/proc/self/clear_refs``) minus VmRSS before the step. Measured in a process that ran
nothing else, with ``MALLOC_MMAP_THRESHOLD_=65536`` (:func:`child_environment`), so glibc
serves every large tensor from a mapping of its own and returns it on free: otherwise
freed blocks stay in its heap and the peak follows allocation order, not what is alive.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable

__all__ = ["MMAP_THRESHOLD", "can_measure", "child_environment", "step_growth_bytes"]

MMAP_THRESHOLD = "65536"


def can_measure() -> bool:
    """Whether this system lets a process reset and read its peak resident set (Linux)."""
    return os.path.exists("/proc/self/clear_refs")


def child_environment() -> dict[str, str]:
    """The environment for a measuring child: this one, with glibc mapping every large block."""
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)


def _status_kib() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, rest = line.split(":", 1)
                values[key] = int(rest.split()[0])
    return values


def step_growth_bytes(step: Callable[[], object]) -> int:
    """How far above the resident set before it ``step()`` took this process, in bytes."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _status_kib()["VmRSS"]
    step()
    return (_status_kib()["VmHWM"] - before) * 1024
