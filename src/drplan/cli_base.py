"""The typer app every command module registers on (kept apart from drplan.cli so that
command modules can import it without a cycle)."""

from __future__ import annotations

import typer

from drplan import __version__

app = typer.Typer(
    name="drplan",
    help="An executable disaster-recovery plan for Docker Swarm stacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def _out(line: str) -> None:
    typer.echo(line)


def _err(line: str) -> None:
    typer.echo(line, err=True)
