"""Findings as data: run experiments into a store, summarise, and write ``findings.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leaky.atomic import atomic_path
from leaky.config import resolve
from leaky.experiments import Finding, get_experiment
from leaky.messages import LANGUAGES, get_messages
from leaky.resources import check_resources
from leaky.runner import SweepResult, execute, plan
from leaky.store import Store

if TYPE_CHECKING:
    from leaky.report import ReportFiles

__all__ = [
    "format_findings",
    "resolve_config",
    "run_demo",
    "run_experiment",
    "summarize",
    "write_findings",
]


def resolve_config(
    name: str, *, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """The experiment's config: defaults, then the preset, then the overrides.

    Raises:
        ValueError: an unknown preset, key or value, or a sweep that cannot fit here (too
            many runs, or a run too big for the memory available; see
            :func:`leaky.resources.check_resources`).
    """
    experiment = get_experiment(name)
    if preset and preset not in experiment.presets:
        raise ValueError(f"Unknown preset {preset!r}; {name} has {', '.join(experiment.presets)}")
    base = dict(experiment.presets[preset]) if preset else {}
    config = resolve(experiment.config, {**base, **(overrides or {})})
    check_resources(name, config)  # before a store is opened or a plan is built
    return config


def run_experiment(
    name: str,
    config: Any,
    store: Store,
    *,
    workers: int = 1,
    progress: bool | None = None,
) -> SweepResult:
    """Run the runs of ``config`` that are not in ``store`` yet."""
    return execute(plan(name, config), store, workers=workers, progress=progress, description=name)


def summarize(name: str, config: Any, store: Store) -> list[Finding]:
    """The experiment's findings from the runs of this config in the store."""
    experiment = get_experiment(name)
    wanted = {spec.run_id for spec in plan(name, config)}
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


def run_demo(
    out_dir: str | Path,
    *,
    lang: str = "en",
    preset: str = "quick",
    workers: int = 1,
    progress: bool | None = None,
    echo: Any = None,
) -> tuple[list[Finding], Path, ReportFiles]:
    """Every experiment's ``preset`` into ``out_dir/results.db``, then the report.

    Writes ``findings.json``, ``report.html``, ``report.md`` and ``figures/`` beside the
    store; returns the findings, the path of ``findings.json`` and the report's files.
    """
    from leaky.atomic import ensure_output_dir
    from leaky.experiments import EXPERIMENTS
    from leaky.report import write_report

    if lang not in LANGUAGES:
        raise ValueError(f"Expected --lang in {', '.join(LANGUAGES)}, but got {lang!r}")
    out = ensure_output_dir(out_dir)
    findings: list[Finding] = []
    with Store(out / "results.db") as store:
        for name in EXPERIMENTS:
            if echo is not None:
                echo(f"running {name} ({preset} preset) ...")
            config = resolve_config(name, preset=preset)
            run_experiment(name, config, store, workers=workers, progress=progress)
            findings += summarize(name, config, store)
    path = write_findings(out / "findings.json", findings, lang)
    if echo is not None:
        echo("writing the report ...")
    return findings, path, write_report(out / "results.db", out, lang=lang)
