"""CLI commands of the data path: repositories, backups, runs, copies, retention, checks.

Registered on the main app by importing this module (see drplan.cli).
"""

from __future__ import annotations

import typer

from drplan.cli_base import _out, app

repo_app = typer.Typer(help="restic repositories of a plan.", no_args_is_help=True)
app.add_typer(repo_app, name="repo")
PLAN = typer.Argument(..., help="Plan file (YAML).")
JSON = typer.Option(False, "--json", help="Machine-readable output.")
REPOSITORY = typer.Option(
    None, "--repository", "-r", help="Repository of the plan (default: the primary)."
)


@repo_app.command("init")
def repo_init(plan: str = PLAN) -> None:
    """Create the plan's repositories (primary and off-site copies) if missing."""
    from drplan.commands.ops import run_repo_init

    raise typer.Exit(run_repo_init(plan, _out))


@app.command()
def backup(
    plan: str = PLAN,
    service: list[str] = typer.Option([], "--service", "-s", help="Only this service (repeat)."),
    site: str | None = typer.Option(None, "--site", help="Site to back up (default: primary)."),
    as_json: bool = JSON,
) -> None:
    """Back up every data source, the images and the plan as one run."""
    from drplan.commands.ops import run_backup

    raise typer.Exit(run_backup(plan, service, site, as_json, _out))


@app.command()
def runs(plan: str = PLAN, as_json: bool = JSON, repository: str | None = REPOSITORY) -> None:
    """List the runs in the repository with their age against the RPO."""
    from drplan.commands.ops import run_runs

    raise typer.Exit(run_runs(plan, as_json, _out, repository))


@app.command()
def copy(plan: str = PLAN, as_json: bool = JSON) -> None:
    """Copy complete runs to the off-site repositories (3-2-1)."""
    from drplan.commands.ops import run_copy

    raise typer.Exit(run_copy(plan, as_json, _out))


@app.command()
def prune(
    plan: str = PLAN,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed."),
    as_json: bool = JSON,
    repository: str | None = REPOSITORY,
) -> None:
    """Apply the retention policy; the newest complete run is always kept."""
    from drplan.commands.ops import run_prune

    raise typer.Exit(run_prune(plan, dry_run, as_json, _out, repository))


@app.command()
def check(
    plan: str = PLAN,
    read_data_subset: str | None = typer.Option(
        None, "--read-data-subset", help="Also read this share of the data, e.g. 10%."
    ),
    samples: int = typer.Option(0, "--samples", help="Sources to re-verify (0 = all)."),
    as_json: bool = JSON,
    repository: str | None = REPOSITORY,
) -> None:
    """Check the repository and re-verify the newest run's sources against its manifest."""
    from drplan.commands.ops import run_check

    raise typer.Exit(run_check(plan, read_data_subset, samples, as_json, _out, repository))
