"""Drill and check records, kept in the repository beside the runs they are about.

Whoever holds the repository after a disaster holds the plan's history with it: the
runs (store.manifest), the drills that timed each recovery step, and the checks that
last re-read the data. `drplan status`, `drplan plan` (estimates from measured steps) and
the runbook read them from here.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drplan.errors import DrplanError
from drplan.store import layout
from drplan.store.restic import Repository

HISTORY_LIMIT = 50


class _Record(BaseModel):
    # a record is read back from a repository whoever could write to it controls: its
    # shape is checked field by field; keys a later drplan adds are ignored
    model_config = ConfigDict(extra="ignore")


class StepRecord(_Record):
    status: str
    seconds: float | None = None
    error: str | None = None
    # when the step started (UTC, ISO 8601): the drill's Gantt chart as it happened
    started_at: str | None = Field(None, max_length=40)


class RtoRecord(_Record):
    measured_s: float | None = None
    estimated_s: float | None = None
    objective_s: float | None = None
    verdict: str | None = None


class RpoRecord(_Record):
    recovery_point: str
    measured_s: float | None = None
    objective_s: float | None = None
    verdict: str | None = None


class TeardownRecord(_Record):
    clean: bool
    removed: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class DrillRecord(_Record):
    """One drill, as stored in the repository (drill.json) and printed by `drplan drill
    --json`: what was recovered where, RTO and RPO against their objectives, every step,
    the verification and the teardown."""

    kind: Literal["drill"] = "drill"
    format: int = 1
    drill_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    plan: str
    stack: str
    site: str
    profile: str = "full"
    run_id: str
    started_at: str
    finished_at: str
    seconds: float
    passed: bool
    failure: str | None = None
    interrupted_by: str | None = None
    plan_sha256: str | None = None
    compose_sha256: str | None = None
    rto: RtoRecord
    rpo: RpoRecord
    verified: bool = False
    verification: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    critical_path: dict[str, list[str]] = Field(default_factory=dict)
    teardown: TeardownRecord
    # what the drill did not share with production (drplan.plan.isolation)
    isolated: list[str] = Field(default_factory=list)
    # this record's snapshot in the repository, or why it could not be stored
    recorded_as: str | None = None
    record_error: str | None = None
    # set when read back: the record's snapshot (short id)
    snapshot: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as written to drill.json (no None-only bookkeeping dropped: the
        format is stable)."""
        return self.model_dump(mode="json", exclude={"snapshot"})


def _write(repo: Repository, record: dict, *, filename: str, tags: list[str], host: str, what: str):
    summary = repo.backup_stream(
        [json.dumps(record, indent=2).encode()], filename=filename, tags=tags, host=host, what=what
    )
    return summary["snapshot_id"]


def record_drill(repo: Repository, host: str, record: DrillRecord) -> str:
    """Store a drill's record; returns its snapshot id."""
    tags = layout.tags(
        record.plan, layout.Kind.DRILL, drill=record.drill_id, result=layout.passed(record.passed)
    )
    return _write(
        repo,
        record.as_json(),
        filename=layout.DRILL_FILE,
        tags=tags,
        host=host,
        what=f"record of drill {record.drill_id}",
    )


def list_drills(repo: Repository, plan: str, limit: int = HISTORY_LIMIT) -> list[DrillRecord]:
    """The plan's drill records, oldest first (the newest `limit`). A record that does not
    have a drill record's shape is left out (it says nothing trustworthy)."""
    snaps = repo.snapshots(layout.tags(plan, layout.Kind.DRILL))
    snaps.sort(key=lambda s: s.get("time", ""))
    out = []
    for snap in snaps[-limit:]:
        data = repo.read_file(snap["id"], "/" + layout.DRILL_FILE, what="reading a drill record")
        try:
            rec = DrillRecord.model_validate_json(data)
        except (ValidationError, ValueError):
            continue
        rec.snapshot = str(snap.get("short_id") or snap["id"][:8])
        out.append(rec)
    out.sort(key=lambda r: r.started_at)
    return out


def step_history(
    repo: Repository | None, plan: str, drills: list[DrillRecord] | None = None, newest: int = 5
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
        for sid, step in rec.steps.items():
            if step.status == "ok" and step.seconds is not None:
                history[sid] = step.seconds
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
