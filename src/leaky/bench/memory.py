"""The ``memory`` suite: peak memory of one training step, and bytes kept per element.

Peak growth: each variant runs in a fresh process (``python -m leaky.bench.memory --child``)
started with ``MALLOC_MMAP_THRESHOLD_=65536``, so glibc serves every large tensor from its
own mapping and returns it on free; otherwise freed 16 MiB blocks stay in the heap and the
peak depends on allocation order, not on what is alive. The child resets VmHWM through
``/proc/self/clear_refs``, reads VmRSS, runs one step (forward, loss, backward, SGD update)
and reads VmHWM: growth = VmHWM - VmRSS. Variants alternate over rounds; the figure is the
median. Linux only (it reads /proc).

Bytes per element: with ``saved_tensors_hooks``, what autograd keeps for one activation
beyond the output tensor itself (which the next layer keeps anyway), per output element.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

import torch

import leaky
from leaky.bench.result import SuiteResult

__all__ = ["MMAP_THRESHOLD", "VARIANTS", "MemoryRow", "kept_bytes_per_element", "run_memory"]

MMAP_THRESHOLD = "65536"
VARIANTS = ("leaky", "leaky-mask", "torch", "torch-inplace", "relu")
_SLOPE = 0.01


@dataclass
class MemoryRow:
    """Median peak growth of one variant, its ratio to ReLU's, and every sample."""

    model: str
    variant: str
    growth_mib: float
    ratio_to_relu: float
    samples_mib: list[float] = field(default_factory=list)


def _activation(variant: str) -> torch.nn.Module:
    return {
        "leaky": lambda: leaky.nn.LeakyReLU(_SLOPE),
        "leaky-mask": lambda: leaky.nn.LeakyReLU(_SLOPE, save="mask"),
        "torch": lambda: torch.nn.LeakyReLU(_SLOPE),
        "torch-inplace": lambda: torch.nn.LeakyReLU(_SLOPE, inplace=True),
        "relu": torch.nn.ReLU,
    }[variant]()


def _model(kind: str, variant: str, quick: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "mlp":
        depth, width, batch = (8, 512, 2048) if quick else (20, 1024, 4096)
        layers: list[torch.nn.Module] = []
        for _ in range(depth):
            layers += [torch.nn.Linear(width, width), _activation(variant)]
        return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)), torch.randn(batch, width)
    channels, batch = (16, 64) if quick else (32, 256)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, channels, 3, padding=1),
        _activation(variant),
        torch.nn.Conv2d(channels, channels, 3, padding=1),
        _activation(variant),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(channels, channels, 3, padding=1),
        _activation(variant),
        torch.nn.Flatten(),
        torch.nn.Linear(channels * 16 * 16, 10),
    )
    return model, torch.randn(batch, 3, 32, 32)


def _status_kib() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, rest = line.split(":", 1)
                values[key] = int(rest.split()[0])
    return values


def _child(kind: str, variant: str, quick: bool, steps: int) -> dict[str, object]:
    model, x = _model(kind, variant, quick)
    target = torch.randint(10, (len(x),))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        torch.nn.functional.cross_entropy(model(x), target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: weights' gradients and optimizer state exist from here on
    growth = []
    for _ in range(steps):
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        before = _status_kib()["VmRSS"]
        step()
        growth.append((_status_kib()["VmHWM"] - before) / 1024)
    return {"growth_mib": growth}


def _spawn(kind: str, variant: str, quick: bool, steps: int) -> list[float]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    command = [
        sys.executable,
        "-m",
        "leaky.bench.memory",
        "--child",
        variant,
        "--model",
        kind,
        "--steps",
        str(steps),
        *(["--quick"] if quick else []),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {kind}/{variant} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["growth_mib"]


def kept_bytes_per_element(variant: str) -> float:
    """Bytes autograd keeps for one activation beyond its output, per output element.

    Examples:
        >>> kept_bytes_per_element("leaky"), kept_bytes_per_element("torch")
        (0.0, 4.0)
    """
    x = torch.randn(64, 1000, requires_grad=True)
    h = x * 1.0  # a non-leaf input, as inside a network (in-place variants need one)
    kept: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = _activation(variant)(h)
    output = y.untyped_storage().data_ptr()
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in kept}
    return sum(n for ptr, n in storages.items() if ptr != output) / y.numel()


def run_memory(*, quick: bool = False, device: str = "cpu") -> SuiteResult:
    """Peak growth of a training step per variant (MLP and small CNN), and bytes per element."""
    result = SuiteResult("memory")
    if device != "cpu":
        result.notes.append("peak memory is measured for the CPU only (resident set size)")
        return result
    if not os.path.exists("/proc/self/clear_refs"):
        result.notes.append("skipped: needs Linux /proc to read and reset the peak")
        return result
    rounds, steps = (1, 1) if quick else (3, 2)
    for kind in ("mlp", "cnn"):
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for variant in order:
                samples[variant] += _spawn(kind, variant, quick, steps)
        relu = statistics.median(samples["relu"])
        for variant in VARIANTS:
            growth = statistics.median(samples[variant])
            result.memory.append(
                MemoryRow(kind, variant, growth, growth / relu if relu else 0.0, samples[variant])
            )
    result.bytes_per_element = {v: kept_bytes_per_element(v) for v in VARIANTS}
    result.notes.append(
        f"peak growth per step, each variant in a fresh process, MALLOC_MMAP_THRESHOLD_="
        f"{MMAP_THRESHOLD}; median of {rounds * steps} step(s); ratio to torch.nn.ReLU"
    )
    return result


def _main() -> None:
    parser = argparse.ArgumentParser(description="child process of the memory suite")
    parser.add_argument("--child", choices=VARIANTS, required=True)
    parser.add_argument("--model", choices=("mlp", "cnn"), required=True)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("LEAKY_BENCH_THREADS", torch.get_num_threads())))
    print(json.dumps(_child(args.model, args.child, args.quick, args.steps)))


if __name__ == "__main__":
    _main()
