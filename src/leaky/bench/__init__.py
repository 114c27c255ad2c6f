"""Measurement: leaky's ops and modules side by side with PyTorch, as ratios from one run."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from leaky.bench.batch_norm import run_batch_norm
from leaky.bench.kernels import run_kernels
from leaky.bench.memory import run_memory
from leaky.bench.monitor_overhead import run_monitor
from leaky.bench.result import BenchRow, SuiteResult
from leaky.bench.timing import Comparison, compare
from leaky.bench.training_step import run_train
from leaky.system.atomic import atomic_path, check_output_file
from leaky.system.errors import ParameterError
from leaky.system.machine import machine_info, usable_cores

__all__ = [
    "SUITES",
    "BenchRow",
    "BenchRun",
    "Comparison",
    "SuiteResult",
    "compare",
    "load_run",
    "run_benchmarks",
    "run_suite",
]

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


@dataclass
class BenchRun:
    """What :func:`run_benchmarks` measured: the machine, each suite's result, the JSON."""

    machine: dict[str, Any]
    device: str
    results: list[SuiteResult] = field(default_factory=list)
    json_path: Path | None = None

    def machine_line(self) -> str:
        """The machine in one line, as the measurements are printed under it."""
        info = self.machine
        return (
            f"machine: {info['cpu']}, {info['usable_cores']} usable cores, torch "
            f"{info['torch']}, numpy {info['numpy']}, {info['threads']} threads"
            + (f", {info['gpu']}" if "gpu" in info else "")
        )


def load_run(path: str | Path, suites: Sequence[str] = ()) -> BenchRun:
    """The run a ``--json`` file holds, with only ``suites`` (all when empty), measuring nothing.

    Its tables print as the run printed them (:meth:`SuiteResult.table`): the summaries
    are computed again from the raw samples, so a table copied from a stored run can be
    checked against it.

    Raises:
        ValueError: the file cannot be read, is not a run that ``--json`` wrote, or lacks
            one of ``suites``.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        run = BenchRun(
            machine=dict(document["machine"]),
            device=str(document["device"]),
            results=[SuiteResult.from_dict(suite) for suite in document["suites"]],
        )
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path} is not a run written by `leaky bench --json` "
            f"({type(error).__name__}: {error}); pass a file that command wrote"
        ) from None
    stored = [result.name for result in run.results]
    missing = [name for name in suites if name not in stored]
    if missing:
        raise ParameterError(
            f"{path} holds no {missing[0]!r} suite (it holds {', '.join(stored) or 'none'}); "
            "name one of those in {suites}, or none for all",
            "suites",
        )
    if suites:
        run.results = [result for result in run.results if result.name in suites]
    run.json_path = path
    return run


def run_benchmarks(
    suites: Sequence[str] = (),
    *,
    quick: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    json_out: str | Path | None = None,
    on_start: Callable[[BenchRun], object] | None = None,
    on_result: Callable[[SuiteResult], object] | None = None,
) -> BenchRun:
    """Run ``suites`` (all when empty) with ``threads`` torch threads, fixed for every one.

    Everything is checked before the first measurement: the suite names, a CUDA device
    for ``device="cuda"``, ``threads`` within the usable cores (more would time
    contention, not the code; default: all of them), and ``json_out``. ``on_start`` gets
    the run once the machine is known, ``on_result`` each suite's result as it finishes
    (a suite takes minutes); ``json_out`` gets every raw sample and the machine, whole.

    Raises:
        ParameterError: an unknown suite, no CUDA, too many threads.
        ResultMismatchError: a leaky result that differs from PyTorch's (nothing written).
    """
    unknown = [name for name in suites if name not in SUITES]
    if unknown:
        raise ParameterError(
            f"unknown suite {unknown[0]!r} in {{suites}}; choose from {', '.join(SUITES)}",
            "suites",
        )
    if device == "cuda" and not torch.cuda.is_available():  # asked for what is not there
        raise ParameterError(
            "{device} cuda needs a GPU, but CUDA is not available on this machine; nothing "
            "was measured (use {device} cpu)",
            "device",
        )
    cores = usable_cores()
    if threads is None:
        threads = cores
    elif not 1 <= threads <= cores:
        raise ParameterError(
            f"Expected {{threads}} at most {cores} (the usable cores here), but got {threads}",
            "threads",
        )
    target = None if json_out is None else check_output_file(json_out, parameter="json_out")
    torch.set_num_threads(threads)  # the memory suite's children take the same count
    run = BenchRun(machine_info(), device)
    if device == "cuda":
        run.machine["gpu"] = torch.cuda.get_device_name()
    if on_start is not None:
        on_start(run)
    for name in suites or tuple(SUITES):
        result = run_suite(name, quick=quick, device=device)
        run.results.append(result)
        if on_result is not None:
            on_result(result)
    if target is not None:
        document = {
            "machine": run.machine,
            "device": device,
            "quick": quick,
            "suites": [result.to_dict() for result in run.results],
        }
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(document, indent=1))
        run.json_path = target
    return run
