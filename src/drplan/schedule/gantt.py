"""An SVG Gantt chart of a schedule, critical path highlighted.

Hand-built from a jinja2 template (autoescaped) so it needs no plotting library and is a
valid standalone SVG a crisis cell can open in any browser or paste in a report.
"""

from __future__ import annotations

import math
from importlib import resources

import jinja2

from drplan.plan.units import format_duration
from drplan.schedule.dag import Schedule

KIND_COLORS = {
    "prepare-site": "#9e9e9e",
    "load-images": "#8d6e63",
    "create-volumes": "#a1887f",
    "restore": "#1e88e5",
    "start": "#43a047",
    "health": "#fdd835",
    "validate": "#8e24aa",
}

ROW_H = 18
LEFT = 280
CHART_W = 720
TOP = 70


def _nice_step(total: float, target_ticks: int = 8) -> float:
    raw = max(total, 1.0) / target_ticks
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600):
        if step >= raw:
            return float(step)
    return float(math.ceil(raw / 86400) * 86400)


def render_gantt(
    schedule: Schedule, title: str = "Recovery schedule", rto_label: str = "estimated"
) -> str:
    """The schedule as standalone SVG text (`rto_label`: "measured" for what happened)."""
    horizon = max(schedule.estimated_rto_s, schedule.objective_rto_s or 0.0, 1.0) * 1.05
    scale = CHART_W / horizon
    order = sorted(schedule.steps, key=lambda s: (schedule.start_s[s], schedule.finish_s[s], s))
    critical = set(schedule.critical_path)
    rows = []
    for i, sid in enumerate(order):
        step = schedule.steps[sid]
        start, finish = schedule.start_s[sid], schedule.finish_s[sid]
        rows.append(
            {
                "id": sid,
                "y": TOP + i * ROW_H,
                "x": round(LEFT + start * scale, 2),
                "w": round(max((finish - start) * scale, 1.5), 2),
                "color": KIND_COLORS.get(step.kind.value, "#607d8b"),
                "critical_path": sid in critical,
                "start_label": format_duration(start),
                "finish_label": format_duration(finish),
                "basis": step.estimate_basis,
            }
        )
    bottom = TOP + len(rows) * ROW_H + 4
    tick = _nice_step(horizon)
    ticks = [
        {"x": round(LEFT + t * scale, 2), "label": format_duration(t)}
        for t in (k * tick for k in range(int(horizon // tick) + 1))
    ]
    legend, x = [], 0
    for kind, color in KIND_COLORS.items():
        legend.append({"x": x, "color": color, "label": kind, "stroke": None})
        x += 16 + 7 * len(kind) + 14
    legend.append({"x": x, "color": "#ffffff", "label": "critical path", "stroke": "#b00020"})
    objective = schedule.objective_rto_s
    met = schedule.objective_met()
    subtitle = (
        f"profile {schedule.profile} · {len(schedule.services)} services · "
        f"{len(schedule.steps)} steps · {rto_label} RTO {format_duration(schedule.estimated_rto_s)}"
        + (
            f" · objective {format_duration(objective)} ({'met' if met else 'MISSED'})"
            if objective is not None
            else ""
        )
    )
    env = jinja2.Environment(autoescape=True, trim_blocks=False, undefined=jinja2.StrictUndefined)
    source = (
        resources.files("drplan.schedule").joinpath("templates/gantt.svg.j2").read_text("utf-8")
    )
    return env.from_string(source).render(
        title=title,
        subtitle=subtitle,
        width=LEFT + CHART_W + 40,
        height=bottom + 60,
        left=LEFT,
        right=LEFT + CHART_W,
        top=TOP,
        bottom=bottom,
        row_h=ROW_H,
        rows=rows,
        ticks=ticks,
        legend=legend,
        objective_x=round(LEFT + objective * scale, 2) if objective is not None else None,
        objective_label=format_duration(objective) if objective is not None else "",
    )
