"""Findings as data: run experiments into a store, summarise, and write ``findings.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from leaky.data import load_user_task, task_spec_from_table
from leaky.lab.config import resolve
from leaky.lab.experiments import Finding, get_experiment
from leaky.lab.resources import check_resources
from leaky.lab.runner import DEFAULT_THREADS, SweepResult, execute, plan
from leaky.lab.store import RunRecord, Store
from leaky.messages import get_messages
from leaky.system.atomic import atomic_path

__all__ = [
    "format_findings",
    "resolve_config",
    "run_experiment",
    "summarize",
    "write_findings",
]


def resolve_config(
    name: str, *, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """The experiment's config: defaults, then the preset, then the overrides.

    Raises:
        ValueError: an unknown preset, key or value, a sweep that cannot fit here (too
            many runs, or a run too big for the memory available; see
            :func:`leaky.lab.resources.check_resources`), or data it needs that is not on disk.
    """
    experiment = get_experiment(name)
    if preset and preset not in experiment.presets:
        raise ValueError(f"Unknown preset {preset!r}; {name} has {', '.join(experiment.presets)}")
    base = dict(experiment.presets[preset]) if preset else {}
    overrides = _with_task_tables(name, dict(overrides or {}))
    config = resolve(experiment.config, {**base, **overrides})
    check_resources(name, config)  # before a store is opened or a plan is built
    for spec in experiment.data_specs(config):
        load_user_task(spec)  # missing, malformed or unusable data: an error now, not midway
    if experiment.check_data is not None:
        experiment.check_data(config)
    return config


def _with_task_tables(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A TOML config's ``[[task]]`` tables as ``file:`` specs in the experiment's data field.

    ``tasks`` (accuracy): the tables' tasks follow the ones ``tasks`` names, else replace
    the defaults; ``dataset`` (dying, slope): one table.
    """
    if "task" not in overrides:
        return overrides
    tables = overrides.pop("task")
    field_name = get_experiment(name).user_data
    if field_name is None:
        raise ValueError(f"The {name} experiment runs on built-in data only; remove [[task]]")
    if not isinstance(tables, list) or not tables:
        raise ValueError("Expected [[task]] tables (an array of tables) in the config file")
    specs = [task_spec_from_table(table) for table in tables]
    if field_name == "dataset":
        if len(specs) != 1:
            raise ValueError(f"The {name} experiment trains on one dataset: give one [[task]]")
        return {**overrides, "dataset": specs[0]}
    given = overrides.get(field_name, [])
    given = given.split(",") if isinstance(given, str) else list(given)
    return {**overrides, field_name: [*filter(None, given), *specs]}


def run_experiment(
    name: str,
    config: Any,
    store: Store,
    *,
    workers: int = 1,
    threads: int = DEFAULT_THREADS,
    progress: bool | None = None,
    on_saved: Callable[[RunRecord], None] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> SweepResult:
    """Run the runs of ``config`` that are not in ``store`` yet, ``threads`` torch threads each.

    ``on_saved`` gets each run as soon as the store holds it (see :func:`leaky.lab.runner.execute`).
    ``backend="ray"`` runs them as Ray tasks: on the cluster at ``address`` (``"auto"``,
    ``"HOST:PORT"`` or ``"ray://HOST:10001"``), or on a local Ray instance of
    ``workers x threads`` CPUs when ``address`` is None; see :func:`leaky.lab.runner.execute`.
    """
    return execute(
        plan(name, config, threads=threads),
        store,
        workers=workers,
        progress=progress,
        description=name,
        on_saved=on_saved,
        backend=backend,
        address=address,
    )


def summarize(
    name: str, config: Any, store: Store, *, threads: int = DEFAULT_THREADS
) -> list[Finding]:
    """The experiment's findings from the runs of this config (at ``threads``) in the store."""
    experiment = get_experiment(name)
    wanted = {spec.run_id for spec in plan(name, config, threads=threads)}
    runs = [run for run in store.runs(name) if run.run_id in wanted]
    return experiment.summarize(config, runs)


def format_findings(findings: Sequence[Finding], lang: str = "en") -> str:
    """A readable table: verdict, claim, the numbers in one line."""
    if not findings:
        return "(no findings)"
    words = get_messages(lang)
    verdicts = [words.terms(f.verdict) for f in findings]
    width = max(len(v) for v in verdicts)
    return "\n".join(
        f"{v.ljust(width)}  [{f.experiment}] {f.claim(lang)}\n{' ' * width}  {f.detail(lang)}"
        for v, f in zip(verdicts, findings, strict=True)
    )


def _json_safe(value: Any) -> Any:
    # NaN (a number that could not be computed) becomes null: strict JSON has no NaN.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_findings(path: str | Path, findings: Sequence[Finding], lang: str = "en") -> Path:
    """Write findings as JSON (claims and details in ``lang``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(
                _json_safe([f.to_dict(lang) for f in findings]), indent=2, ensure_ascii=False
            ),
            encoding="utf-8",
        )
    return path
