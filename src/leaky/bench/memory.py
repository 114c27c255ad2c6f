"""The ``memory`` suite: peak memory of one training step, and bytes kept per element.

Peak growth: an MLP and a small CNN, once per activation variant, each step in a fresh
process (:mod:`leaky.bench.peak_memory`); variants alternate over rounds and the figure is
the median, as a ratio to ``torch.nn.ReLU``'s.

Bytes per element: with ``saved_tensors_hooks``, what autograd keeps for one activation
beyond the output tensor itself (which the next layer keeps anyway), per output element.
"""

from __future__ import annotations

import statistics

import torch

from leaky.bench.peak_memory import MMAP_THRESHOLD, can_measure, peak_growth_mib
from leaky.bench.result import MemoryRow, SuiteResult
from leaky.diagnosis.saved_tensors import saved_storages
from leaky.lab.benchmark_models import ACTIVATION_VARIANTS, activation_module

__all__ = ["VARIANTS", "kept_bytes_per_element", "measure_peaks", "run_memory"]

VARIANTS = ACTIVATION_VARIANTS


def kept_bytes_per_element(variant: str) -> float:
    """Bytes autograd keeps for one activation beyond its output, per output element.

    Examples:
        >>> kept_bytes_per_element("leaky"), kept_bytes_per_element("torch")
        (0.0, 4.0)
    """
    x = torch.randn(64, 1000, requires_grad=True)
    h = x * 1.0  # a non-leaf input, as inside a network (in-place variants need one)
    with saved_storages() as storages:
        y = activation_module(variant)(h)
    output = y.untyped_storage().data_ptr()
    return sum(n for ptr, n in storages.items() if ptr != output) / y.numel()


def run_memory(*, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """Peak growth of a training step per variant (MLP and small CNN), and bytes per element."""
    result = SuiteResult("memory")
    if device != "cpu":
        result.notes.append("peak memory is measured for the CPU only (resident set size)")
        return result
    if not can_measure():
        result.notes.append("skipped: needs Linux /proc to read and reset the peak")
        return result
    rounds, steps = (1, 1) if quick else (3, 2)
    for kind in ("mlp", "cnn"):
        result.memory += measure_peaks(
            kind, VARIANTS, "relu", quick=quick, rounds=rounds, steps=steps
        )
    result.bytes_per_element = {v: kept_bytes_per_element(v) for v in VARIANTS}
    result.notes.append(
        f"peak growth per step, each variant in a fresh process, MALLOC_MMAP_THRESHOLD_="
        f"{MMAP_THRESHOLD}; median of {rounds * steps} step(s); ratio to torch.nn.ReLU"
    )
    return result


def measure_peaks(
    kind: str,
    variants: tuple[str, ...],
    baseline: str,
    *,
    quick: bool,
    rounds: int,
    steps: int,
) -> list[MemoryRow]:
    """Median peak growth of each variant of ``kind``, as a ratio to ``baseline``'s.

    The variants run in turn, the order rotated each round, each in its own process.
    """
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
            samples[variant] += peak_growth_mib(kind, variant, quick=quick, steps=steps)
    reference = statistics.median(samples[baseline])
    rows = []
    for variant in variants:
        growth = statistics.median(samples[variant])
        ratio = growth / reference if reference else 0.0
        rows.append(MemoryRow(kind, variant, growth, baseline, ratio, samples[variant]))
    return rows
