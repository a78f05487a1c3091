"""CLI commands of drills, runbooks and status (registered on the main app by importing
this module)."""

from __future__ import annotations

import typer

from drplan.cli_base import _out, app

PLAN = typer.Argument(..., help="Plan file (YAML).")
JSON = typer.Option(False, "--json", help="Machine-readable output.")


@app.command()
def drill(
    plan: str = PLAN,
    site: str | None = typer.Option(None, "--site", help="Site (default: the recovery one)."),
    profile: str | None = typer.Option(None, "--profile", "-p", help="Profile (default full)."),
    run: str = typer.Option("latest", "--run", help="Run id (or prefix), or latest."),
    report_dir: str | None = typer.Option(None, "--report-dir", help="Where reports go."),
    as_json: bool = JSON,
) -> None:
    """Recover the newest run into an isolated copy, verify, measure, tear down, record."""
    from drplan.commands.drill import run_drill_cmd

    raise typer.Exit(
        run_drill_cmd(
            plan,
            site=site,
            profile=profile,
            run=run,
            report_dir=report_dir,
            as_json=as_json,
            out=_out,
        )
    )


@app.command()
def drills(plan: str = PLAN, as_json: bool = JSON) -> None:
    """The history of drills with the trend of RTO and RPO."""
    from drplan.commands.drill import run_drills

    raise typer.Exit(run_drills(plan, as_json=as_json, out=_out))


@app.command()
def runbook(
    plan: str = PLAN,
    output: str = typer.Option(..., "--output", "-o", help="Directory to write into."),
    site: str | None = typer.Option(None, "--site", help="Site (default: the recovery one)."),
    profile: str | None = typer.Option(None, "--profile", "-p", help="Profile (default full)."),
    run: str = typer.Option("latest", "--run", help="Run id (or prefix), or latest."),
    stack_name: str | None = typer.Option(
        None,
        "--stack-name",
        help="Stack name to recover into (default: the site's prefix and the plan's stack name).",
    ),
) -> None:
    """Write the by-hand runbook: one Markdown file per step, an index, SVG and HTML."""
    from drplan.commands.runbook import run_runbook

    raise typer.Exit(
        run_runbook(
            plan, output, site=site, profile=profile, run=run, stack_name=stack_name, out=_out
        )
    )


@app.command()
def status(plan: str = PLAN, as_json: bool = JSON) -> None:
    """Newest backups against the RPO, newest drill against the RTO, repository health."""
    from drplan.commands.status import run_status

    raise typer.Exit(run_status(plan, as_json=as_json, out=_out))
