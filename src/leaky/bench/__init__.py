"""Measurement: leaky's ops and modules side by side with PyTorch, as ratios from one run."""

from __future__ import annotations

from collections.abc import Callable

from leaky.bench.batch_norm import run_batch_norm
from leaky.bench.kernels import run_kernels
from leaky.bench.memory import run_memory
from leaky.bench.monitor_overhead import run_monitor
from leaky.bench.result import BenchRow, SuiteResult
from leaky.bench.timing import Comparison, compare
from leaky.bench.training_step import run_train

__all__ = ["SUITES", "BenchRow", "Comparison", "SuiteResult", "compare", "run_suite"]

SUITES: dict[str, Callable[..., SuiteResult]] = {
    "batchnorm": run_batch_norm,
    "kernels": run_kernels,
    "memory": run_memory,
    "monitor": run_monitor,
    "train": run_train,
}


def run_suite(name: str, *, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """Run one suite by name."""
    if name not in SUITES:
        raise ValueError(f"Unknown benchmark suite {name!r}. Valid suites: {', '.join(SUITES)}")
    return SUITES[name](quick=quick, device=device)
