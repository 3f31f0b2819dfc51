"""The trueup command line: Typer commands, one error boundary, documented exit codes.

The commands live in basics.py, sync.py, checking.py and history.py; importing them registers
them on the app (in that order, the order --help lists them).
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer
from rich import markup

from trueup import __version__
from trueup.cli.common import EXIT_INTERNAL, app, err, out, state
from trueup.errors import TrueupError

# Importing the command modules registers their commands, in the order --help lists them.
# isort: off
from trueup.cli import basics, sync, checking, history  # noqa: F401

# isort: on


def _version(value: bool) -> None:
    if value:
        out.print(f"trueup {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    state["debug"] = debug


def main() -> None:
    """Entry point: run the app inside the single error boundary."""
    try:
        app()
    except TrueupError as exc:
        if state["debug"]:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {markup.escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the boundary: a bug must still end in one line
        if state["debug"]:
            traceback.print_exc()
        err.print(
            f"[red]internal error:[/red] {type(exc).__name__}: {markup.escape(str(exc))} "
            "(run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERNAL)
