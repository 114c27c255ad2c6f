"""The tools' commands: ``leaky bench``, ``leaky playground`` and ``leaky data``."""

from __future__ import annotations

import sys
from typing import Any

import click

from leaky.app.options import InputError, flag, table

__all__ = ["bench", "data_group", "playground"]


@click.command()
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
@click.option(
    "--show",
    "stored",
    metavar="FILE",
    default=None,
    help="Print the tables of a run that --json wrote (SUITES: only those); measure nothing.",
)
def bench(suites: tuple[str, ...], stored: str | None, **options: Any) -> None:
    """Measure leaky against PyTorch (SUITES: batchnorm, kernels, memory, monitor, train; all)."""
    from leaky.bench import load_run, run_benchmarks
    from leaky.bench.kernels import ResultMismatchError

    if stored is not None:
        measuring = [name for name, value in options.items() if value not in (None, False, "cpu")]
        if measuring:
            raise InputError(
                f"--show prints a stored run and measures nothing, so {flag(measuring[0])} "
                "does not apply; drop one or the other"
            )
        run = load_run(stored, suites)
        click.echo(run.machine_line())
        for result in run.results:
            click.echo(result.table())
        return
    try:
        done = run_benchmarks(
            suites,
            **options,
            on_start=lambda run: click.echo(run.machine_line()),
            on_result=lambda result: click.echo(result.table()),
        )
    except ResultMismatchError as error:  # found, not a user error: exit 1
        raise click.ClickException(str(error)) from None
    if done.json_path is not None:
        click.echo(f"Wrote {done.json_path}")


@click.command()
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
def playground(host: str, port: int, no_browser: bool, **options: Any) -> None:
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
        **options,
        on_ready=lambda url: click.echo(f"leaky playground: {url}  (Ctrl-C stops it)"),
    )


@click.group(name="data")
def data_group() -> None:
    """Data sets that leaky reads from disk (FSDD's spoken digits, MNIST): fetch them, list them."""


@data_group.command(name="fetch")
@click.argument("name", type=click.Choice(["fsdd", "mnist"]))
@click.option(
    "--dir",
    "target",
    type=click.Path(file_okay=False),
    help="Folder to put the data set in.  [default: $LEAKY_DATA_DIR/NAME, else "
    "~/.cache/leaky/NAME]",
)
@click.option(
    "--url",
    default=None,
    help="Where to download from: FSDD's archive, or the folder of MNIST's four .gz files.  "
    "[default: FSDD's v1.0.10 tag; PyTorch's MNIST mirror]",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_fetch(name: str, target: str | None, url: str | None, quiet: bool) -> None:
    """Download NAME (fsdd or mnist), check every file's checksum, and move it into place.

    Nothing that looks complete is left behind by a failed download. Exit code 1 when the
    download fails or does not check out (no network, truncated, corrupt), 2 for a user
    error (a bad --url or --dir).
    """
    from leaky.data.fetch import FSDD_URL, MNIST_URL, FetchError, fetch_fsdd, fetch_mnist

    progress = False if quiet else None
    try:
        if name == "mnist":
            result = fetch_mnist(target, url=url or MNIST_URL, progress=progress)
        else:
            result = fetch_fsdd(target, url=url or FSDD_URL, progress=progress)
    except FetchError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)  # the command ran and the download failed or did not check out
    for line in result.summary(name):
        click.echo(line)


@data_group.command(name="list")
def data_list() -> None:
    """Which data sets are present, where, and their licence."""
    from leaky.data.fsdd import FETCH_COMMAND, FSDD_LICENSE, fsdd_status
    from leaky.data.mnist import MNIST_FETCH_COMMAND, MNIST_LICENSE, T10K_SPLIT, mnist_status

    status = fsdd_status()
    state, place = {
        "present": (f"present ({status.recordings:,} recordings)", status.where),
        "absent": (f"not present: {FETCH_COMMAND}", f"looked in {status.where}"),
        "damaged": ("damaged", status.where),
    }[status.state]
    mnist = mnist_status()
    mnist_state, mnist_place = {
        "full": ("present (60,000 train / 10,000 test)", mnist.where),
        "test set": (
            f"test set only (split {T10K_SPLIT[0]:,} / {T10K_SPLIT[1]:,}); full: "
            f"{MNIST_FETCH_COMMAND}",
            mnist.where,
        ),
        "absent": (f"not present: {MNIST_FETCH_COMMAND}", f"looked in {mnist.where}"),
        "damaged": ("damaged", mnist.where),
    }[mnist.state]
    table(
        ("data set", "state", "where", "licence"),
        [
            ("fsdd", state, place, FSDD_LICENSE),
            ("mnist", mnist_state, mnist_place, MNIST_LICENSE),
        ],
    )
    click.echo("The built-in data sets ship with leaky's dependencies: leaky list datasets.")
