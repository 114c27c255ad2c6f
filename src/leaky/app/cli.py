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

from leaky.app.lab_commands import curves, demo, list_command, report, run
from leaky.app.model_commands import diagnose, export_group, memory
from leaky.app.options import InputError, flag
from leaky.app.tool_commands import bench, data_group, playground
from leaky.system.errors import MissingExtraError, ParameterError
from leaky.system.version import __version__

__all__ = ["cli", "main"]

BUG = 1  # leaky itself failed
STOPPED_BY_SIGINT = 130


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
            raise InputError(error.spelled(flag)) from error
        except (ValueError, OSError, MissingExtraError) as error:
            if debug:
                raise
            raise InputError(str(error)) from error
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


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="leaky")
def cli() -> None:
    """Leaky ReLU and friends for PyTorch: exact activations, pictures and experiments."""


for _command in (
    bench,
    curves,
    data_group,
    demo,
    diagnose,
    export_group,
    list_command,
    memory,
    playground,
    report,
    run,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``leaky`` console script."""
    cli(prog_name="leaky")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
