"""The dashboard's pages, rendered on the server from the workers' views (jinja2).

Plain HTML and inline SVG, no JavaScript needed: it works in any browser, behind any
proxy, and in a crisis on whatever laptop is left.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jinja2

from drplan.serve import cadence

if TYPE_CHECKING:
    from drplan.serve.daemon import Daemon, PlanView

HTML = "text/html; charset=utf-8"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("drplan.serve", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


_env.filters["when"] = when
_env.filters["duration"] = duration


def login_page() -> str:
    return _env.get_template("login.html.j2").render()


def api_plans(daemon: Daemon) -> list[dict[str, Any]]:
    """The plans as JSON (the dashboard's data, for scripts)."""
    out = []
    for v in daemon.views():
        out.append(
            {
                "plan": v.name,
                "path": str(v.path),
                "error": v.error,
                "paused": v.paused,
                "current": v.current,
                "next": v.next,
                "last": {job: run.as_json() for job, run in v.last.items()},
                "rpo": [
                    {
                        "service": s.service,
                        "age_s": s.age_s,
                        "objective_s": s.objective_s,
                        "state": s.state,
                    }
                    for s in v.rpo
                ],
            }
        )
    return out


def _plan_context(daemon: Daemon, v: PlanView) -> dict[str, Any]:
    return {
        "v": v,
        "runs": daemon.state.runs(v.name, limit=50),
        "jobs": cadence.JOBS,
        "now": time.time(),
    }


def page(daemon: Daemon, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes] | None:
    """(status, content type, body) of a dashboard page, or None for an unknown path."""
    views = daemon.views()
    if path in ("/", "/plans", "/plans/"):
        body = _env.get_template("index.html.j2").render(views=views, now=time.time())
        return 200, HTML, body.encode()
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "plans":
        v = next((v for v in views if v.name == parts[1]), None)
        if v is None:
            return None
        body = _env.get_template("plan.html.j2").render(**_plan_context(daemon, v))
        return 200, HTML, body.encode()
    return None
