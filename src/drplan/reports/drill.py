"""Drill reports: one drill (Markdown, with the recovery's Gantt chart) and the history of
drills with the trend of RTO and RPO (table and text sparklines)."""

from __future__ import annotations

from importlib import resources

import jinja2

from drplan.plan.units import format_duration
from drplan.store.records import DrillRecord

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """One character per value, scaled between the smallest and the largest (· = none)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append("·")
        elif hi == lo:
            out.append(SPARKS[3])
        else:
            out.append(SPARKS[round((v - lo) / (hi - lo) * (len(SPARKS) - 1))])
    return "".join(out)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.filters["dur"] = lambda s: "-" if s is None else format_duration(float(s))
    env.filters["verdict"] = lambda v: "-" if v is None else (v if v == "met" else f"**{v}**")
    return env


def markdown(record: DrillRecord) -> str:
    src = resources.files("drplan.reports").joinpath("templates/drill.md.j2").read_text()
    return _env().from_string(src).render(d=record)


def history(drills: list[DrillRecord]) -> dict:
    """The history as data: each drill's essentials, and the RTO/RPO trend."""
    rows = [
        {
            "drill_id": d.drill_id,
            "started_at": d.started_at,
            "run_id": d.run_id,
            "profile": d.profile,
            "passed": d.passed,
            "failure": d.failure,
            "rto_s": d.rto.measured_s,
            "rto_objective_s": d.rto.objective_s,
            "rto_verdict": d.rto.verdict,
            "rpo_s": d.rpo.measured_s,
            "rpo_objective_s": d.rpo.objective_s,
            "rpo_verdict": d.rpo.verdict,
            "plan_sha256": d.plan_sha256,
            "snapshot": d.snapshot,
        }
        for d in drills
    ]
    rto = [r["rto_s"] for r in rows]
    rpo = [r["rpo_s"] for r in rows]

    def trend(values: list[float | None]) -> str | None:
        known = [v for v in values if v is not None]
        if len(known) < 2:
            return None
        return "better" if known[-1] < known[0] else "worse" if known[-1] > known[0] else "same"

    return {
        "drills": rows,
        "trend": {
            "rto": {"values_s": rto, "sparkline": sparkline(rto), "direction": trend(rto)},
            "rpo": {"values_s": rpo, "sparkline": sparkline(rpo), "direction": trend(rpo)},
        },
    }


def history_text(plan: str, data: dict) -> str:
    rows = data["drills"]
    if not rows:
        return f"no drill of {plan} recorded yet (run: drplan drill PLAN)"
    lines = [f"Drills of {plan} ({len(rows)}, oldest first)", ""]
    head = f"{'started (UTC)':<21} {'drill':<7} {'result':<7} {'RTO':>9} {'':<18} {'RPO':>9} "
    lines.append(head + "verdict")
    for r in rows:
        lines.append(
            f"{r['started_at']:<21} {r['drill_id']:<7} {'passed' if r['passed'] else 'FAILED':<7} "
            f"{format_duration(r['rto_s']) if r['rto_s'] is not None else '-':>9} "
            f"{(r['rto_verdict'] or '-'):<18} "
            f"{format_duration(r['rpo_s']) if r['rpo_s'] is not None else '-':>9} "
            f"{r['rpo_verdict'] or '-'}"
        )
        if r["failure"]:
            lines.append(f"{'':<21} reason: {r['failure'][:200]}")
    t = data["trend"]
    lines += [
        "",
        f"RTO trend {t['rto']['sparkline']}  ({t['rto']['direction'] or 'too few drills'})",
        f"RPO trend {t['rpo']['sparkline']}  ({t['rpo']['direction'] or 'too few drills'})",
    ]
    return "\n".join(lines)
