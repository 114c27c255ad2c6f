"""Microseconds per op for the passes the monitor's statistics make, on one output tensor.

Why ``leaky.diagnosis.monitor.reductions`` counts with float32 0/1 values rather than bool masks,
decides firing from each unit's largest value, reads a gradient once, and reduces in memory
order: each op timed alone, in a loop, on a 256 x 1024 float32 tensor (the suite's MLP
output), a 1024 x 1024 one (one of its weight gradients) and a 64 x 128 x 16 x 16 convolution
output. Two columns: the same tensor again and again ("in cache") and a new one each time
from 64 MiB of them ("from memory", as inside a training step, where the activations have
left the cache by the time anything reads them again).

    python examples/monitor_reduction_ops.py             # one thread
    python examples/monitor_reduction_ops.py --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from leaky.diagnosis.monitor.reductions import reduce_per_unit


def _us(fn: Callable[[torch.Tensor], object], tensors: list[torch.Tensor], rounds: int) -> float:
    for t in tensors[:3]:
        fn(t)
    start = time.perf_counter()
    for _ in range(rounds):
        for t in tensors:
            fn(t)
    return (time.perf_counter() - start) / (rounds * len(tensors)) * 1e6


def _report(shape: tuple[int, ...]) -> None:
    count = max(2, (64 << 20) // (4 * torch.Size(shape).numel()))  # 64 MiB of them
    cold = [torch.randn(*shape) for _ in range(count)]
    hot = cold[:1]
    marks = torch.empty(shape)
    mask = torch.empty(shape, dtype=torch.bool)
    dims = [d for d in range(len(shape)) if d != (1 if len(shape) > 2 else len(shape) - 1)]
    ops = {
        "gt into bool": lambda y: torch.gt(y, 0, out=mask),
        "gt into float32": lambda y: torch.gt(y, 0, out=marks),
        "sum per unit, one call": lambda y: y.sum(dims),
        "sum per unit, memory order": lambda y: reduce_per_unit("sum", y, dims),
        "amax per unit, one call": lambda y: y.amax(dims),
        "amax per unit, memory order": lambda y: reduce_per_unit("amax", y, dims),
        "amin": lambda y: y.amin(),
        "aminmax": lambda y: torch.aminmax(y),
        "vector_norm": lambda y: torch.linalg.vector_norm(y),
        "dot(y, y)": lambda y: torch.dot(y.view(-1), y.view(-1)),
        "sum": lambda y: y.sum(),
    }
    print(f"{' x '.join(map(str, shape))} float32{'in cache':>24s}{'from memory':>14s}")
    for name, fn in ops.items():
        print(f"  {name:30s} {_us(fn, hot, 100):8.1f} us {_us(fn, cold, 3):10.1f} us")


def main() -> None:
    """Print the time of each op with the threads asked for (one by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(parser.parse_args().threads)
    for shape in ((256, 1024), (1024, 1024), (64, 128, 16, 16)):
        _report(shape)


if __name__ == "__main__":
    main()
