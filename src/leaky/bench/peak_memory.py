"""Peak memory of one training step, each measurement in a fresh process.

``peak_growth_mib(kind, variant)`` runs ``python -m leaky.bench.peak_memory`` in the
environment :mod:`leaky.system.resident_peak` describes. The child builds the model
(:mod:`leaky.lab.benchmark_models`), takes one warm-up step, then measures each step
(forward, loss, backward, SGD update) with
:func:`leaky.system.resident_peak.step_growth_bytes`. Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from leaky.lab.benchmark_models import KINDS, build
from leaky.system.resident_peak import (
    MMAP_THRESHOLD,
    can_measure,
    child_environment,
    step_growth_bytes,
)

__all__ = ["MMAP_THRESHOLD", "can_measure", "peak_growth_mib"]


def _child(kind: str, variant: str, quick: bool, steps: int) -> list[float]:
    model, x, loss = build(kind, variant, quick)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        loss(model(x)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: weights' gradients and optimizer state exist from here on
    return [step_growth_bytes(step) / 2**20 for _ in range(steps)]


def peak_growth_mib(kind: str, variant: str, *, quick: bool, steps: int) -> list[float]:
    """Peak growth (MiB) of each of ``steps`` training steps, measured in a fresh process.

    The child runs with this process's torch thread count (passed on its command line).
    """
    env = child_environment()
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
