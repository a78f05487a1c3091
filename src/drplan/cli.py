"""Command-line interface: one typer app, errors turned into one clear line and an exit code."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from drplan import __version__
from drplan.errors import DrplanError

app = typer.Typer(
    name="drplan",
    help="An executable disaster-recovery plan for Docker Swarm stacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """An executable disaster-recovery plan for Docker Swarm stacks."""


@app.command()
def version() -> None:
    """Print drplan's version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: user errors become one message and a non-zero exit.

    typer (standalone mode) already turns usage errors into exit code 2; what reaches us
    here is a :class:`DrplanError` raised by a command, printed as one located line.
    """
    try:
        app()
    except DrplanError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
