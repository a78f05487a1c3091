"""Backup-side commands: repo init, backup, runs, copy, prune, check."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from drplan.actions import backup as backup_action
from drplan.actions import repo_ops
from drplan.actions.context import load_plan
from drplan.commands.progress import StepProgress
from drplan.errors import OperationError
from drplan.store import manifest as mf


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def run_repo_init(plan: str, out) -> int:
    pc = load_plan(plan)
    names = [pc.plan.primary_repository()] + [r.name for r in pc.copies()]
    for name in names:
        repo = pc.repository(name)
        created = repo.init()
        out(f"{repo.name}: {'initialised' if created else 'already initialised'} ({repo.url})")
    return 0


def backup_json(m: mf.Manifest) -> dict:
    return {
        "run_id": m.run_id,
        "plan": m.plan,
        "complete": m.complete,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "rpo_point": m.rpo_point,
        "sources": [
            {
                "service": s.service,
                "source": s.source,
                "engine": s.engine,
                "method": s.method,
                "snapshot": s.snapshot,
                "path": s.path,
                "bytes": s.bytes,
                "seconds": s.seconds,
                "fingerprint": s.fingerprint,
                "consistency": s.consistency,
                "stats": s.stats,
            }
            for s in m.sources
        ],
        "images": m.images,
        "images_snapshot": m.images_snapshot,
        "downtime_s": m.downtime_s,
        "errors": m.errors,
        "timings": m.timings,
    }


def run_backup(plan: str, services: list[str] | None, site: str | None, as_json: bool, out) -> int:
    pc = load_plan(plan)
    with StepProgress(enabled=None if not as_json else False) as progress:
        manifest = backup_action.run_backup(
            pc,
            backup_action.BackupOptions(services=services or None, site=site),
            on_event=progress.event,
            on_bytes=progress.bytes,
        )
    if as_json:
        out(json.dumps(backup_json(manifest), indent=2))
    else:
        console = Console()
        table = Table(title=f"run {manifest.run_id} of {manifest.plan}")
        for col in ("service", "source", "engine", "snapshot", "size", "seconds"):
            table.add_column(col)
        for s in manifest.sources:
            table.add_row(
                s.service,
                s.source,
                f"{s.engine}/{s.method}",
                s.snapshot[:8],
                human_bytes(s.bytes),
                f"{s.seconds:.1f}",
            )
        console.print(table)
        for svc, down in manifest.downtime_s.items():
            out(f"downtime of {svc} (cold copy): {down:.1f}s")
    if not manifest.complete:
        raise OperationError(
            "the run is incomplete:\n  " + "\n  ".join(manifest.errors),
            where=f"backup run {manifest.run_id}",
        )
    if not as_json:
        out(f"complete: run {manifest.run_id}, {human_bytes(manifest.total_bytes)}")
    return 0


def run_runs(plan: str, as_json: bool, out, repository: str | None = None) -> int:
    pc = load_plan(plan)
    repo = pc.repository(repository)
    repo.open()
    now = datetime.now(UTC)
    rows = []
    for _, m in mf.list_runs(repo, pc.name):
        age = (now - mf.parse_time(m.rpo_point)).total_seconds()
        rpo_worst = None
        for s in m.sources:
            obj, _ = (
                pc.plan.effective_objective(s.service, "rpo")
                if s.service in pc.plan.services
                else (pc.plan.objectives.rpo, None)
            )
            if obj is not None:
                rpo_worst = obj if rpo_worst is None else min(rpo_worst, obj)
        rows.append(
            {
                "run_id": m.run_id,
                "started_at": m.started_at,
                "finished_at": m.finished_at,
                "complete": m.complete,
                "bytes": m.total_bytes,
                "sources": len(m.sources),
                "age_s": round(age),
                "rpo_objective_s": rpo_worst,
                "within_rpo": None if rpo_worst is None else age <= rpo_worst,
                "errors": m.errors,
            }
        )
    if as_json:
        out(json.dumps({"plan": pc.name, "repository": repo.url, "runs": rows}, indent=2))
        return 0
    table = Table(title=f"runs of {pc.name} in {repo.name}")
    for col in ("run", "complete", "size", "age", "RPO"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        rpo = (
            "-"
            if r["within_rpo"] is None
            else ("[green]met" if r["within_rpo"] else "[red]exceeded")
        )
        table.add_row(
            r["run_id"],
            "yes" if r["complete"] else "[red]no",
            human_bytes(r["bytes"]),
            human_age(r["age_s"]),
            rpo,
        )
    Console().print(table)
    if not rows:
        out("no run yet")
    return 0


def run_copy(plan: str, as_json: bool, out) -> int:
    pc = load_plan(plan)
    results = repo_ops.copy_runs(pc)
    if as_json:
        out(json.dumps(results, indent=2))
    else:
        for r in results:
            out(
                f"{r['repository']}: copied {len(r['copied'])} run(s), "
                f"{len(r['already'])} already there"
            )
    return 0


def run_prune(plan: str, dry_run: bool, as_json: bool, out, repository: str | None = None) -> int:
    pc = load_plan(plan)
    res = repo_ops.prune(pc, dry_run=dry_run, repository=repository)
    if as_json:
        out(json.dumps(res, indent=2))
    else:
        out(
            f"keep {len(res['keep'])} run(s); forget {len(res['forget'])} run(s)"
            f" and {res['orphan_snapshots']} snapshot(s) of interrupted runs"
            + (" (dry run)" if dry_run else "")
        )
        for r in res["forget"]:
            out(f"  forget {r}")
    return 0


def run_check(
    plan: str, subset: str | None, samples: int, as_json: bool, out, repository: str | None = None
) -> int:
    pc = load_plan(plan)
    res = repo_ops.check(pc, read_data_subset=subset, samples=samples, repository=repository)
    if as_json:
        out(json.dumps(res, indent=2))
    else:
        out(f"repository {res['name']}: {res['repository']}")
        for s in res["samples"]:
            out(
                f"  {s['service']}/{s['source']}: {'ok' if s['ok'] else 'DIFFERS'}"
                + ("" if s["ok"] else ": " + "; ".join(s["differences"][:5]))
            )
    if not res["ok"]:
        raise OperationError("check failed", where=f"plan {pc.name}")
    return 0
