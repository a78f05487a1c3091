"""Drill and check records, kept in the repository beside the runs they are about.

Whoever holds the repository after a disaster holds the plan's history with it: the
runs (store.manifest), the drills that timed each recovery step, and the checks that
last re-read the data. `drplan status`, `drplan plan` (estimates from measured steps) and
the runbook read them from here.
"""

from __future__ import annotations

import json

from drplan.errors import DrplanError
from drplan.store import layout
from drplan.store.restic import Repository

HISTORY_LIMIT = 50


def _write(repo: Repository, record: dict, *, filename: str, tags: list[str], host: str, what: str):
    summary = repo.backup_stream(
        [json.dumps(record, indent=2).encode()], filename=filename, tags=tags, host=host, what=what
    )
    return summary["snapshot_id"]


def record_drill(repo: Repository, plan: str, host: str, record: dict) -> str:
    """Store a drill's record; returns its snapshot id."""
    tags = layout.tags(
        plan, layout.Kind.DRILL, drill=record["drill_id"], result=layout.passed(record["passed"])
    )
    return _write(
        repo,
        record,
        filename=layout.DRILL_FILE,
        tags=tags,
        host=host,
        what=f"record of drill {record['drill_id']}",
    )


def list_drills(repo: Repository, plan: str, limit: int = HISTORY_LIMIT) -> list[dict]:
    """The plan's drill records, oldest first (the newest `limit`)."""
    snaps = repo.snapshots(layout.tags(plan, layout.Kind.DRILL))
    snaps.sort(key=lambda s: s.get("time", ""))
    out = []
    for snap in snaps[-limit:]:
        data = repo.read_file(snap["id"], "/" + layout.DRILL_FILE, what="reading a drill record")
        try:
            rec = json.loads(data)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        rec["snapshot"] = snap.get("short_id", snap["id"][:8])
        out.append(rec)
    out.sort(key=lambda r: str(r.get("started_at", "")))
    return out


def step_history(
    repo: Repository | None, plan: str, drills: list[dict] | None = None, newest: int = 5
) -> dict[str, float]:
    """{step id: seconds} measured by the newest drills (the newest value of each step)."""
    if drills is None:
        if repo is None:
            return {}
        try:
            drills = list_drills(repo, plan, limit=newest)
        except DrplanError:
            return {}
    history: dict[str, float] = {}
    for rec in drills[-newest:]:  # oldest first, so newer values win
        steps = rec.get("steps")
        if not isinstance(steps, dict):
            continue
        for sid, s in steps.items():
            if isinstance(s, dict) and s.get("status") == "ok" and s.get("seconds") is not None:
                try:
                    history[sid] = float(s["seconds"])
                except (TypeError, ValueError):
                    continue
    return history


def record_check(repo: Repository, plan: str, host: str, result: dict) -> str:
    """Keep a repository check's outcome beside the runs, where `drplan status` (and
    whoever holds the repository after a disaster) finds it."""
    tags = layout.tags(plan, layout.Kind.CHECK, result=layout.check_result(bool(result["ok"])))
    return _write(
        repo,
        result,
        filename=layout.CHECK_FILE,
        tags=tags,
        host=host,
        what=f"recording the check of {plan}",
    )


def last_check(repo: Repository, plan: str) -> tuple[str | None, bool | None]:
    """(time, ok) of the newest repository check recorded for the plan, or (None, None)."""
    checks = repo.snapshots(layout.tags(plan, layout.Kind.CHECK))
    if not checks:
        return None, None
    checks.sort(key=lambda s: s.get("time", ""))
    newest = checks[-1]
    return newest.get("time"), layout.tag(newest, "result") == layout.check_result(True)
