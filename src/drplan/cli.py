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


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.command()
def version() -> None:
    """Print drplan's version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: user errors become one message and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except DrplanError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else 1)
        raise
