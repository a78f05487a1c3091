"""The typer app every command is registered on, and what the CLI does with a user error.

The app lists its commands in the order they were registered (drplan.cli registers them
in the order a user meets them): typer itself would list plain commands before groups
(`repo`, `crisis` last). A :class:`~drplan.errors.DrplanError` raised by any command is
printed once, without a traceback, and becomes its exit code; an invalid plan is printed
as its problems, one ``FILE:LINE:COL: path: message`` line each, then one error line.
The handling is in the app itself, so ``CliRunner().invoke(app, ...)`` behaves like the
console script.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
import typer.core

from drplan import __version__
from drplan.errors import DrplanError

# command and group names in the order `drplan --help` lists them (see register())
ORDER: list[str] = []


class DrplanGroup(typer.core.TyperGroup):
    """The root group: commands in registration order; user errors become exit codes."""

    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(ORDER)}
        return sorted(super().list_commands(ctx), key=lambda n: rank.get(n, len(rank)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except DrplanError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None


def report_error(exc: DrplanError) -> None:
    """An error as a user reads it: the located problems it carries (an invalid plan's),
    then one ``error: WHERE: MESSAGE`` line, on stderr."""
    for line in getattr(exc, "problems", ()):
        typer.echo(line, err=True)
    typer.secho("error:", fg="red", bold=True, err=True, nl=False)
    typer.echo(f" {exc}", err=True)


app = typer.Typer(
    name="drplan",
    cls=DrplanGroup,
    help="An executable disaster-recovery plan for Docker Swarm stacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def register(name: str, fn: Callable[..., Any]) -> None:
    """Add command `name` to the app, listed after the ones registered before it."""
    app.command(name)(fn)
    ORDER.append(name)


def register_group(name: str, group: typer.Typer) -> None:
    """Add a group of subcommands (`drplan repo ...`) at this place in the listing."""
    app.add_typer(group, name=name)
    ORDER.append(name)


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


def version() -> None:
    """Print drplan's version."""
    typer.echo(__version__)
