"""Microseconds per op for the passes the monitor's statistics make, on one output tensor.

Why ``leaky.monitor.reductions`` counts with float32 0/1 values rather than bool masks, and
reads a gradient once: each op timed alone, in a loop, on a 256 x 1024 float32 tensor (the
suite's MLP output) and on a 1024 x 1024 one (one of its weight gradients).

    python examples/monitor_reduction_ops.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def _us(fn: Callable[[], object], repeat: int = 200) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def _report(shape: tuple[int, int]) -> None:
    y = torch.randn(*shape)
    marks = torch.empty(shape)
    mask = torch.empty(shape, dtype=torch.bool)
    flat = y.view(-1)
    ops = {
        "gt into bool": lambda: torch.gt(y, 0, out=mask),
        "sum of bool per unit (int32)": lambda: mask.sum(0, dtype=torch.int32),
        "gt into float32": lambda: torch.gt(y, 0, out=marks),
        "sum of float32 per unit": lambda: marks.sum(0),
        "aminmax": lambda: torch.aminmax(y),
        "vector_norm": lambda: torch.linalg.vector_norm(y),
        "dot(y, y)": lambda: torch.dot(flat, flat),
        "sum": lambda: y.sum(),
    }
    print(f"{shape[0]} x {shape[1]} float32")
    for name, fn in ops.items():
        print(f"  {name:30s} {_us(fn):8.1f} us")


def main() -> None:
    """Print the time of each op, one thread."""
    torch.set_num_threads(1)
    for shape in ((256, 1024), (1024, 1024)):
        _report(shape)


if __name__ == "__main__":
    main()
