"""The ``leaky`` command: a thin layer over the Python API.

User mistakes (bad options, bad values, unwritable paths) end in a one-line message and
a non-zero exit code, never a traceback. Set ``LEAKY_DEBUG=1`` to see the traceback.

Exit codes, the same for every command:

- 0: success.
- 1: the command ran and found a problem that it reports (for example ``leaky diagnose``
  finding non-finite values, ``leaky bench`` finding a result that differs from PyTorch's).
- 2: a user error: a bad option, value, file, store or output path. Everything the API
  raises as ``ValueError``, ``TypeError`` or ``OSError`` lands here, with click's usage
  errors.
- 130: stopped by SIGINT (Ctrl-C); 143: stopped by SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from leaky.messages import LANGUAGES
from leaky.system.version import __version__

__all__ = ["cli", "main"]


USER_ERROR = 2  # a bad option, value, file, store or output path
STOPPED_BY_SIGINT = 130
STOPPED_BY_SIGTERM = 143


class _InputError(click.ClickException):
    """A wrong name, key, value, file or path: one line, "Error: ...", exit code 2."""

    exit_code = USER_ERROR


class _FriendlyGroup(click.Group):
    """Turns the errors that user input causes into one line and exit 2, Ctrl-C into 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValueError, TypeError, OSError) as error:
            if os.environ.get("LEAKY_DEBUG"):
                raise
            raise _InputError(str(error)) from error
        except KeyboardInterrupt:
            if os.environ.get("LEAKY_DEBUG"):
                raise
            click.echo("Stopped (Ctrl-C).", err=True)
            ctx.exit(STOPPED_BY_SIGINT)


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
        rows, header = _settings_rows(
            _experiment_name(click.get_current_context(), None, experiment)
        )
    elif what == "experiments":
        rows = [(e.name, e.question()) for e in EXPERIMENTS.values()]
        header = ("experiment", "question")
    elif what == "datasets":
        from leaky.data import list_datasets

        rows = [(info.name, info.description, info.source) for info in list_datasets()]
        header = ("dataset", "what", "source")
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
        header = ("activation", "defaults", "can a unit die?")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _settings_rows(experiment: str) -> tuple[list[tuple[str, ...]], tuple[str, ...]]:
    from leaky.lab.config import config_to_dict, describe_config, format_value, resolve
    from leaky.lab.experiments import get_experiment

    spec = get_experiment(experiment)
    quick = config_to_dict(resolve(spec.config, spec.presets.get("quick", {})))
    rows = [
        (s.name, s.type, format_value(s.default), format_value(quick[s.name]), s.about)
        for s in describe_config(spec.config)
    ]
    return rows, ("setting", "type", "default", "--quick", "what it sets")


def _experiment_name(ctx: click.Context, param: click.Parameter | None, value: str) -> str:
    from leaky.lab.experiments import EXPERIMENTS

    if value not in EXPERIMENTS:
        raise _InputError(f"unknown experiment {value!r}; choose from {', '.join(EXPERIMENTS)}")
    return value


def _store_option(function: Any) -> Any:
    return click.option(
        "--store",
        "store_path",
        default="out/results.db",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="SQLite results store; finished runs in it are skipped.",
    )(function)


def _threads_option(function: Any) -> Any:
    return click.option(
        "--threads",
        default=1,
        show_default=True,
        type=int,
        help="torch threads per run; part of the run's identity (it changes the last bits). "
        "--workers x --threads must fit the usable cores.",
    )(function)


def _stopped(interrupted: Any) -> None:
    """Say what a stopped sweep kept, and exit 130 (SIGINT) or 143 (SIGTERM)."""
    click.echo(str(interrupted), err=True)
    sys.exit(interrupted.exit_code)


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
    from leaky.lab.findings import format_findings, resolve_config, run_experiment, summarize
    from leaky.lab.resources import check_memory
    from leaky.lab.runner import SweepInterrupted, check_backend
    from leaky.lab.store import Store

    try:
        overrides = load_toml(config_file) if config_file else {}
        overrides.update(parse_assignments(assignments))
        config = resolve_config(experiment, preset="quick" if quick else None, overrides=overrides)
        check_backend(backend, address, workers=workers, threads=threads)
        on_saved = _tensorboard_logger(tensorboard_dir)
        if address is None:  # runs at once on this machine: before the store
            check_memory(experiment, config, workers=workers)
    except ValueError as error:
        raise _InputError(str(error)) from None
    with Store(store_path) as store:
        try:
            sweep = run_experiment(
                experiment,
                config,
                store,
                workers=workers,
                threads=threads,
                progress=False if quiet else None,
                on_saved=on_saved,
                backend=backend,
                address=address,
            )
        except SweepInterrupted as interrupted:
            _stopped(interrupted)
        findings = summarize(experiment, config, store, threads=threads)
        logged = None
        if tensorboard_dir is not None:
            logged = _log_stored_runs(tensorboard_dir, experiment, config, store, threads)
    click.echo(
        f"{experiment}: {sweep.ran} runs done, {sweep.skipped} already in {store_path}"
        + (f", {sweep.elsewhere} by another process" if sweep.elsewhere else "")
        + (f", {sweep.diverged} diverged" if sweep.diverged else "")
        + (f", {sweep.retried} submitted again after a worker died" if sweep.retried else "")
    )
    click.echo(format_findings(findings))
    if logged is not None:
        where = tensorboard_dir
        click.echo(f"TensorBoard: {logged} runs in {where} (tensorboard --logdir {where})")


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
    from leaky.lab.runner import SweepInterrupted, check_parallelism, default_workers

    try:
        if workers is None:
            check_parallelism(1, threads)
            workers = default_workers(threads)
        check_parallelism(workers, threads)
    except ValueError as error:
        raise _InputError(str(error)) from None
    try:
        findings, path, report = run_demo(
            out_dir,
            lang=lang,
            workers=workers,
            threads=threads,
            progress=False if quiet else None,
            echo=lambda message: click.echo(message, err=True),
        )
    except SweepInterrupted as interrupted:
        _stopped(interrupted)
    click.echo(format_findings(findings, lang))
    for notice in report.notices:
        click.echo(notice, err=True)
    click.echo(f"Results: {path.parent / 'results.db'}, findings: {path}")
    click.echo(f"Report: {report.html}")


def _tensorboard_logger(log_dir: str | None) -> Any:
    """``on_saved`` for the runner: log each stored run to ``log_dir`` (None: no logging)."""
    if log_dir is None:
        return None
    from leaky.lab.tensorboard_runs import check_tensorboard, log_run
    from leaky.system.atomic import ensure_output_dir

    try:
        check_tensorboard()
    except ImportError as error:
        raise _InputError(str(error)) from None
    ensure_output_dir(log_dir)  # before the sweep: a bad folder must not cost the runs
    return lambda record: log_run(log_dir, record)


def _log_stored_runs(log_dir: str, experiment: str, config: Any, store: Any, threads: int) -> int:
    # The sweep's runs that an earlier `leaky run` stored are logged too (once each).
    from leaky.lab.runner import plan
    from leaky.lab.tensorboard_runs import log_runs

    wanted = {spec.run_id for spec in plan(experiment, config, threads=threads)}
    runs = [run for run in store.runs(experiment) if run.run_id in wanted]
    log_runs(log_dir, runs)
    return len(runs)


def _split_formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from leaky.report.page import check_page_formats

    try:
        return check_page_formats([part.strip() for part in value.split(",") if part.strip()])
    except ValueError as error:
        raise _InputError(str(error)) from None


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

    try:
        files = write_report(store_path, out_dir, lang=lang, formats=formats)
    except ValueError as error:
        raise _InputError(str(error)) from None
    for notice in files.notices:
        click.echo(notice, err=True)
    for page in files.pages:
        click.echo(page)


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
@click.option("--weights", type=click.Path(dir_okay=False), help="state_dict saved by torch.save.")
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
def diagnose(
    model: str,
    input_shape: str | None,
    data: str | None,
    weights: str | None,
    batches: int,
    batch_size: int,
    seed: int,
    json_out: str | None,
    plot_out: str | None,
    unit_dim: int | None,
) -> None:
    """Find dead units and vanishing gradients in MODEL, given as FILE.py:FACTORY.

    FACTORY is a function or class in FILE.py that returns a torch.nn.Module (called with
    no arguments); the model is put in train mode.

    Builds the model, loads --weights if given (weights_only), runs --batches of random
    inputs (--input-shape) or of --data, with a backward pass from a scalar loss, and
    prints the report. Exit code 1 when the verdict is non-finite (NaN or inf in the
    model), 2 for a user error, else 0.
    """
    import json

    from leaky.diagnosis import diagnose as diagnosis
    from leaky.diagnosis.monitor import MonitorReport
    from leaky.system.atomic import atomic_path, ensure_output_dir

    if (input_shape is None) == (data is None):
        raise click.UsageError("give exactly one of --input-shape and --data")
    for option, out, suffixes in (
        ("--json", json_out, (".json",)),
        ("--plot", plot_out, (".png", ".svg")),
    ):
        if out is None:
            continue
        if not out.lower().endswith(suffixes):
            raise click.BadParameter(
                f"expected a {' or '.join(suffixes)} file, got {out!r}", param_hint=option
            )
        try:  # before the run: a bad output path must not cost a whole diagnosis
            diagnosis.check_output_path(out)  # creates nothing: a failed run leaves no folder
        except ValueError as error:
            raise click.BadParameter(str(error).split(";")[0], param_hint=option) from None
    shape = diagnosis.parse_shape(input_shape) if input_shape is not None else None
    net = diagnosis.build_model(diagnosis.load_factory(model))
    if weights is not None:
        diagnosis.load_weights(net, weights)
    inputs = diagnosis.input_batches(
        input_shape=shape, data=data, batches=batches, batch_size=batch_size, seed=seed
    )
    report: MonitorReport = diagnosis.diagnose(net, inputs, unit_dim=unit_dim)
    click.echo(str(report))
    if json_out is not None:
        ensure_output_dir(Path(json_out).parent)
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        click.echo(f"Wrote {json_out}")
    if plot_out is not None:
        click.echo(f"Wrote {report.plot(plot_out)}")
    if report.verdict == "non-finite":
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
    import json

    import torch

    from leaky.bench import SUITES, run_suite
    from leaky.bench.kernels import ResultMismatchError
    from leaky.system.atomic import atomic_path, ensure_output_dir
    from leaky.system.machine import machine_info

    unknown = [name for name in suites if name not in SUITES]
    if unknown:
        raise _InputError(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    if json_out is not None:
        ensure_output_dir(Path(json_out).parent)
    if device == "cuda" and not torch.cuda.is_available():  # asked for what is not there
        raise _InputError(
            "--device cuda needs a GPU, but CUDA is not available on this machine; nothing "
            "was measured (use --device cpu)"
        )
    from leaky.system.machine import usable_cores

    cores = usable_cores()
    if threads is None:
        threads = cores
    elif threads > cores:  # more threads than cores would time contention, not the code
        raise _InputError(
            f"Expected --threads at most {cores} (the usable cores here), but got {threads}"
        )
    torch.set_num_threads(threads)
    os.environ["LEAKY_BENCH_THREADS"] = str(threads)  # the memory suite's child processes
    info = machine_info()
    click.echo(
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores, torch {info['torch']}, "
        f"numpy {info['numpy']}, {info['threads']} threads"
        + (f", {torch.cuda.get_device_name()}" if device == "cuda" else "")
    )
    results = []
    for name in suites or tuple(SUITES):
        try:
            result = run_suite(name, quick=quick, device=device)
        except ResultMismatchError as error:
            raise click.ClickException(f"{name}: {error}") from None
        click.echo(result.table())
        results.append(result.to_dict())
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(
                json.dumps(
                    {"machine": info, "device": device, "quick": quick, "suites": results}, indent=1
                )
            )
        click.echo(f"Wrote {json_out}")


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
@click.option("--weights", type=click.Path(dir_okay=False), help="state_dict saved by torch.save.")
@click.option(
    "--convert",
    "convert_to",
    metavar="ACTIVATION",
    help="Swap the model's ReLUs for this activation first (leaky.convert), e.g. leaky_relu.",
)
def export_onnx(
    model: str,
    input_shape: str,
    batch_size: int,
    out_path: str,
    weights: str | None,
    convert_to: str | None,
) -> None:
    """Write MODEL (FILE.py:FACTORY, as for diagnose) as ONNX of standard operators.

    The model is exported in eval mode; every leaky module becomes standard ONNX operators
    (LeakyRelu, PRelu, BatchNormalization, Add/Mul). --convert runs before --weights, so
    weights trained on the converted model load.
    """
    import torch

    from leaky.diagnosis import diagnose as diagnosis
    from leaky.diagnosis import export

    if not out_path.lower().endswith(".onnx"):
        raise _InputError(f"Expected --out to be a .onnx file, but got {out_path!r}")
    diagnosis.check_output_path(out_path)  # creates nothing yet
    shape = diagnosis.parse_shape(input_shape)
    net = diagnosis.build_model(diagnosis.load_factory(model))
    if convert_to is not None:
        from leaky.diagnosis.convert import convert

        convert(net, convert_to)
    if weights is not None:
        diagnosis.load_weights(net, weights)
    example = torch.randn((batch_size, *shape), generator=torch.Generator().manual_seed(0))
    # The folders --out needs, made now and removed again if the export fails.
    missing = [p for p in Path(out_path).absolute().parents if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir()
    try:
        path = export.onnx(net, example, out_path)
    except BaseException as error:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(error, ImportError):
            raise _InputError(str(error)) from None
        raise
    click.echo(f"Wrote {path} (ONNX operators: {', '.join(export.node_types(path))})")


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
    import socket

    from leaky.playground.server import is_loopback, serve

    for package in ("starlette", "uvicorn", "plotly"):
        try:
            __import__(package)
        except ImportError:
            raise _InputError(
                f"The playground needs {package}: pip install 'leaky[playground]'"
            ) from None
    if not is_loopback(host):
        click.echo(
            f"Warning: listening on {host}, not on loopback: anyone who can reach this address "
            "can use the playground and this machine's CPU.",
            err=True,
        )
    try:  # a clear message now rather than uvicorn's log line later
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as error:
        raise _InputError(
            f"Cannot listen on {host}:{port} ({error.strerror or error}); "
            "choose another --port or --host"
        ) from None
    serve(
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
    if result.already_present:
        click.echo(f"{name} is already in {result.path}; nothing to do.")
        return
    click.echo(f"Checked and installed {result.installed:,} recordings in {result.path}.")
    if result.left_out:
        click.echo(f"Left out {result.left_out:,} recordings that the checked list does not name.")
    if result.not_in_archive:
        click.echo(
            f"This release lacks {result.not_in_archive:,} recordings of the checked list "
            "(an older release has fewer speakers)."
        )


@data_group.command(name="list")
def data_list() -> None:
    """Which data sets are present, where, and their licence."""
    from leaky.data.fsdd import (
        FETCH_COMMAND,
        FSDD_LICENSE,
        find_fsdd,
        fsdd_candidates,
        fsdd_recordings,
    )

    try:
        where = find_fsdd()
        count = len(fsdd_recordings(where))
        state, place = f"present ({count:,} recordings)", str(where)
    except ValueError as error:
        looked = ", ".join(str(place) for _, place in fsdd_candidates())
        if "not here" in str(error):
            state, place = f"not present: {FETCH_COMMAND}", f"looked in {looked}"
        else:  # there, but damaged: say which file
            state, place = "damaged", str(error)
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
