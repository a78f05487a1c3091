"""`drplan recover`: rebuild the stack of a run on a site, from a local plan or from the
repository alone (drplan.actions.recovery_source).

A dry run prints the schedule the recovery built (from the run's own timings and the
drills' measured steps), and nothing more: it runs nothing the plan names, loads no
image and writes nothing to the target.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, dumps, err
from drplan.cli.plan import render_schedule
from drplan.cli.progress import StepProgress
from drplan.errors import OperationError

if TYPE_CHECKING:
    from drplan.actions import recover as rc


def recover(
    plan: str | None = typer.Argument(None, help="Plan file (omit with --repo)."),
    site: str | None = typer.Option(None, "--site", help="Target site (default: recovery)."),
    run: str = opt.RUN,
    profile: str | None = opt.PROFILE,
    service: list[str] | None = typer.Option(
        None,
        "--service",
        help="Only this service and what it depends on (repeatable), e.g. after a node "
        "loss: the rest of the stack is left running.",
    ),
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
    report_dir: str | None = opt.REPORT_DIR,
    as_json: bool = opt.json_option("the report (with --dry-run: the schedule)"),
    trust_stored_plan: bool = typer.Option(
        False,
        "--trust-stored-plan",
        help="With --repo: let the plan read from the repository run its {command:} "
        "secrets, host-side checks and hooks on this host (read it with --dry-run first).",
    ),
) -> None:
    """Rebuild the stack of a backup run on a site, verified, with measured RTO and RPO."""
    from drplan.actions.recover import RecoverOptions
    from drplan.reports.recovery import parse_incident

    opts = RecoverOptions(
        site=site,
        run=run,
        profile=profile,
        services=service or None,
        force=force,
        dry_run=dry_run,
        prefix=prefix,
        incident_at=parse_incident(incident_at),
        trust_stored_plan=trust_stored_plan,
    )
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
        out=typer.echo,
    )


def run_recover(
    plan: str | None,
    *,
    repo_url: str | None,
    repository: str | None,
    plan_name: str | None,
    docker_host: str | None,
    opts: rc.RecoverOptions,
    password_env: str | None,
    password_file: str | None,
    password_command: str | None,
    report_dir: str | None,
    as_json: bool,
    out: Callable[[str], None],
    err: Callable[[str], None] = err,
) -> int:
    """Recover (or, with ``opts.dry_run``, print the schedule); lines go to `out`."""
    from drplan.actions import recover as rc
    from drplan.actions.recovery_source import RepoAccess, open_source
    from drplan.reports import recovery as report

    access = (
        RepoAccess(repo_url, plan_name, password_env, password_file, password_command)
        if repo_url
        else None
    )
    with rc.temp_dir() as tmp:
        pc, repo = open_source(
            plan,
            repository=repository,
            access=access,
            opts=opts,
            docker_host=docker_host,
            tmp=Path(tmp),
        )
        with StepProgress.unless(as_json) as progress:
            rec = rc.recover(pc, repo, opts, on_event=progress.event, on_bytes=progress.bytes)
        if opts.dry_run:
            out(
                f"dry run: would recover run {rec.run.run_id} of {pc.name} as stack "
                f"{rec.stack} on site {rec.site} ({pc.plan.sites[rec.site].docker_host})"
            )
            if rec.not_run:
                err(
                    "the plan read from the repository names what drplan would run or read "
                    "on this host; none of it was run, and a recovery refuses it unless you "
                    "pass --trust-stored-plan:\n  " + "\n  ".join(rec.not_run)
                )
            # the schedule this recovery built and would run, not another one
            if as_json:
                out(dumps(rec.schedule.to_dict()))
            else:
                render_schedule(rec.schedule, pc.plan, console())
            return 0
        data = report.build(rec, pc.plan)
        written = write_reports(rec, data, report_dir)
    if as_json:
        out(dumps({**data, "reports": written}))
    else:
        show_report(data)
        for p in written.values():
            out(f"report: {p}")
    if not rec.ok:
        failed = [f"{s['id']}: {s['error']}" for s in data["steps"] if s["status"] == "failed"]
        raise OperationError(
            "the recovery failed:\n  " + "\n  ".join(failed or ["see report"]),
            where=f"recovery of {rec.stack} on {rec.site}",
        )
    return 0


def show_report(data: dict[str, Any]) -> None:
    """The recovery report as Markdown on the terminal."""
    from rich.markdown import Markdown

    from drplan.reports import recovery as report

    console(highlight=True).print(Markdown(report.markdown(data)))


def write_reports(rec: rc.Recovery, data: dict[str, Any], report_dir: str | None) -> dict[str, str]:
    """report.json, report.md and gantt.svg of a recovery, in a folder of their own."""
    from drplan.reports import recovery as report

    base = Path(report_dir or os.environ.get("DRPLAN_REPORT_DIR", "drplan-reports"))
    folder = base / f"recovery-{rec.stack}-{rec.started_at.replace(':', '')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(data, indent=2))
    (folder / "report.md").write_text(report.markdown(data))
    (folder / "gantt.svg").write_text(report.gantt(rec))
    return {
        "json": str(folder / "report.json"),
        "markdown": str(folder / "report.md"),
        "gantt": str(folder / "gantt.svg"),
    }
