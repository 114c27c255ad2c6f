"""The demo: the quick preset of every experiment of the article into one store, then the report.

An orchestration on top of the lab (experiments, runner, store) and the report, beside the
command line, so that neither of those layers imports the other. When the FSDD recordings
are on this machine (see :mod:`leaky.data.fsdd`), the accuracy experiment runs its speech
tasks too; without them the report says how to get them. The experiments beyond the article
(``part="beyond"``: published claims, on MNIST read from disk) are not in the demo; the
report's "Beyond the article" part gives their commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from leaky.lab.experiments import EXPERIMENTS, Finding, get_experiment
from leaky.lab.experiments.accuracy import SPEECH_TASKS, speech_tasks_present
from leaky.lab.findings import resolve_config, summarize, write_findings
from leaky.lab.plan import DEFAULT_THREADS, plan
from leaky.lab.runner import check_parallelism, default_workers, execute
from leaky.lab.store import Store
from leaky.messages import LANGUAGES
from leaky.report import ReportFiles, write_report
from leaky.system.atomic import ensure_output_dir
from leaky.system.errors import ParameterError

__all__ = ["demo_overrides", "run_demo"]


def demo_overrides(name: str, preset: str, speech: bool) -> dict[str, Any]:
    """What the demo adds to an experiment's preset: the speech tasks, when ``speech``.

    Examples:
        >>> demo_overrides("accuracy", "quick", speech=True)["tasks"][-2:]
        ('fsdd-cnn', 'fsdd-mlp')
        >>> demo_overrides("accuracy", "quick", speech=False)
        {}
    """
    if name != "accuracy" or not speech:
        return {}
    experiment = get_experiment(name)
    tasks = experiment.presets[preset].get("tasks", experiment.config().tasks)
    return {"tasks": tuple(dict.fromkeys((*tasks, *SPEECH_TASKS)))}


def run_demo(
    out_dir: str | Path,
    *,
    lang: str = "en",
    preset: str = "quick",
    workers: int | None = None,
    threads: int = DEFAULT_THREADS,
    progress: bool | None = None,
    echo: Callable[[str], object] | None = None,
    speech: bool | None = None,
) -> tuple[list[Finding], Path, ReportFiles]:
    """Every experiment's ``preset`` into ``out_dir/results.db``, then the report.

    Runs use ``threads`` torch threads each, in ``workers`` processes (default: as many as
    the usable cores hold). Writes ``findings.json``, ``report.html``, ``report.md`` and
    ``figures/`` beside the store; returns the findings, the path of ``findings.json`` and
    the report's files. ``speech``: run the speech tasks (default: when the FSDD
    recordings are found, in ``$LEAKY_DATA_DIR/fsdd`` or the user cache).
    """
    if lang not in LANGUAGES:
        raise ParameterError(
            f"Expected {{lang}} in {', '.join(LANGUAGES)}, but got {lang!r}", "lang"
        )
    if workers is None:
        check_parallelism(1, threads)
        workers = default_workers(threads)
    check_parallelism(workers, threads)
    out = ensure_output_dir(out_dir)
    if speech is None:
        speech = speech_tasks_present()
    if echo is not None and not speech:
        echo("FSDD recordings not found: the speech tasks are left out (leaky data fetch fsdd)")
    findings: list[Finding] = []
    with Store(out / "results.db") as store:
        for name, experiment in EXPERIMENTS.items():
            if experiment.part != "article":  # beyond the article: MNIST, its own command
                continue
            if echo is not None:
                echo(f"running {name} ({preset} preset) ...")
            config = resolve_config(
                name, preset=preset, overrides=demo_overrides(name, preset, speech)
            )
            sweep = plan(name, config, threads=threads)  # once: run, then summarise
            execute(sweep, store, workers=workers, progress=progress)
            findings += summarize(sweep, store)
    path = write_findings(out / "findings.json", findings, lang)
    if echo is not None:
        echo("writing the report ...")
    return findings, path, write_report(out / "results.db", out, lang=lang)
