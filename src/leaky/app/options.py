"""What the ``leaky`` commands share: user errors, flag names, common options, tables."""

from __future__ import annotations

from typing import Any

import click

from leaky.messages import LANGUAGES
from leaky.system.errors import ParameterError

__all__ = [
    "USER_ERROR",
    "InputError",
    "batch_size_option",
    "flag",
    "input_range_option",
    "json_option",
    "lang_option",
    "parse_floats",
    "seed_option",
    "split_formats",
    "store_option",
    "table",
    "threads_option",
    "weights_option",
]

USER_ERROR = 2  # a bad option, value, file, store or output path

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
    "target": "--dir",
}


def flag(parameter: str) -> str:
    """The flag that gives an API parameter on the command line.

    Examples:
        >>> flag("batch_size"), flag("json_out")
        ('--batch-size', '--json')
    """
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


class InputError(click.ClickException):
    """A wrong name, key, value, file or path: one line, "Error: ...", exit code 2."""

    exit_code = USER_ERROR


def parse_floats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    """A click callback: ``"0.01,0.1"`` as numbers."""
    try:
        return tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers such as 0.01,0.1,0.3, but got {value!r}"
        ) from None


def lang_option(help_text: str) -> Any:
    """The ``--lang`` option, for a command whose output is in the reader's language."""
    return click.option(
        "--lang", type=click.Choice(LANGUAGES), default="en", show_default=True, help=help_text
    )


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows under a header, in columns as wide as their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


store_option = click.option(
    "--store",
    "store_path",
    default="out/results.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite results store; finished runs in it are skipped.",
)
threads_option = click.option(
    "--threads",
    default=1,
    show_default=True,
    type=int,
    help="torch threads per run; part of the run's identity (it changes the last bits). "
    "--workers x --threads must fit the usable cores.",
)


weights_option = click.option(
    "--weights", type=click.Path(dir_okay=False), help="state_dict saved by torch.save."
)

# Random inputs for a model from a file (diagnose, memory): their batch, seed and kind.
batch_size_option = click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Samples per pass.",
)
seed_option = click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed for random inputs."
)
input_range_option = click.option(
    "--input-range",
    metavar="LOW,HIGH",
    help="Random integer token ids from LOW to HIGH-1 instead of normal floats (for a model "
    "that starts with an Embedding; a Hugging Face model: 0,VOCAB_SIZE).",
)
json_option = click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the report as JSON."
)


def split_formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """A click callback: ``"html,md"`` as checked page formats."""
    from leaky.report.page import check_page_formats

    try:
        return check_page_formats([part.strip() for part in value.split(",") if part.strip()])
    except ParameterError as error:
        raise InputError(error.spelled(flag)) from None
