"""The lab's commands: ``leaky run``, ``demo``, ``report``, ``list`` and ``curves``."""

from __future__ import annotations

from typing import Any

import click

from leaky.app.options import (
    InputError,
    lang_option,
    parse_floats,
    split_formats,
    store_option,
    table,
    threads_option,
)

__all__ = ["curves", "demo", "list_command", "report", "run"]


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="out/curves",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for curves.png and curves.svg (created if missing).",
)
@click.option(
    "--slopes",
    default="0.01,0.1,0.3",
    show_default=True,
    callback=parse_floats,
    help="Leaky ReLU slopes to draw, comma-separated.",
)
@lang_option("Language of titles and table headings.")
def curves(out_dir: str, slopes: tuple[float, ...], lang: str) -> None:
    """Draw f(x) and f'(x) of ReLU, Leaky ReLU, PReLU, sigmoid and tanh, and print a table."""
    from leaky.messages import get_messages
    from leaky.report import write_curves

    paths, table, notices = write_curves(out_dir, slopes, lang)
    for notice in notices:
        click.echo(notice, err=True)
    click.echo(table)
    click.echo(get_messages(lang)("curves.wrote", paths=", ".join(str(p) for p in paths)))


@click.command(name="list")
@click.argument(
    "what",
    type=click.Choice(["experiments", "datasets", "activations", "settings"]),
    default="experiments",
)
@click.argument("experiment", required=False)
def list_command(what: str, experiment: str | None) -> None:
    """List experiments, datasets, activations, or an experiment's settings.

    ``leaky list settings EXPERIMENT`` shows each setting's type, default, value in the
    quick preset (``--quick``) and meaning; set them with ``--set KEY=VALUE`` or a TOML
    file (``--config``, for example examples/vanishing.toml).
    """
    from leaky.lab.experiments import EXPERIMENTS
    from leaky.lab.findings import listing

    if (what == "settings") != (experiment is not None):
        raise InputError(
            f"give an experiment after `leaky list settings` (one of {', '.join(EXPERIMENTS)})"
            if what == "settings"
            else f"only `leaky list settings` takes an experiment, not `leaky list {what}`"
        )
    if experiment is not None:
        experiment_name(click.get_current_context(), None, experiment)
    table(*listing(what, experiment))


def experiment_name(ctx: click.Context, param: click.Parameter | None, value: str) -> str:
    from leaky.lab.experiments import EXPERIMENTS

    if value not in EXPERIMENTS:
        raise InputError(f"unknown experiment {value!r}; choose from {', '.join(EXPERIMENTS)}")
    return value


@click.command()
@click.argument("experiment", callback=experiment_name)
@click.option("--quick", is_flag=True, help="Use the quick preset (about a minute on 2 cores).")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value; repeatable.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file of config overrides (--set wins).",
)
@store_option
@click.option("--workers", default=1, show_default=True, type=int, help="Processes in parallel.")
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar (nor progress lines in a log).")
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    metavar="DIR",
    help="Also log each run's curves to this folder for TensorBoard (one run per folder).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where runs compute: processes on this machine, or Ray tasks (pip install "
    "'leaky[ray]'); this process writes the store either way.",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --backend ray: the cluster (auto, HOST:6379 or ray://HOST:10001).  "
    "[default: a local Ray instance of --workers x --threads CPUs]",
)
def run(
    experiment: str,
    quick: bool,
    assignments: tuple[str, ...],
    config_file: str | None,
    store_path: str,
    quiet: bool,
    **options: Any,
) -> None:
    """Run EXPERIMENT (resuming from --store) and print its findings.

    Ctrl-C or SIGTERM stops it within seconds, keeping every run that finished: run the same
    command again to resume. Another `leaky run` of the same sweep on the same store computes
    the runs this one has not claimed.
    """
    from leaky.lab.config import load_toml, parse_assignments
    from leaky.lab.findings import format_findings, run_and_summarize

    overrides = load_toml(config_file) if config_file else {}
    overrides.update(parse_assignments(assignments))
    done = run_and_summarize(
        experiment,
        store_path,
        preset="quick" if quick else None,
        overrides=overrides,
        progress=False if quiet else None,
        **options,
    )
    click.echo(done.result.summary(experiment, store_path))
    click.echo(format_findings(done.findings))
    if done.logged is not None:
        where = options["tensorboard_dir"]
        click.echo(f"TensorBoard: {done.logged} runs in {where} (tensorboard --logdir {where})")


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="out/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the store, findings and figures.",
)
@lang_option("Language of the report (and of the figures, with a Japanese font).")
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Processes in parallel.  [default: usable cores / --threads]",
)
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bars (nor progress lines in a log).")
def demo(out_dir: str, lang: str, workers: int | None, threads: int, quiet: bool) -> None:
    """Run the quick preset of every experiment and write the report, into one folder."""
    from leaky.app.demo import run_demo
    from leaky.lab.findings import format_findings

    findings, path, report = run_demo(
        out_dir,
        lang=lang,
        workers=workers,
        threads=threads,
        progress=False if quiet else None,
        echo=lambda message: click.echo(message, err=True),
    )
    click.echo(format_findings(findings, lang))
    for notice in report.notices:
        click.echo(notice, err=True)
    click.echo(f"Results: {path.parent / 'results.db'}, findings: {path}")
    click.echo(f"Report: {report.html}")


@click.command()
@click.option(
    "--store",
    "store_path",
    default="out/results.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Results store to read (written by leaky run or leaky demo).",
)
@click.option(
    "--out",
    "out_dir",
    default="out/report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for report.html, report.md and figures/.",
)
@lang_option("Language of the report (and of the figures, with a Japanese font).")
@click.option(
    "--format",
    "formats",
    default="html,md",
    show_default=True,
    callback=split_formats,
    help="Pages to write: html, md or html,md.",
)
def report(store_path: str, out_dir: str, lang: str, formats: tuple[str, ...]) -> None:
    """Write the findings in a store as report.html / report.md with figures (never trains)."""
    from leaky.report import write_report

    files = write_report(store_path, out_dir, lang=lang, formats=formats)
    for notice in files.notices:
        click.echo(notice, err=True)
    for page in files.pages:
        click.echo(page)
