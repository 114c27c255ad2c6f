"""The ``leaky`` command: a thin layer over the Python API.

Each command parses its options, calls one API function and prints what it returns.
Commands import what they run when they run, so that ``leaky --help`` starts at once.

User mistakes (bad options, bad values, unwritable paths, a missing optional extra) end in
a one-line message and exit code 2, never a traceback: the API raises them as
``ValueError`` (a :class:`~leaky.system.errors.ParameterError` names the parameter, which
is said here as its flag), ``OSError`` or :class:`~leaky.system.errors.MissingExtraError`.
Anything else is a bug in leaky: it says so and exits 1. Set ``LEAKY_DEBUG=1`` to see the
traceback.

Exit codes, the same for every command:

- 0: success.
- 1: the command ran and found a problem that it reports (for example ``leaky diagnose``
  finding non-finite values, ``leaky bench`` finding a result that differs from PyTorch's),
  or leaky itself failed (a bug).
- 2: a user error: a bad option, value, file, store or output path.
- 130: stopped by SIGINT (Ctrl-C); 143: stopped by SIGTERM.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from leaky.messages import LANGUAGES
from leaky.system.errors import MissingExtraError, ParameterError
from leaky.system.version import __version__

__all__ = ["cli", "main"]

USER_ERROR = 2  # a bad option, value, file, store or output path
BUG = 1  # leaky itself failed
STOPPED_BY_SIGINT = 130

# API parameter names whose flag is not simply --name-with-dashes.
_FLAGS = {
    "json_out": "--json",
    "plot_out": "--plot",
    "out_path": "--out",
    "out_dir": "--out",
    "store_path": "--store",
    "tensorboard_dir": "--tensorboard",
    "preset": "--quick",
    "suites": "SUITES",
    "formats": "--format",
}


def _flag(parameter: str) -> str:
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


class _InputError(click.ClickException):
    """A wrong name, key, value, file or path: one line, "Error: ...", exit code 2."""

    exit_code = USER_ERROR


class _FriendlyGroup(click.Group):
    """User errors as one line and exit 2, Ctrl-C as 130, anything else as a bug (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        from leaky.lab.runner import SweepInterrupted

        debug = bool(os.environ.get("LEAKY_DEBUG"))
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SweepInterrupted as stopped:  # says what it kept, exit 130 or 143
            click.echo(str(stopped), err=True)
            ctx.exit(stopped.exit_code)
        except ParameterError as error:
            if debug:
                raise
            raise _InputError(error.spelled(_flag)) from error
        except (ValueError, OSError, MissingExtraError) as error:
            if debug:
                raise
            raise _InputError(str(error)) from error
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Stopped (Ctrl-C).", err=True)
            ctx.exit(STOPPED_BY_SIGINT)
        except Exception as error:
            if debug:
                raise
            click.echo(
                f"Error: leaky failed unexpectedly ({type(error).__name__}: {error}). This is "
                "a bug in leaky, not in what you typed; run the command again with "
                "LEAKY_DEBUG=1 to see the traceback, and report it.",
                err=True,
            )
            ctx.exit(BUG)


def _parse_floats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers such as 0.01,0.1,0.3, but got {value!r}"
        ) from None


def _lang_option(help_text: str) -> Any:
    return click.option(
        "--lang", type=click.Choice(LANGUAGES), default="en", show_default=True, help=help_text
    )


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="leaky")
def cli() -> None:
    """Leaky ReLU and friends for PyTorch: exact activations, pictures and experiments."""


@cli.command()
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
    callback=_parse_floats,
    help="Leaky ReLU slopes to draw, comma-separated.",
)
@_lang_option("Language of titles and table headings.")
def curves(out_dir: str, slopes: tuple[float, ...], lang: str) -> None:
    """Draw f(x) and f'(x) of ReLU, Leaky ReLU, PReLU, sigmoid and tanh, and print a table."""
    from leaky.messages import get_messages
    from leaky.report import write_curves

    paths, table, notices = write_curves(out_dir, slopes, lang)
    for notice in notices:
        click.echo(notice, err=True)
    click.echo(table)
    click.echo(get_messages(lang)("curves.wrote", paths=", ".join(str(p) for p in paths)))


@cli.command(name="list")
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

    if (what == "settings") != (experiment is not None):
        raise _InputError(
            f"give an experiment after `leaky list settings` (one of {', '.join(EXPERIMENTS)})"
            if what == "settings"
            else f"only `leaky list settings` takes an experiment, not `leaky list {what}`"
        )
    if what == "settings":
        from leaky.lab.config import format_value
        from leaky.lab.findings import experiment_settings

        name = _experiment_name(click.get_current_context(), None, experiment)
        rows = [
            (s.name, s.type, format_value(s.default), format_value(quick), s.about)
            for s, quick in experiment_settings(name)
        ]
        _table(("setting", "type", "default", "--quick", "what it sets"), rows)
    elif what == "experiments":
        _table(("experiment", "question"), [(e.name, e.question()) for e in EXPERIMENTS.values()])
    elif what == "datasets":
        from leaky.data import list_datasets

        rows = [(info.name, info.description, info.source) for info in list_datasets()]
        _table(("dataset", "what", "source"), rows)
    else:
        from leaky.core.spec import SPECS

        rows = [
            (
                s.name,
                ", ".join(f"{k}={v}" for k, v in s.defaults.items()) or "-",
                "yes" if s.can_die else "no",
            )
            for s in SPECS
        ]
        _table(("activation", "defaults", "can a unit die?"), rows)


def _experiment_name(ctx: click.Context, param: click.Parameter | None, value: str) -> str:
    from leaky.lab.experiments import EXPERIMENTS

    if value not in EXPERIMENTS:
        raise _InputError(f"unknown experiment {value!r}; choose from {', '.join(EXPERIMENTS)}")
    return value


_store_option = click.option(
    "--store",
    "store_path",
    default="out/results.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite results store; finished runs in it are skipped.",
)
_threads_option = click.option(
    "--threads",
    default=1,
    show_default=True,
    type=int,
    help="torch threads per run; part of the run's identity (it changes the last bits). "
    "--workers x --threads must fit the usable cores.",
)


@cli.command()
@click.argument("experiment", callback=_experiment_name)
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
@_store_option
@click.option("--workers", default=1, show_default=True, type=int, help="Processes in parallel.")
@_threads_option
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
    workers: int,
    threads: int,
    quiet: bool,
    backend: str,
    address: str | None,
    tensorboard_dir: str | None = None,
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
        workers=workers,
        threads=threads,
        progress=False if quiet else None,
        backend=backend,
        address=address,
        tensorboard_dir=tensorboard_dir,
    )
    click.echo(done.result.summary(experiment, store_path))
    click.echo(format_findings(done.findings))
    if done.logged is not None:
        where = tensorboard_dir
        click.echo(f"TensorBoard: {done.logged} runs in {where} (tensorboard --logdir {where})")


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default="out/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the store, findings and figures.",
)
@_lang_option("Language of the report (and of the figures, with a Japanese font).")
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Processes in parallel.  [default: usable cores / --threads]",
)
@_threads_option
@click.option("--quiet", is_flag=True, help="No progress bars (nor progress lines in a log).")
def demo(out_dir: str, lang: str, workers: int | None, threads: int, quiet: bool) -> None:
    """Run the quick preset of every experiment and write the report, into one folder."""
    from leaky.demo import run_demo
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


def _split_formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from leaky.report.page import check_page_formats

    try:
        return check_page_formats([part.strip() for part in value.split(",") if part.strip()])
    except ParameterError as error:
        raise _InputError(error.spelled(_flag)) from None


@cli.command()
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
@_lang_option("Language of the report (and of the figures, with a Japanese font).")
@click.option(
    "--format",
    "formats",
    default="html,md",
    show_default=True,
    callback=_split_formats,
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


_weights_option = click.option(
    "--weights", type=click.Path(dir_okay=False), help="state_dict saved by torch.save."
)


@cli.command()
@click.argument("model")
@click.option("--input-shape", help="Shape of one random input sample, e.g. 1,28,28.")
@click.option(
    "--data",
    type=click.Path(),
    help=".npz with inputs 'x' (or its first array) and optional labels 'y'; or data as "
    "the experiments read it: a .csv (label column 'label'), a folder of MNIST IDX files or "
    "CIFAR-10 batches, or a file:... spec.",
)
@_weights_option
@click.option(
    "--batches",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Forward and backward passes to watch.",
)
@click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Samples per pass.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for random inputs.")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the report as JSON."
)
@click.option(
    "--plot", "plot_out", type=click.Path(dir_okay=False), help="Write a .png/.svg figure."
)
@click.option(
    "--unit-dim",
    type=int,
    default=None,
    help="Dimension of every activation output that holds the units (2 for the features "
    "of (N, L, F)). Default: per site, from the layer that produced it (Linear: last, "
    "Conv/BatchNorm: 1; 1 otherwise); the report says which.",
)
def diagnose(model: str, **options: Any) -> None:
    """Find dead units and vanishing gradients in MODEL, given as FILE.py:FACTORY.

    FACTORY is a function or class in FILE.py that returns a torch.nn.Module (called with
    no arguments); the model is put in train mode.

    Builds the model, loads --weights if given (weights_only), runs --batches of random
    inputs (--input-shape) or of --data, with a backward pass from a scalar loss, and
    prints the report. Exit code 1 when the verdict is non-finite (NaN or inf in the
    model), 2 for a user error, else 0.
    """
    from leaky.diagnosis.diagnose import diagnose_file

    found = diagnose_file(model, **options)
    click.echo(str(found.report))
    for path in found.written:
        click.echo(f"Wrote {path}")
    if found.report.verdict == "non-finite":
        sys.exit(1)  # the diagnosis ran and found a problem (user errors exit 2)


@cli.command()
@click.argument("suites", nargs=-1)
@click.option("--quick", is_flag=True, help="Smaller tensors and fewer pairs (seconds).")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    help="Write every raw sample and the machine as JSON.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="cuda times the Triton kernels too; without CUDA it stops with exit code 2.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch threads, fixed for every measurement.  [default: usable cores]",
)
def bench(
    suites: tuple[str, ...], quick: bool, json_out: str | None, device: str, threads: int | None
) -> None:
    """Measure leaky against PyTorch (SUITES: batchnorm, kernels, memory, monitor, train; all)."""
    from leaky.bench import BenchRun, run_benchmarks
    from leaky.bench.kernels import ResultMismatchError

    def started(run: BenchRun) -> None:
        info = run.machine
        click.echo(
            f"machine: {info['cpu']}, {info['usable_cores']} usable cores, torch "
            f"{info['torch']}, numpy {info['numpy']}, {info['threads']} threads"
            + (f", {info['gpu']}" if "gpu" in info else "")
        )

    try:
        done = run_benchmarks(
            suites,
            quick=quick,
            device=device,
            threads=threads,
            json_out=json_out,
            on_start=started,
            on_result=lambda result: click.echo(result.table()),
        )
    except ResultMismatchError as error:  # found, not a user error: exit 1
        raise click.ClickException(str(error)) from None
    if done.json_path is not None:
        click.echo(f"Wrote {done.json_path}")


@cli.group(name="export")
def export_group() -> None:
    """Export a model for other runtimes (ONNX)."""


@export_group.command(name="onnx")
@click.argument("model")
@click.option(
    "--input-shape",
    required=True,
    help="Shape of one input sample, without the batch dimension, e.g. 3,32,32.",
)
@click.option(
    "--batch-size",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Batch dimension of the exported input (the shapes are fixed).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The .onnx file to write (its folder is created if missing).",
)
@_weights_option
@click.option(
    "--convert",
    "convert_to",
    metavar="ACTIVATION",
    help="Swap the model's ReLUs for this activation first (leaky.convert), e.g. leaky_relu.",
)
def export_onnx(model: str, input_shape: str, **options: Any) -> None:
    """Write MODEL (FILE.py:FACTORY, as for diagnose) as ONNX of standard operators.

    The model is exported in eval mode; every leaky module becomes standard ONNX operators
    (LeakyRelu, PRelu, BatchNormalization, Add/Mul). --convert runs before --weights, so
    weights trained on the converted model load.
    """
    from leaky.diagnosis.diagnose import export_file
    from leaky.diagnosis.export import node_types

    path = export_file(model, input_shape, **options)
    click.echo(f"Wrote {path} (ONNX operators: {', '.join(node_types(path))})")


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines use this page.",
)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-browser", is_flag=True, help="Print the URL but do not open a browser.")
@click.option(
    "--max-sessions",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Pages at once.",
)
@click.option(
    "--idle-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds without input before a page's session is closed.",
)
def playground(
    host: str, port: int, no_browser: bool, max_sessions: int, idle_timeout: float
) -> None:
    """Start the live playground page on this machine (Ctrl-C stops it)."""
    from leaky.playground import server

    server.check_can_serve(host, port)
    if not server.is_loopback(host):
        click.echo(
            f"Warning: listening on {host}, not on loopback: anyone who can reach this address "
            "can use the playground and this machine's CPU.",
            err=True,
        )
    server.serve(
        host,
        port,
        open_browser=not no_browser,
        max_sessions=max_sessions,
        idle_timeout=idle_timeout,
        on_ready=lambda url: click.echo(f"leaky playground: {url}  (Ctrl-C stops it)"),
    )


@cli.group(name="data")
def data_group() -> None:
    """Data sets that leaky reads from disk (FSDD's spoken digits): fetch them, list them."""


@data_group.command(name="fetch")
@click.argument("name", type=click.Choice(["fsdd"]))
@click.option(
    "--dir",
    "target",
    type=click.Path(file_okay=False),
    help="Folder to put the data set in.  [default: $LEAKY_DATA_DIR/fsdd, else "
    "~/.cache/leaky/fsdd]",
)
@click.option("--url", default=None, help="Archive to download.  [default: FSDD's v1.0.10 tag]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_fetch(name: str, target: str | None, url: str | None, quiet: bool) -> None:
    """Download NAME (fsdd), check the SHA-256 of every file, and move it into place.

    Nothing that looks complete is left behind by a failed download. Exit code 1 when the
    download fails or does not check out (no network, truncated, corrupt), 2 for a user
    error (a bad --url or --dir).
    """
    from leaky.data.fetch import FSDD_URL, FetchError, fetch_fsdd

    try:
        result = fetch_fsdd(target, url=url or FSDD_URL, progress=False if quiet else None)
    except FetchError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)  # the command ran and the download failed or did not check out
    for line in result.summary(name):
        click.echo(line)


@data_group.command(name="list")
def data_list() -> None:
    """Which data sets are present, where, and their licence."""
    from leaky.data.fsdd import FETCH_COMMAND, FSDD_LICENSE, fsdd_status

    status = fsdd_status()
    state, place = {
        "present": (f"present ({status.recordings:,} recordings)", status.where),
        "absent": (f"not present: {FETCH_COMMAND}", f"looked in {status.where}"),
        "damaged": ("damaged", status.where),
    }[status.state]
    rows = [("data set", "state", "where", "licence"), ("fsdd", state, place, FSDD_LICENSE)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[3]]))
    click.echo("The built-in data sets ship with leaky's dependencies: leaky list datasets.")


def main() -> None:
    """Entry point of the ``leaky`` console script."""
    cli(prog_name="leaky")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
