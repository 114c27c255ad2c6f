"""The machine leaky runs on: its CPU, usable cores and free memory, said the same way everywhere.

Benchmarks record :func:`machine_info` beside their numbers; sweeps size themselves by
:func:`usable_cores` and :func:`available_memory`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch

__all__ = ["available_memory", "cpu_model", "load_average", "machine_info", "usable_cores"]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or "unknown"."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_room() -> int | None:
    # cgroup v2, then v1: a container's limit may be far below the machine's memory.
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge number: no limit
            return max(0, int(limit) - usage)
    return None


def available_memory() -> int | None:
    """Bytes this process could still allocate without swapping, or None if unknown."""
    known = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    return min(known) if known else None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_info(threads: int | None = None) -> dict[str, object]:
    """CPU, cores, versions, torch threads, allocator setting and load, as a dict.

    Examples:
        >>> sorted(machine_info(2))[:3]
        ['cpu', 'cpu_count', 'load_average_at_start']
    """
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads() if threads is None else threads,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", "unset"),
        "load_average_at_start": load_average(),
        "platform": platform.platform(),
    }
