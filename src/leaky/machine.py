"""The machine a measurement ran on, said the same way by every benchmark."""

from __future__ import annotations

import os
import platform

import numpy as np
import torch

__all__ = ["cpu_model", "load_average", "machine_info"]


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


def machine_info(threads: int | None = None) -> dict[str, object]:
    """CPU, cores, versions, torch threads, allocator setting and load, as a dict.

    Examples:
        >>> sorted(machine_info(2))[:3]
        ['cpu', 'cpu_count', 'load_average_at_start']
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads() if threads is None else threads,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", "unset"),
        "load_average_at_start": load_average(),
        "platform": platform.platform(),
    }
