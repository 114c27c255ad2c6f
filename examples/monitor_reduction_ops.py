"""Microseconds per op for the passes the monitor's statistics make, on one output tensor.

Why ``leaky.diagnosis.monitor.reductions`` counts with float32 0/1 values rather than bool masks,
decides firing from each unit's largest value, reads a gradient once, and reduces a large
tensor in memory order but a small one in one call: each op timed alone on a 256 x 1024
float32 tensor (the suite's MLP output, 1 MiB), a 1024 x 1024 one (4 MiB), a 2048 x 1024 one
(8 MiB), an 8 x 64 x 32 x 32 convolution output (ResNet-18's first stage at batch 8, 2 MiB)
and a 64 x 128 x 16 x 16 one (8 MiB); then small feature maps (4 x 4 to 10 x 10), where
reducing the batch dimension first wins ("batch first"). Three columns: the same tensor
again and again ("in cache"), a new one each time from 64 MiB of them ("from memory"), and
the tensor its layer (Linear or 3 x 3 convolution, then ReLU) has just written ("after its
layer": what a forward hook reads, the case that decides).

    python examples/monitor_reduction_ops.py             # one thread
    python examples/monitor_reduction_ops.py --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

import torch

from leaky.diagnosis.monitor import reductions
from leaky.diagnosis.monitor.reductions import reduce_per_unit


def _us(fn: Callable[[torch.Tensor], object], tensors: list[torch.Tensor], rounds: int) -> float:
    for t in tensors[:3]:
        fn(t)
    start = time.perf_counter()
    for _ in range(rounds):
        for t in tensors:
            fn(t)
    return (time.perf_counter() - start) / (rounds * len(tensors)) * 1e6


def _after_layer_us(fn: Callable[[torch.Tensor], object], shape: tuple[int, ...]) -> float:
    # The layer that writes a tensor of this shape, run before every timed call.
    if len(shape) == 2:
        layer: torch.nn.Module = torch.nn.Linear(shape[1], shape[1])
    else:
        layer = torch.nn.Conv2d(shape[1], shape[1], 3, padding=1)
    x = torch.randn(*shape)
    times = []
    with torch.no_grad():
        for _ in range(61):
            y = torch.relu(layer(x))
            start = time.perf_counter()
            fn(y)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e6


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
        "sum per unit, memory order": lambda y: _memory_order("sum", y, dims),
        "amax per unit, one call": lambda y: y.amax(dims),
        "amax per unit, memory order": lambda y: _memory_order("amax", y, dims),
        "amax per unit, as leaky does": lambda y: reduce_per_unit("amax", y, dims),
        **(
            {
                "amax of 1/4 of units, gathered": lambda y: _gathered(y, 4),
                "amax of 1/64 of units, gathered": lambda y: _gathered(y, 64),
            }
            if len(shape) == 2
            else {}
        ),
        **(
            {
                "sum per unit, batch first": lambda y: _batch_first("sum", y),
                "amax per unit, batch first": lambda y: _batch_first("amax", y),
            }
            if len(shape) == 4
            else {}
        ),
        "amin": lambda y: y.amin(),
        "aminmax": lambda y: torch.aminmax(y),
        "vector_norm": lambda y: torch.linalg.vector_norm(y),
        "dot(y, y)": lambda y: torch.dot(y.view(-1), y.view(-1)),
        "sum": lambda y: y.sum(),
    }
    size = torch.Size(shape).numel() * 4 / 2**20
    print(
        f"{' x '.join(map(str, shape))} float32 ({size:g} MiB)"
        f"{'in cache':>12s}{'from memory':>14s}{'after its layer':>18s}"
    )
    for name, fn in ops.items():
        print(
            f"  {name:30s} {_us(fn, hot, 100):8.1f} us {_us(fn, cold, 3):10.1f} us "
            f"{_after_layer_us(fn, shape):12.1f} us"
        )


def _memory_order(reduce: str, y: torch.Tensor, dims: list[int]) -> torch.Tensor:
    # leaky's memory-order path whatever the size: rows in blocks, channels' H * W first.
    with (
        mock.patch.object(reductions, "_ONE_CALL_BYTES", 0),
        mock.patch.object(reductions, "_SHORT_ROWS", 0),
    ):
        return reduce_per_unit(reduce, y, dims)


def _gathered(y: torch.Tensor, share: int) -> torch.Tensor:
    # Every share-th unit of an (N, units) output, gathered, then their per-unit peaks: what
    # reading only the units not yet fired would cost (without its small ops around it);
    # sites read every unit instead, which these rows show is no slower.
    units = torch.arange(0, y.shape[1], share)
    return reduce_per_unit("amax", y.index_select(1, units), [0])


def _batch_first(reduce: str, y: torch.Tensor) -> torch.Tensor:
    # An (N, C, H, W) output reduced over N first (whole rows), then over each channel's H * W.
    across = getattr(y.reshape(y.shape[0], -1), reduce)(0)
    return getattr(across.view(y.shape[1], -1), reduce)(1)


def main() -> None:
    """Print the time of each op with the threads asked for (one by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(parser.parse_args().threads)
    for shape in ((256, 1024), (1024, 1024), (2048, 1024), (8, 64, 32, 32), (64, 128, 16, 16)):
        _report(shape)
    print("small feature maps:")
    for shape in (
        (8, 512, 4, 4),
        (64, 128, 5, 5),
        (256, 64, 7, 7),
        (8, 128, 8, 8),
        (8, 256, 10, 10),
    ):
        _report(shape)


if __name__ == "__main__":
    main()
