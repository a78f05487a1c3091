"""`drplan repo init`, `runs` and `drills`: a plan's repositories, its runs against the
RPO, its drill records (copies, retention and checks are in drplan.actions.repo_ops)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drplan.actions.context import PlanContext
from drplan.reports import drill as drill_report
from drplan.store import manifest as mf
from drplan.store import records
from drplan.store.restic import Repository


def init_all(pc: PlanContext) -> list[tuple[Repository, bool]]:
    """Create the primary repository and the off-site copies where missing; each with
    whether it was created now."""
    names = [pc.plan.primary_repository()] + [r.name for r in pc.copies()]
    done = []
    for name in names:
        repo = pc.repository(name)
        done.append((repo, repo.init()))
    return done


@dataclass
class RunRow:
    """One run as `drplan runs` shows it."""

    run_id: str
    started_at: str
    finished_at: str | None
    complete: bool
    bytes: int
    sources: int
    age_s: int
    rpo_objective_s: float | None
    within_rpo: bool | None
    errors: list[str] = field(default_factory=list)


def list_runs(
    pc: PlanContext, repository: str | None = None, now: datetime | None = None
) -> tuple[Repository, list[RunRow]]:
    """The plan's runs in `repository` (default: the primary), oldest first, each with
    its age against the tightest RPO objective of the services it holds."""
    repo = pc.repository(repository)
    repo.open()
    now = now or datetime.now(UTC)
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
            RunRow(
                run_id=m.run_id,
                started_at=m.started_at,
                finished_at=m.finished_at,
                complete=m.complete,
                bytes=m.total_bytes,
                sources=len(m.sources),
                age_s=round(age),
                rpo_objective_s=rpo_worst,
                within_rpo=None if rpo_worst is None else age <= rpo_worst,
                errors=m.errors,
            )
        )
    return repo, rows


def drill_records(pc: PlanContext) -> list[records.DrillRecord]:
    """The plan's drill records in its primary repository, oldest first."""
    repo = pc.repository()
    repo.open()
    return records.list_drills(repo, pc.name)


def runs_document(pc: PlanContext, repository: str | None = None) -> dict:
    """`drplan runs --json`: the runs with their age against the RPO."""
    repo, rows = list_runs(pc, repository)
    return {"plan": pc.name, "repository": repo.url, "runs": [dataclasses.asdict(r) for r in rows]}


def drills_document(pc: PlanContext) -> dict:
    """`drplan drills --json`: the drill history with the RTO/RPO trend, and the newest
    record whole (its steps: the dashboard draws its Gantt chart, wherever it ran)."""
    drills = drill_records(pc)
    newest = drills[-1].as_json() if drills else None
    return {"plan": pc.name, **drill_report.history(drills), "newest": newest}
