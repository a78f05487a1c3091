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


def _out(line: str) -> None:
    typer.echo(line)


def _err(line: str) -> None:
    typer.echo(line, err=True)


@app.command()
def validate(plan: str = typer.Argument(..., help="Plan file (YAML).")) -> None:
    """Check a plan; list every problem as FILE:LINE:COL: path: message (exit 2)."""
    from drplan.commands.validate import run_validate

    raise typer.Exit(run_validate(plan, _out, _err))


@app.command("plan")
def plan_cmd(
    plan: str = typer.Argument(..., help="Plan file (YAML)."),
    profile: str | None = typer.Option(None, "--profile", "-p", help="Profile (default: full)."),
    as_json: bool = typer.Option(False, "--json", help="Print the schedule as JSON."),
    svg: str | None = typer.Option(None, "--svg", help="Write a Gantt chart (SVG) to FILE."),
) -> None:
    """Show the recovery schedule: steps, waves, critical path, estimated RTO."""
    from drplan.commands.plan import run_plan

    raise typer.Exit(run_plan(plan, profile=profile, as_json=as_json, svg=svg, out=_out, err=_err))


@app.command()
def init(
    compose: str = typer.Option(..., "--from", help="Compose/stack file to draft from."),
    stack: str | None = typer.Option(None, "--stack", help="Stack name (default: guessed)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write the plan here."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
) -> None:
    """Draft a plan from a compose file; guesses are printed to stderr."""
    from drplan.commands.init import run_init

    raise typer.Exit(run_init(compose, stack=stack, output=output, force=force, out=_out, err=_err))


@app.command()
def schema() -> None:
    """Print the plan's JSON Schema."""
    from drplan.commands.schema import schema_text

    typer.echo(schema_text(), nl=False)


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
