"""The ``leaky`` command: a thin layer over the Python API.

User mistakes (bad options, bad values, unwritable paths) end in a one-line message and
a non-zero exit code, never a traceback. Set ``LEAKY_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

import leaky
from leaky.report.messages import LANGUAGES

__all__ = ["cli", "main"]


class _FriendlyGroup(click.Group):
    """Turns the errors that user input causes into click's one-line error and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValueError, TypeError, OSError) as error:
            if os.environ.get("LEAKY_DEBUG"):
                raise
            raise click.ClickException(str(error)) from error


def _parse_floats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers such as 0.01,0.1,0.3, but got {value!r}"
        ) from None


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(leaky.__version__, prog_name="leaky")
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
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default="en",
    show_default=True,
    help="Language of titles and table headings.",
)
def curves(out_dir: str, slopes: tuple[float, ...], lang: str) -> None:
    """Draw f(x) and f'(x) of ReLU, Leaky ReLU, PReLU, sigmoid and tanh, and print a table."""
    from leaky.report import get_messages, write_curves

    paths, table, notices = write_curves(out_dir, slopes, lang)
    for notice in notices:
        click.echo(notice, err=True)
    click.echo(table)
    click.echo(get_messages(lang)("curves.wrote", paths=", ".join(str(p) for p in paths)))


def main() -> None:
    """Entry point of the ``leaky`` console script."""
    cli(prog_name="leaky")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
