"""What a store holds, per experiment: the sweep to report, its findings, what is missing.

A store can hold several sweeps of one experiment (a quick run, then the full grid, or
other settings). Runs share a sweep when their :func:`leaky.lab.plan.sweep_key` is the same
(everything but the grid's axes and the seed count, the leaky version, the thread count and
the user's data), the very key the lab planned them under. The report takes the sweep of
the most recent run, merges the grids its runs were planned with, recomputes the findings
through the experiment's own summary and says how many planned runs are absent, how many
diverged and how many other runs it left out.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaky.lab.config import config_to_dict, resolve
from leaky.lab.experiments import (
    EXPERIMENTS,
    Experiment,
    Finding,
    check_stored_results,
    get_experiment,
)
from leaky.lab.plan import plan, sweep_key
from leaky.lab.store import RunRecord, Store

__all__ = ["StoredSweep", "load_sweeps", "open_store_for_reading", "reproduce_command"]


@dataclass
class StoredSweep:
    """One experiment's sweep as the store holds it: what the report reads and draws."""

    experiment: str
    config: Any  # the experiment's config dataclass, grids merged over the sweep's runs
    runs: list[RunRecord]  # the runs of this sweep that are in the store
    findings: list[Finding]
    planned: int  # runs the merged grid asks for
    other_runs: int = 0  # runs of the same experiment from other settings, not reported

    @property
    def seeds(self) -> list[int]:
        """The seeds of the sweep's runs."""
        return sorted({run.seed for run in self.runs})

    @property
    def diverged(self) -> int:
        """How many of the sweep's runs diverged (loss NaN or infinite)."""
        return sum(run.status == "diverged" for run in self.runs)

    @property
    def missing(self) -> int:
        """How many planned runs are not in the store."""
        return self.planned - len(self.runs)


def open_store_for_reading(path: str | Path) -> Store:
    """Open an existing store read-only; a missing or empty file is an error (the Store's rule).

    Its damaged runs (:meth:`~leaky.lab.store.Store.damaged_runs`), those whose results
    are not what their experiment writes (:func:`~leaky.lab.experiments.check_stored_results`)
    among them, are left out of every sweep; the report names them.
    """
    return Store(path, readonly=True, check_results=check_stored_results)


def _sweep_key(experiment: Experiment, run: RunRecord) -> str:
    # The lab's own definition of a sweep, from what the store recorded of the run.
    versions = run.versions
    return sweep_key(
        experiment,
        run.config,
        version=versions.get("leaky"),
        threads=versions.get("threads"),
        data=versions.get("data"),
    )


def _age(run: RunRecord) -> tuple[str, str]:
    return (run.created, run.run_id)  # later runs sort last


def _merged_config(spec: Experiment, runs: list[RunRecord]) -> Any:
    """The config of the latest run, its grid grown by the values earlier runs planned."""
    runs = sorted(runs, key=_age, reverse=True)
    merged = dict(runs[0].config)
    for name in spec.axes:
        values: list[Any] = []
        for run in runs:  # the latest run's order first, as it was asked for
            values += [v for v in run.config.get(name, []) if v not in values]
        merged[name] = values
    merged["seeds"] = max(run.config.get("seeds", 1) for run in runs)
    return resolve(spec.config, merged)


def _cell_seed(cell: dict[str, Any], seed: int) -> str:
    return json.dumps([cell, seed], sort_keys=True)


def _sweep(name: str, runs: list[RunRecord]) -> StoredSweep | None:
    experiment = get_experiment(name)  # looked up once: the rest takes the object
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(_sweep_key(experiment, run), []).append(run)
    # The sweep of the latest run this leaky can read (a run from another version may have
    # settings it does not know; it is counted among the other runs, not a reason to fail).
    for chosen in sorted(groups.values(), key=lambda group: max(map(_age, group)), reverse=True):
        try:
            config = _merged_config(experiment, chosen)
            break
        except (ValueError, TypeError):
            continue
    else:
        return None
    # Matched by cell and seed, not run id: ids include the leaky version that ran them.
    # The report reads the store only: the data's files need not be here any more.
    data = chosen[0].versions.get("data") or {}
    wanted = {_cell_seed(spec.cell, spec.seed) for spec in plan(experiment, config, data=data)}
    present = [run for run in chosen if _cell_seed(run.cell, run.seed) in wanted]
    return StoredSweep(
        experiment=name,
        config=config,
        runs=present,
        findings=experiment.summarize(config, present),
        planned=len(wanted),
        other_runs=len(runs) - len(present),
    )


def load_sweeps(store: Store) -> dict[str, StoredSweep | None]:
    """Every known experiment -> its reported sweep, or None when no run of it can be read."""
    runs = store.runs()
    by_experiment: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_experiment.setdefault(run.experiment, []).append(run)
    return {
        name: _sweep(name, by_experiment[name]) if name in by_experiment else None
        for name in EXPERIMENTS
    }


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(_as_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)  # repr: exact round trip


def reproduce_command(experiment: str, config: Any | None, store: str | Path) -> str:
    """The ``leaky run`` command that recomputes this sweep (resuming from ``store``).

    Uses ``--quick`` when that preset needs fewer ``--set`` overrides than the defaults.

    Examples:
        >>> from leaky.lab.findings import resolve_config
        >>> reproduce_command("slope", resolve_config("slope", preset="quick"), "out/r.db")
        'leaky run slope --quick --store out/r.db'
        >>> reproduce_command("slope", resolve_config("slope", overrides={"seeds": 8}), "s.db")
        'leaky run slope --set seeds=8 --store s.db'
    """
    spec = get_experiment(experiment)
    words = ["leaky", "run", experiment]
    if config is not None:
        wanted = config_to_dict(config)
        options = []
        for flag, base in ((["--quick"], spec.presets.get("quick")), ([], {})):
            if base is None:
                continue
            defaults = config_to_dict(resolve(spec.config, base))
            sets = [
                f"--set {shlex.quote(f'{k}={_as_text(v)}')}"
                for k, v in wanted.items()
                if defaults[k] != v
            ]
            options.append(flag + sets)
        words += min(options, key=len)
    else:
        words.append("--quick")
    words += ["--store", shlex.quote(str(store))]
    return " ".join(words)
