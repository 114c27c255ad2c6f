"""Findings as data: run experiments into a store, summarise, and write ``findings.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leaky.atomic import atomic_path
from leaky.config import resolve
from leaky.experiments import Finding, get_experiment
from leaky.messages import get_messages
from leaky.resources import check_resources
from leaky.runner import DEFAULT_THREADS, SweepResult, execute, plan
from leaky.store import Store

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
            :func:`leaky.resources.check_resources`), or data it needs that is not on disk.
    """
    experiment = get_experiment(name)
    if preset and preset not in experiment.presets:
        raise ValueError(f"Unknown preset {preset!r}; {name} has {', '.join(experiment.presets)}")
    base = dict(experiment.presets[preset]) if preset else {}
    config = resolve(experiment.config, {**base, **(overrides or {})})
    check_resources(name, config)  # before a store is opened or a plan is built
    if experiment.check_data is not None:
        experiment.check_data(config)
    return config


def run_experiment(
    name: str,
    config: Any,
    store: Store,
    *,
    workers: int = 1,
    threads: int = DEFAULT_THREADS,
    progress: bool | None = None,
) -> SweepResult:
    """Run the runs of ``config`` that are not in ``store`` yet, ``threads`` torch threads each."""
    return execute(
        plan(name, config, threads=threads),
        store,
        workers=workers,
        progress=progress,
        description=name,
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
