"""CLI commands of the recovery path (registered on the main app by importing this module)."""

from __future__ import annotations

import typer

from drplan.cli_base import _out, app


@app.command()
def recover(
    plan: str | None = typer.Argument(None, help="Plan file (omit with --repo)."),
    site: str | None = typer.Option(None, "--site", help="Target site (default: recovery)."),
    run: str = typer.Option("latest", "--run", help="Run id (or prefix), or latest."),
    profile: str | None = typer.Option(None, "--profile", "-p", help="Profile (default full)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the schedule, change nothing."),
    force: bool = typer.Option(False, "--force", help="Overwrite non-empty data on the target."),
    prefix: str | None = typer.Option(
        None, "--prefix", help="Stack name prefix on the target (a test or training copy)."
    ),
    incident_at: str | None = typer.Option(
        None, "--incident-at", help="Incident time (ISO 8601) for the RPO (default: now)."
    ),
    repo: str | None = typer.Option(None, "--repo", help="Repository URL: recover with no plan."),
    repository: str | None = typer.Option(
        None, "--repository", help="Plan repository to read from (default: the primary)."
    ),
    plan_name: str | None = typer.Option(None, "--plan", help="With --repo: the plan's name."),
    docker_host: str | None = typer.Option(
        None, "--docker-host", help="Override the target site's Docker endpoint."
    ),
    password_env: str | None = typer.Option(
        None, "--password-env", help="With --repo: env var holding the password."
    ),
    password_file: str | None = typer.Option(None, "--password-file", help="With --repo."),
    password_command: str | None = typer.Option(None, "--password-command", help="With --repo."),
    report_dir: str | None = typer.Option(None, "--report-dir", help="Where reports go."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    trust_stored_plan: bool = typer.Option(
        False,
        "--trust-stored-plan",
        help="With --repo: let the plan read from the repository run its {command:} "
        "secrets, host-side checks and hooks on this host (read it with --dry-run first).",
    ),
) -> None:
    """Rebuild the stack of a backup run on a site, verified, with measured RTO and RPO."""
    from drplan.actions.recover import RecoverOptions
    from drplan.commands.recover import run_recover
    from drplan.reports.recovery import parse_incident

    opts = RecoverOptions(
        site=site,
        run=run,
        profile=profile,
        force=force,
        dry_run=dry_run,
        prefix=prefix,
        incident_at=parse_incident(incident_at),
        trust_stored_plan=trust_stored_plan,
    )
    raise typer.Exit(
        run_recover(
            plan,
            repo_url=repo,
            repository=repository,
            plan_name=plan_name,
            docker_host=docker_host,
            opts=opts,
            password_env=password_env,
            password_file=password_file,
            password_command=password_command,
            report_dir=report_dir,
            as_json=as_json,
            out=_out,
        )
    )


@app.command()
def demo(
    docker_host: str | None = typer.Option(
        None, "--docker-host", help="Engine to run on (default: $DOCKER_HOST or the local one)."
    ),
    workdir: str | None = typer.Option(
        None,
        "--workdir",
        help="Where the demo's plan and repository go (default /var/lib/drplan/demo).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Protect, destroy, recover and verify a demo stack on one Docker engine."""
    from drplan.commands.demo import run_demo

    raise typer.Exit(run_demo(workdir, docker_host, as_json, _out))
