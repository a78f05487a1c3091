"""The dashboard's charts, as geometry for its templates or as SVG: the runs timeline,
the newest drill's Gantt chart and the RTO trend of past drills.

The timeline and the trend are drawn by the templates from the geometry computed here
(inline SVG, autoescaped); the Gantt chart is the one `drplan plan --svg` draws
(drplan.schedule.gantt), fed with the drill's measured durations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from drplan.errors import DrplanError
from drplan.plan import model as m
from drplan.schedule.dag import Schedule, build_schedule
from drplan.schedule.gantt import render_gantt
from drplan.schedule.steps import Step, StepKind
from drplan.serve import cadence
from drplan.serve import state as st
from drplan.serve.formats import duration, parse_time, when
from drplan.store.records import DrillRecord

# the RTO objective is drawn on the Gantt chart when it is within this factor of the end
OBJECTIVE_ON_CHART = 3.0


# -- the runs timeline (inline SVG) ---------------------------------------------------

STATUS_COLOURS = {
    st.OK: "#2e7d32",
    st.FAILED: "#c62828",
    st.INTERRUPTED: "#ef6c00",
    st.DEAD: "#6a1b9a",
    st.RUNNING: "#1565c0",
    "complete": "#2e7d32",
    "incomplete": "#c62828",
}
TL_LEFT, TL_WIDTH, TL_ROW, TL_TOP = 150, 900, 26, 34
TICK_STEPS = (
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
)


@dataclass
class Bar:
    lane: str
    start: float
    end: float
    status: str
    label: str


@dataclass
class Timeline:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    lanes: list[dict[str, Any]] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    now_x: float = 0.0
    day: str = ""
    legend: list[dict[str, Any]] = field(default_factory=list)


def timeline_bars(runs: list[st.Run], repo_runs: list[dict[str, Any]], now: float) -> list[Bar]:
    """One bar per daemon job (its lane is the job) and per repository run (the
    `repository` lane: what exists, whoever made it)."""
    bars = []
    for r in runs:
        end = r.ended_at if r.ended_at is not None else now
        took = duration(end - r.started_at)
        label = f"{r.job} {r.status} ({r.trigger}), {when(r.started_at)}, {took}"
        if r.ref:
            label += f", {r.ref}"
        bars.append(Bar(r.job, r.started_at, end, r.status, label))
    for doc in repo_runs:
        start = parse_time(doc.get("started_at"))
        if start is None:
            continue
        end = parse_time(doc.get("finished_at")) or start
        status = "complete" if doc.get("complete") else "incomplete"
        label = f"run {doc.get('run_id', '?')} {status}, {when(start)}"
        bars.append(Bar("repository", start, max(end, start), status, label))
    return bars


def _tick_step(span: float) -> float:
    for step in TICK_STEPS:
        if span / step <= 10:
            return float(step)
    return float(math.ceil(span / 10 / 86400) * 86400)


def _tick_label(t: float, step: float) -> str:
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%m-%d"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def timeline(runs: list[st.Run], repo_runs: list[dict[str, Any]], now: float) -> Timeline | None:
    """The geometry of the runs timeline, or None when nothing ran yet."""
    bars = timeline_bars(runs, repo_runs, now)
    if not bars:
        return None
    lanes = ["repository", *cadence.JOBS]
    lanes += sorted({b.lane for b in bars} - set(lanes))
    t0 = min(b.start for b in bars)
    t1 = max(now, max(b.end for b in bars))
    span = max(t1 - t0, 60.0)
    t0 -= span * 0.02
    t1 += span * 0.02
    scale = TL_WIDTH / (t1 - t0)
    bottom = TL_TOP + len(lanes) * TL_ROW
    tl = Timeline(
        width=TL_LEFT + TL_WIDTH + 20,
        height=bottom + 44,
        left=TL_LEFT,
        right=TL_LEFT + TL_WIDTH,
        top=TL_TOP,
        bottom=bottom,
        now_x=round(TL_LEFT + (now - t0) * scale, 1),
        day=datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d UTC"),
    )
    for i, lane in enumerate(lanes):
        tl.lanes.append({"name": lane, "y": TL_TOP + i * TL_ROW, "odd": i % 2 == 1})
    for b in sorted(bars, key=lambda b: b.start):
        x = TL_LEFT + (b.start - t0) * scale
        tl.bars.append(
            {
                "x": round(x, 1),
                "y": TL_TOP + lanes.index(b.lane) * TL_ROW + 5,
                "w": round(max((b.end - b.start) * scale, 4.0), 1),
                "h": TL_ROW - 10,
                "colour": STATUS_COLOURS.get(b.status, "#607d8b"),
                "status": b.status,
                "lane": b.lane,
                "label": b.label,
            }
        )
    step = _tick_step(t1 - t0)
    t = math.ceil(t0 / step) * step
    while t <= t1:
        tl.ticks.append({"x": round(TL_LEFT + (t - t0) * scale, 1), "label": _tick_label(t, step)})
        t += step
    x = TL_LEFT
    for status in ("ok", "failed", "interrupted", "dead", "running", "complete", "incomplete"):
        tl.legend.append({"x": x, "colour": STATUS_COLOURS[status], "label": status})
        x += 24 + 7 * len(status) + 16
    return tl


# -- drills: the newest with its Gantt chart, the RTO trend ---------------------------------


def svg_fragment(svg: str) -> Markup:
    """A standalone SVG (from an autoescaped template) as markup to inline in the page:
    its XML declaration dropped."""
    text = svg.lstrip()
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :].lstrip()
    return Markup(text)  # made by autoescaped templates (module docstring)


def drill_record(doc: Any) -> DrillRecord | None:
    """A `drplan drill --json` document the daemon kept, checked field by field (None
    when it is not a drill record: a drill that failed before recording one)."""
    if not isinstance(doc, dict):
        return None
    try:
        return DrillRecord.model_validate(doc)
    except ValueError:
        return None


def _kind_of(step_id: str) -> StepKind:
    head = step_id.split(":", 1)[0]
    try:
        return StepKind(head)
    except ValueError:
        return StepKind.PREPARE_SITE


def drill_schedule(record: DrillRecord, plan: m.Plan | None) -> Schedule:
    """The drill as a schedule for the Gantt chart: each step's measured duration on the
    plan's dependencies, at the time it started when the record keeps it (else from the
    end of its last dependency, how the executor starts them); the critical path is the
    one the drill measured."""
    base: dict[str, Step] = {}
    if plan is not None:
        try:
            base = build_schedule(plan, record.profile).steps
        except DrplanError:
            base = {}
    ids = set(record.steps)
    steps = []
    for sid, rec in record.steps.items():
        seconds = float(rec.seconds or 0.0)
        known = base.get(sid)
        if known is not None:
            steps.append(
                replace(
                    known,
                    after=frozenset(a for a in known.after if a in ids),
                    estimate_s=seconds,
                    estimate_basis=f"measured, {rec.status}",
                )
            )
        else:
            steps.append(
                Step(id=sid, kind=_kind_of(sid), estimate_s=seconds, estimate_basis=rec.status)
            )
    services = sorted({s.service for s in steps if s.service})
    schedule = Schedule.from_steps(
        steps, objective_rto_s=record.rto.objective_s, profile=record.profile, services=services
    )
    actual = record.critical_path.get("actual") or []
    if actual and all(s in schedule.steps for s in actual):
        schedule.critical_path = list(actual)
    _as_it_happened(schedule, record)
    measured = record.rto.measured_s
    if measured is not None and measured >= schedule.estimated_rto_s:
        schedule.estimated_rto_s = measured
    return schedule


def _as_it_happened(schedule: Schedule, record: DrillRecord) -> None:
    """Each step at the time it really started, when the record says (drplan since
    StepRecord.started_at): the chart shows the drill as it ran, waits included."""
    starts = {sid: parse_time(rec.started_at) for sid, rec in record.steps.items()}
    known = {sid: t for sid, t in starts.items() if t is not None and sid in schedule.steps}
    if not known or len(known) != len(schedule.steps):
        return
    t0 = min(known.values())
    for sid, t in known.items():
        schedule.start_s[sid] = t - t0
        schedule.finish_s[sid] = t - t0 + float(record.steps[sid].seconds or 0.0)
    schedule.estimated_rto_s = max(max(schedule.finish_s.values()), record.rto.measured_s or 0.0)


def drill_gantt(record: DrillRecord, plan: m.Plan | None, name: str) -> Markup | None:
    """The drill's Gantt chart. An objective far beyond the drill's end is left off the
    axis (it would squeeze every bar into a few pixels) and named in the title."""
    if not record.steps:
        return None
    schedule = drill_schedule(record, plan)
    title = f"Drill {record.drill_id} of {name} on {record.site} (run {record.run_id})"
    objective = schedule.objective_rto_s
    if objective is not None and objective > OBJECTIVE_ON_CHART * max(
        schedule.estimated_rto_s, 1.0
    ):
        schedule.objective_rto_s = None
        title += f", RTO objective {duration(objective)}: off the chart"
    return svg_fragment(render_gantt(schedule, title=title, rto_label="measured"))


@dataclass
class Trend:
    width: int
    height: int
    points: list[dict[str, Any]]
    polyline: str
    objective_y: float | None
    objective_label: str
    top_label: str
    left: int
    right: int
    top: int
    bottom: int


def rto_trend(drills: list[dict[str, Any]]) -> Trend | None:
    """The measured RTO of the newest drills as a small line chart (None below two
    measured drills: a trend needs two points)."""
    rows = [d for d in drills if isinstance(d.get("rto_s"), int | float)]
    if len(rows) < 2:
        return None
    objective = next(
        (d.get("rto_objective_s") for d in reversed(rows) if d.get("rto_objective_s")), None
    )
    top_value = max([*(float(d["rto_s"]) for d in rows), float(objective or 0)]) * 1.15
    left, right, top, bottom = 60, 460, 12, 132
    step = (right - left) / (len(rows) - 1)
    points = []
    for i, d in enumerate(rows):
        x = left + i * step
        y = bottom - float(d["rto_s"]) / top_value * (bottom - top)
        points.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "passed": bool(d.get("passed")),
                "label": f"drill {d.get('drill_id', '?')} {d.get('started_at', '')}: "
                f"RTO {duration(d['rto_s'])}",
            }
        )
    objective_y = None
    if objective:
        objective_y = round(bottom - float(objective) / top_value * (bottom - top), 1)
    return Trend(
        width=right + 20,
        height=bottom + 26,
        points=points,
        polyline=" ".join(f"{p['x']},{p['y']}" for p in points),
        objective_y=objective_y,
        objective_label=f"objective {duration(objective)}" if objective else "",
        top_label=duration(top_value),
        left=left,
        right=right,
        top=top,
        bottom=bottom,
    )
