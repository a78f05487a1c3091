"""Arguments and options shared by several commands (one wording everywhere)."""

from __future__ import annotations

import typer

# drplan.cli.output.dumps: indented for a person, one line for a program
JSON_FORM = " (indented on a terminal, one line in a pipe or a file)"

PLAN = typer.Argument(..., help="Plan file (YAML).")
JSON = typer.Option(False, "--json", help="Machine-readable output" + JSON_FORM + ".")
REPOSITORY = typer.Option(
    None, "--repository", "-r", help="Repository of the plan (default: the primary)."
)
SITE_RECOVERY = typer.Option(None, "--site", help="Site (default: the recovery one).")
PROFILE = typer.Option(None, "--profile", "-p", help="Profile (default full).")
RUN = typer.Option("latest", "--run", help="Run id (or prefix), or latest.")
REPORT_DIR = typer.Option(None, "--report-dir", help="Where reports go.")


def json_option(what: str) -> bool:
    """A --json option whose help says what is printed."""
    return typer.Option(False, "--json", help=f"Print {what} as JSON{JSON_FORM}.")
