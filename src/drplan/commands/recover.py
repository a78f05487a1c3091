"""`drplan recover`: from a local plan, or from the repository alone (no local plan).

With the repository alone, the plan and compose files are those of the run, unpacked into
a private temporary directory and loaded as untrusted (drplan.actions.context): their
`{command:}` secrets, host-side checks and hooks do not run unless --trust-stored-plan.
A dry run reads the manifest and the stored plan and prints the schedule, nothing more:
it runs nothing the plan names, loads no image and writes nothing to the target.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

from drplan.actions import recover as rc
from drplan.actions.context import load_plan
from drplan.commands.progress import StepProgress
from drplan.errors import InputError, OperationError
from drplan.plan import model as m
from drplan.reports import recovery as report
from drplan.secrets import resolve
from drplan.store import manifest as mf
from drplan.store.restic import Repository


def repository_from_url(
    url: str, password_env: str | None, password_file: str | None, password_command: str | None
) -> Repository:
    given = [x for x in (password_file, password_command) if x]
    if len(given) > 1:
        raise InputError("give at most one of --password-file and --password-command")
    secret = (
        m.Secret(file=password_file)
        if password_file
        else (
            m.Secret(command=password_command)
            if password_command
            else m.Secret(env=password_env or "DRPLAN_REPO_PASSWORD")
        )
    )
    kind = m.repository_type(url)
    if kind is None:
        raise InputError(f"unsupported repository url {url!r}", where="--repo")
    return Repository(
        name="repo",
        url=url if kind != "local" else str(Path(url).resolve()),
        password=resolve(secret, base=Path.cwd(), what="--repo password"),
        type=kind,
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
    out,
    err: Callable[[str], None] | None = None,
) -> int:
    err = err or (lambda line: print(line, file=sys.stderr))
    with rc.temp_dir() as tmp:
        if plan is not None:
            pc = load_plan(plan)
            repo = pc.repository(repository)
        else:
            if not repo_url:
                raise InputError(
                    "give a plan file, or --repo URL to recover from the repository alone"
                )
            repo = repository_from_url(repo_url, password_env, password_file, password_command)
            repo.open()
            run = mf.find_run(repo, plan_name, opts.run)
            pc = load_plan(rc.load_run_config(repo, run, Path(tmp)), trusted=opts.trust_stored_plan)
            opts.run = run.run_id
        if docker_host:
            site_name, site = pc.site(opts.site, role="recovery")
            pc.plan.sites[site_name] = site.model_copy(update={"docker_host": docker_host})
            opts.site = site_name
        with StepProgress(enabled=None if not as_json else False) as progress:
            rec = rc.recover(pc, repo, opts, on_event=progress.event, on_bytes=progress.bytes)
        if opts.dry_run:
            from drplan.commands.plan import run_plan

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
            # the schedule the recovery computed: run_plan would otherwise open the
            # plan's own repository to find drill timings (resolving its secrets, handing
            # restic its options), which a stored plan must not make this host do
            return run_plan(
                str(pc.path),
                profile=opts.profile,
                as_json=as_json,
                svg=None,
                out=out,
                err=out,
                history=rec.history,
            )
        data = report.build(rec, pc.plan)
        written = _write_reports(rec, data, report_dir)
    if as_json:
        out(json.dumps({**data, "reports": written}, indent=2))
    else:
        Console().print(Markdown(report.markdown(data)))
        for p in written.values():
            out(f"report: {p}")
    if not rec.ok:
        failed = [f"{s['id']}: {s['error']}" for s in data["steps"] if s["status"] == "failed"]
        raise OperationError(
            "the recovery failed:\n  " + "\n  ".join(failed or ["see report"]),
            where=f"recovery of {rec.stack} on {rec.site}",
        )
    return 0


def _write_reports(rec: rc.Recovery, data: dict, report_dir: str | None) -> dict[str, str]:
    base = Path(report_dir or os.environ.get("DRPLAN_REPORT_DIR", "drplan-reports"))
    out = base / f"recovery-{rec.stack}-{rec.started_at.replace(':', '')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2))
    (out / "report.md").write_text(report.markdown(data))
    (out / "gantt.svg").write_text(report.gantt(rec))
    return {
        "json": str(out / "report.json"),
        "markdown": str(out / "report.md"),
        "gantt": str(out / "gantt.svg"),
    }
