"""The peak memory of one training step of a model from a file, as it is and with leaky.

:func:`step_peaks` runs ``python -m leaky.diagnosis.memory_peak`` once per variant ("as it
is" and "leaky", the copy :func:`leaky.diagnosis.memory_report.leaky_copy` makes), each in
a fresh process that built nothing else, in the environment
:mod:`leaky.system.resident_peak` describes: the child builds the model, takes a warm-up
step (forward, loss, backward, SGD update), then measures ``steps`` more (on a GPU, with
the CUDA allocator's peak instead). A fresh process
per variant because an allocator that served one model's step keeps some of its memory,
and the second model's peak would depend on the first. Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

from leaky.diagnosis.memory_report import leaky_copy
from leaky.diagnosis.model_file import (
    build_model,
    first_line,
    load_factory,
    load_weights,
    random_batch,
)
from leaky.diagnosis.outputs import prediction
from leaky.system.resident_peak import can_measure, child_environment, step_growth_bytes

__all__ = ["VARIANTS", "can_measure", "step_peaks"]

VARIANTS = ("as it is", "leaky")


def _child(arguments: dict[str, Any]) -> list[int]:
    torch.manual_seed(arguments["seed"])
    model = build_model(load_factory(arguments["model"]))
    if arguments["weights"] is not None:
        load_weights(model, arguments["weights"])
    if arguments["variant"] == "leaky":
        model, _ = leaky_copy(model)  # the original is freed: only the copy runs
    device = torch.device(arguments["device"])
    model.train().to(device)
    generator = torch.Generator().manual_seed(arguments["seed"])
    shape = (arguments["batch_size"], *arguments["input_shape"])
    range_ = arguments["input_range"]
    x = random_batch(shape, generator, None if range_ is None else tuple(range_)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step() -> None:
        prediction(model(x)).float().sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: gradients and optimizer state exist from here on
    if device.type == "cuda":
        return [_cuda_growth_bytes(step, device) for _ in range(arguments["steps"])]
    return [step_growth_bytes(step) for _ in range(arguments["steps"])]


def _cuda_growth_bytes(step: Callable[[], None], device: torch.device) -> int:
    # The caching allocator's own count: what tensors held at the step's peak, above
    # what they held before it.
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def step_peaks(
    model: str,
    *,
    input_shape: tuple[int, ...],
    batch_size: int,
    seed: int = 0,
    input_range: tuple[int, int] | None = None,
    weights: str | None = None,
    steps: int = 3,
    device: str = "cpu",
) -> dict[str, int]:
    """Median peak growth of a training step, in bytes, per variant ("as it is", "leaky").

    On the CPU, the resident set's high-water mark; with ``device="cuda"``, the CUDA
    caching allocator's peak of allocated bytes.

    Raises:
        ValueError: the model failed in the child (its message, in one line).
        OSError: this system cannot measure a process's peak (not Linux).
    """
    if device == "cpu" and not can_measure():
        raise OSError("Peak memory is read from Linux's /proc, which this system does not have")
    peaks = {}
    for variant in VARIANTS:
        arguments = {
            "model": model,
            "variant": variant,
            "input_shape": list(input_shape),
            "batch_size": batch_size,
            "seed": seed,
            "input_range": None if input_range is None else list(input_range),
            "weights": None if weights is None else str(weights),
            "steps": steps,
            "device": device,
            "threads": torch.get_num_threads(),
        }
        command = [sys.executable, "-m", "leaky.diagnosis.memory_peak", json.dumps(arguments)]
        done = subprocess.run(
            command, env=child_environment(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise ValueError(
                f"Measuring the step's peak ({variant}) failed: "
                + (lines[-1] if lines else f"exit code {done.returncode}")
            )
        peaks[variant] = int(statistics.median(json.loads(done.stdout.splitlines()[-1])))
    return peaks


def _main() -> int:
    parser = argparse.ArgumentParser(description="one peak measurement (a child process)")
    parser.add_argument("arguments", help="JSON: what step_peaks passes")
    arguments = json.loads(parser.parse_args().arguments)
    torch.set_num_threads(arguments["threads"])
    try:
        growth = _child(arguments)
    except (Exception, SystemExit) as error:
        print(f"{type(error).__name__}: {first_line(error)}", file=sys.stderr)
        return 2
    print(json.dumps(growth))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
