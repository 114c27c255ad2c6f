"""Turn an experiment and its grid into runs, and execute the ones not yet in the store.

Each run is identified by a hash of the experiment, its resolved config, the cell and the
seed. Runs execute in the calling process (``workers=1``) or in a pool of fresh processes,
each with ``cores // workers`` torch threads; the calling process alone writes the store,
one transaction per finished run. A run whose loss turns NaN or infinite is stored as
diverged and the sweep goes on.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import leaky
from leaky.config import config_hash, config_to_dict, resolve
from leaky.machine import cpu_model
from leaky.store import RunRecord, Store

__all__ = ["RunSpec", "SweepResult", "execute", "plan", "run_one"]


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: picklable, so a worker process can take it."""

    experiment: str
    cell: dict[str, Any]
    seed: int
    config: dict[str, Any]
    run_id: str


@dataclass(frozen=True)
class SweepResult:
    """How a sweep went."""

    total: int
    ran: int
    skipped: int
    diverged: int


def plan(experiment_name: str, config: Any) -> list[RunSpec]:
    """Every (cell, seed) of the experiment's grid for this config."""
    from leaky.experiments import get_experiment

    experiment = get_experiment(experiment_name)
    config_dict = config_to_dict(config)
    # A run is named by what it depends on: the config minus the grid's axes and the seed
    # count (the cell and the seed say those), plus the code's version. Growing a grid or
    # adding seeds then reuses every run already stored.
    shared = {k: v for k, v in config_dict.items() if k not in (*experiment.axes, "seeds")}
    specs: dict[str, RunSpec] = {}
    for cell in experiment.cells(config):
        for seed in experiment.seeds(config):
            run_id = config_hash(experiment.name, shared, cell, seed, leaky.__version__)
            specs.setdefault(run_id, RunSpec(experiment.name, cell, seed, config_dict, run_id))
    return list(specs.values())


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": str(torch.get_num_threads()),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "leaky": leaky.__version__,
    }


def run_one(spec: RunSpec) -> RunRecord:
    """Run one spec in this process with its seed; return the record to store."""
    from leaky.experiments import get_experiment

    experiment = get_experiment(spec.experiment)
    config = resolve(experiment.config, spec.config)
    torch.manual_seed(spec.seed)
    start = time.perf_counter()
    output = experiment.run(config, dict(spec.cell), spec.seed)
    seconds = time.perf_counter() - start
    return RunRecord(
        run_id=spec.run_id,
        experiment=spec.experiment,
        cell=spec.cell,
        seed=spec.seed,
        config=spec.config,
        status="diverged" if output.diverged else "finished",
        seconds=seconds,
        metrics=output.metrics,
        layers=output.layers,
        results=output.results,
        versions=_versions(),
    )


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def check_workers(workers: object) -> int:
    """Validate a worker count against this machine's cores.

    Examples:
        >>> check_workers(1)
        1
    """
    cores = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= cores:
        raise ValueError(
            f"Expected --workers between 1 and {cores} (the cores here), got {workers}"
        )
    return workers


def execute(
    specs: list[RunSpec],
    store: Store,
    *,
    workers: int = 1,
    progress: bool | None = None,
    description: str = "runs",
) -> SweepResult:
    """Run every spec not yet in ``store``; save each as soon as it finishes."""
    cores = os.cpu_count() or 1
    check_workers(workers)
    done = store.run_ids()
    todo = [spec for spec in specs if spec.run_id not in done]
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=len(specs),
        initial=len(specs) - len(todo),
        desc=description,
        disable=not show,
        unit="run",
        leave=False,
    )
    diverged = 0
    try:
        if workers == 1:
            for spec in todo:
                record = run_one(spec)
                store.save(record)
                diverged += record.status == "diverged"
                bar.update()
        else:
            threads = max(1, cores // workers)
            context = multiprocessing.get_context("spawn")
            pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
            )
            futures = [pool.submit(run_one, spec) for spec in todo]
            try:
                for future in concurrent.futures.as_completed(futures):
                    record = future.result()
                    store.save(record)
                    diverged += record.status == "diverged"
                    bar.update()
            except BaseException:
                # An error or Ctrl-C: keep every run that did finish, drop the queue, stop.
                for future in futures:
                    if future.done() and not future.cancelled() and future.exception() is None:
                        store.save(future.result())
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    finally:
        bar.close()
    return SweepResult(len(specs), len(todo), len(specs) - len(todo), diverged)
