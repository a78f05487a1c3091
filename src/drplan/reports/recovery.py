"""The recovery report: measured RTO and RPO against the objectives, every step with its
times, the estimated versus actual critical path, the verification of every source, and
a Gantt chart of what actually happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

import jinja2

from drplan.errors import InputError
from drplan.executor import Outcome
from drplan.plan import model as m
from drplan.plan.units import format_duration
from drplan.schedule import Schedule
from drplan.schedule.gantt import render_gantt
from drplan.store import manifest as mf


@dataclass
class Recovery:
    """What a recovery did: the report's raw material."""

    plan: str
    stack: str
    site: str
    run: mf.Manifest
    profile: str
    schedule: Schedule
    started_at: str
    finished_at: str = ""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    verification: dict[str, list[str]] = field(default_factory=dict)
    resumed: bool = False
    measured_rto_s: float | None = None
    ok: bool = False
    incident_at: str = ""
    # the step durations the schedule was estimated from (a dry run prints that schedule)
    history: dict[str, float] = field(default_factory=dict)
    # what an untrusted stored plan would have run on this host (listed by a dry run)
    not_run: list[str] = field(default_factory=list)
    # every execution of the plan's restore hooks (drplan.actions.hooks)
    hooks: list[mf.HookRecord] = field(default_factory=list)
    # multi-node sites: the node chosen for each service holding node-local data
    placement: dict[str, str] = field(default_factory=dict)


def rpo_objective(plan: m.Plan, services: list[str]) -> float | None:
    values = [plan.effective_objective(s, "rpo")[0] for s in services]
    values = [v for v in values if v is not None]
    return min(values) if values else plan.objectives.rpo


def actual_schedule(rec: Recovery) -> Schedule:
    """The schedule with measured start/finish times and the critical path that was."""
    steps = rec.schedule.steps
    ran = {sid: o for sid, o in rec.outcomes.items() if o.status in ("ok", "failed")}
    start = {sid: o.t0 for sid, o in ran.items()}
    finish = {sid: o.t1 for sid, o in ran.items()}
    for sid in rec.outcomes:  # done before this attempt, or never run
        start.setdefault(sid, 0.0)
        finish.setdefault(sid, 0.0)
    path: list[str] = []
    if ran:
        cur: str | None = max(ran, key=lambda s: finish[s])
        while cur is not None:
            path.append(cur)
            preds = [p for p in steps[cur].after if p in ran]
            cur = max(preds, key=lambda p: finish[p]) if preds else None
        path.reverse()
    return Schedule(
        steps=dict(steps),
        waves=rec.schedule.waves,
        start_s=start,
        finish_s=finish,
        critical_path=path,
        estimated_rto_s=rec.measured_rto_s or max(finish.values(), default=0),
        objective_rto_s=rec.schedule.objective_rto_s,
        profile=rec.profile,
        services=rec.schedule.services,
    )


def build(rec: Recovery, plan: m.Plan) -> dict:
    incident = mf.parse_time(rec.incident_at)
    rpo_s = (incident - mf.parse_time(rec.run.rpo_point)).total_seconds()
    rpo_obj = rpo_objective(plan, rec.schedule.services or list(plan.services))
    rto_obj = rec.schedule.objective_rto_s
    actual = actual_schedule(rec)
    steps = []
    for sid, step in rec.schedule.steps.items():
        o = rec.outcomes.get(sid)
        steps.append(
            {
                "id": sid,
                "service": step.service,
                "kind": step.kind.value,
                "critical": step.critical,
                "estimate_s": round(step.estimate_s, 1),
                "status": o.status if o else "not-run",
                "started_at": o.started_at if o else None,
                "finished_at": o.finished_at if o else None,
                "seconds": round(o.seconds, 3) if o else None,
                "error": o.error if o else None,
            }
        )
    verification = {
        svc: {"ok": not diffs, "differences": diffs} for svc, diffs in rec.verification.items()
    }
    return {
        "plan": rec.plan,
        "stack": rec.stack,
        "site": rec.site,
        "profile": rec.profile,
        "run_id": rec.run.run_id,
        "ok": rec.ok,
        "resumed": rec.resumed,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "rto": {
            "measured_s": rec.measured_rto_s,
            "estimated_s": round(rec.schedule.estimated_rto_s, 1),
            "objective_s": rto_obj,
            "met": None
            if rto_obj is None or rec.measured_rto_s is None
            else rec.measured_rto_s <= rto_obj,
        },
        "rpo": {
            "incident_at": rec.incident_at,
            "recovery_point": rec.run.rpo_point,
            "measured_s": round(rpo_s),
            "objective_s": rpo_obj,
            "met": None if rpo_obj is None else rpo_s <= rpo_obj,
        },
        "critical_path": {"estimated": rec.schedule.critical_path, "actual": actual.critical_path},
        "services": rec.schedule.services,
        "steps": steps,
        "verification": verification,
        "verified": bool(verification) and all(v["ok"] for v in verification.values()),
        "hooks": [h.model_dump() for h in rec.hooks],
        "placement": dict(sorted(rec.placement.items())),
    }


def markdown(report: dict) -> str:
    env = jinja2.Environment(
        autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.filters["dur"] = lambda s: "-" if s is None else format_duration(float(s))
    env.filters["met"] = lambda v: "-" if v is None else ("met" if v else "**NOT met**")
    src = resources.files("drplan.reports").joinpath("templates/recovery.md.j2").read_text()
    return env.from_string(src).render(r=report)


def gantt(rec: Recovery) -> str:
    return render_gantt(
        actual_schedule(rec),
        title=f"Recovery of {rec.stack} on {rec.site} (run {rec.run.run_id}, as it happened)",
        rto_label="measured",
    )


def parse_incident(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return mf.parse_time(value)
    except ValueError:
        raise InputError(
            f"--incident-at {value!r} is not an ISO 8601 time (e.g. 2026-11-23T03:10:00Z)"
        ) from None
