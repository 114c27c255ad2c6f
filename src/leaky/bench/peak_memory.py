"""Peak memory of one training step, each measurement in a fresh process.

``peak_growth_mib(kind, variant)`` runs ``python -m leaky.bench.peak_memory`` with
``MALLOC_MMAP_THRESHOLD_=65536``, so glibc serves every large tensor from its own mapping and
returns it on free; otherwise freed 16 MiB blocks stay in the heap and the peak depends on
allocation order, not on what is alive. The child builds the model
(:mod:`leaky.lab.benchmark_models`),
takes one warm-up step, then per step resets VmHWM through ``/proc/self/clear_refs``, reads
VmRSS, runs the step (forward, loss, backward, SGD update) and reads VmHWM:
growth = VmHWM - VmRSS. Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

import torch

from leaky.lab.benchmark_models import KINDS, build

__all__ = ["MMAP_THRESHOLD", "can_measure", "peak_growth_mib"]

MMAP_THRESHOLD = "65536"


def can_measure() -> bool:
    """Whether this system lets a process reset and read its peak resident set (Linux)."""
    return os.path.exists("/proc/self/clear_refs")


def _status_kib() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, rest = line.split(":", 1)
                values[key] = int(rest.split()[0])
    return values


def _child(kind: str, variant: str, quick: bool, steps: int) -> list[float]:
    model, x, loss = build(kind, variant, quick)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        loss(model(x)).backward()
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
    return growth


def peak_growth_mib(kind: str, variant: str, *, quick: bool, steps: int) -> list[float]:
    """Peak growth (MiB) of each of ``steps`` training steps, measured in a fresh process.

    The child runs with this process's torch thread count (passed on its command line).
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    command = [sys.executable, "-m", "leaky.bench.peak_memory", kind, variant]
    command += ["--steps", str(steps), "--threads", str(torch.get_num_threads())]
    command += ["--quick"] if quick else []
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {kind}/{variant} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["growth_mib"]


def _main() -> None:
    parser = argparse.ArgumentParser(description="one peak-memory measurement (a child process)")
    parser.add_argument("kind", choices=tuple(KINDS))
    parser.add_argument("variant")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    growth = _child(args.kind, args.variant, args.quick, args.steps)
    print(json.dumps({"growth_mib": growth}))


if __name__ == "__main__":
    _main()
