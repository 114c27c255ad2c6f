"""The demo: every experiment's quick preset into one store, then the findings and the report.

An orchestration on top of the lab (experiments, runner, store) and the report, beside the
command line, so that neither of those layers imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from leaky.atomic import ensure_output_dir
from leaky.experiments import EXPERIMENTS, Finding
from leaky.findings import resolve_config, run_experiment, summarize, write_findings
from leaky.messages import LANGUAGES
from leaky.report import ReportFiles, write_report
from leaky.runner import DEFAULT_THREADS, check_parallelism, default_workers
from leaky.store import Store

__all__ = ["run_demo"]


def run_demo(
    out_dir: str | Path,
    *,
    lang: str = "en",
    preset: str = "quick",
    workers: int | None = None,
    threads: int = DEFAULT_THREADS,
    progress: bool | None = None,
    echo: Callable[[str], object] | None = None,
) -> tuple[list[Finding], Path, ReportFiles]:
    """Every experiment's ``preset`` into ``out_dir/results.db``, then the report.

    Runs use ``threads`` torch threads each, in ``workers`` processes (default: as many as
    the usable cores hold). Writes ``findings.json``, ``report.html``, ``report.md`` and
    ``figures/`` beside the store; returns the findings, the path of ``findings.json`` and
    the report's files.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"Expected --lang in {', '.join(LANGUAGES)}, but got {lang!r}")
    if workers is None:
        workers = default_workers(threads)
    check_parallelism(workers, threads)
    out = ensure_output_dir(out_dir)
    findings: list[Finding] = []
    with Store(out / "results.db") as store:
        for name in EXPERIMENTS:
            if echo is not None:
                echo(f"running {name} ({preset} preset) ...")
            config = resolve_config(name, preset=preset)
            run_experiment(name, config, store, workers=workers, threads=threads, progress=progress)
            findings += summarize(name, config, store, threads=threads)
    path = write_findings(out / "findings.json", findings, lang)
    if echo is not None:
        echo("writing the report ...")
    return findings, path, write_report(out / "results.db", out, lang=lang)
