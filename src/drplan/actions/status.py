"""Status of a plan's readiness, as data: newest complete run per service against the RPO,
newest drill against the RTO, repository health, and whether the plan changed since the
last passed drill (then it needs a drill). Only the repository is read: no engine."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from drplan.actions import drill as dr
from drplan.actions.context import PlanContext
from drplan.errors import DrplanError
from drplan.store import manifest as mf
from drplan.store import records


def gather(pc: PlanContext, now: datetime | None = None) -> dict:
    """Everything `drplan status` shows, as data (no engine is contacted)."""
    now = now or datetime.now(UTC)
    repo = pc.repository()
    health: dict = {"repository": repo.name, "url": repo.url}
    runs: list[mf.Manifest] = []
    drills: list[records.DrillRecord] = []
    t0 = time.monotonic()
    try:
        repo.open()
        health["opens"] = True
        runs = [m for _, m in mf.list_runs(repo, pc.name)]
        drills = records.list_drills(repo, pc.name)
        health["reachable_s"] = round(time.monotonic() - t0, 3)
        health["last_check"], health["last_check_ok"] = records.last_check(repo, pc.name)
    except DrplanError as exc:
        health["opens"] = False
        health["error"] = str(exc)
    return {**readiness(pc, runs, drills, now), "repository": health}


def readiness(
    pc: PlanContext, runs: list[mf.Manifest], drills: list[records.DrillRecord], now: datetime
) -> dict:
    """The status from the runs and drill records (pure: what `gather` read)."""
    complete = [m for m in runs if m.complete]
    services = []
    for name in pc.plan.services:
        newest = next(
            (
                m
                for m in reversed(complete)
                if any(s.service == name for s in m.sources) or not pc.plan.services[name].data
            ),
            None,
        )
        objective = pc.plan.effective_objective(name, "rpo")[0]
        age = (now - mf.parse_time(newest.rpo_point)).total_seconds() if newest else None
        services.append(
            {
                "service": name,
                "run_id": newest.run_id if newest else None,
                "recovery_point": newest.rpo_point if newest else None,
                "age_s": round(age) if age is not None else None,
                "rpo_objective_s": objective,
                "verdict": dr.grade(age, objective) if newest else "no backup",
                # where its data was read: the node to look at first after an incident
                "nodes": sorted(
                    {s.node for s in newest.sources if s.service == name and s.node}
                )
                if newest
                else [],
            }
        )
    last = drills[-1] if drills else None
    last_passed = next((d for d in reversed(drills) if d.passed), None)
    digest = dr.plan_digest(pc)
    changed = None
    if last_passed is not None:
        changed = (last_passed.plan_sha256, last_passed.compose_sha256) != (
            digest["plan_sha256"],
            digest["compose_sha256"],
        )
    needs = last_passed is None or bool(changed)
    return {
        "plan": pc.name,
        "at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "services": services,
        "last_run": {
            "run_id": runs[-1].run_id,
            "complete": runs[-1].complete,
            "started_at": runs[-1].started_at,
        }
        if runs
        else None,
        "last_drill": None
        if last is None
        else {
            "drill_id": last.drill_id,
            "started_at": last.started_at,
            "passed": last.passed,
            "failure": last.failure,
            "rto_s": last.rto.measured_s,
            "rto_objective_s": last.rto.objective_s,
            "rto_verdict": last.rto.verdict,
        },
        "last_passed_drill": last_passed.drill_id if last_passed else None,
        "plan_changed_since_drill": changed,
        "needs_drill": needs,
        "needs_drill_reason": (
            "no drill has passed yet"
            if last_passed is None
            else "the plan or its compose files changed since the last passed drill"
            if changed
            else None
        ),
        **digest,
    }
