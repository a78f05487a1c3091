"""The dashboard's pages, rendered on the server from the workers' views (jinja2).

Plain HTML and inline SVG, no JavaScript and no external resource: it works in any
browser, behind any proxy, and in a crisis on whatever laptop is left. Every value is
autoescaped; the only markup not written by these templates is the SVG of the Gantt
chart and of the risk matrix, made by their own autoescaped templates
(drplan.schedule.gantt, drplan.risks.render), so a hostile name in a plan or a
repository is text everywhere.

Everything is computed from what the daemon already keeps: the plan model, the facts
read back from the repository (`drplan status/runs/drills --json` documents), and its
SQLite records (runs, with the JSON document each job printed). Each section is built on
its own: one that cannot be built says why, and the rest of the page still shows.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from drplan.crisis import cell as crisis_cell
from drplan.crisis.journal import Journal
from drplan.errors import DrplanError
from drplan.plan import model as m
from drplan.risks.matrix import build_matrix
from drplan.risks.render import render_svg as render_risks_svg
from drplan.serve import cadence, rpo
from drplan.serve import state as st
from drplan.serve.charts import (
    drill_gantt,
    drill_record,
    rto_trend,
    svg_fragment,
    timeline,
)
from drplan.serve.formats import duration, parse_time, path_part, redact_url, relative, size, when

if TYPE_CHECKING:
    from drplan.serve.daemon import Daemon, PlanView

log = logging.getLogger("drplan.serve")

HTML = "text/html; charset=utf-8"
RUNS_SHOWN = 50  # the daemon's newest runs on a plan's page
DRILLS_SHOWN = 12  # the newest drills in the history table and the RTO trend
JOURNAL_SHOWN = 200  # the newest entries of the crisis journal
REFRESH_S = 60  # the pages reload themselves (meta refresh: no script)

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("drplan.serve", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(when=when, duration=duration, size=size, path_part=path_part)


# -- sections -------------------------------------------------------------------------


@dataclass
class Section:
    """A section's data, or why it could not be built."""

    data: Any = None
    error: str | None = None


def guarded(what: str, build: Callable[[], Any]) -> Section:
    """Build one section; a failure is shown in its place, not as a broken page (a
    corrupt record or a bug in one chart must not hide the RPO of the others)."""
    try:
        return Section(build())
    except DrplanError as exc:
        return Section(error=f"cannot show the {what}: {exc}")
    except Exception as exc:  # a bug in one section: logged, the page still renders
        log.exception("dashboard: cannot build the %s", what)
        return Section(error=f"cannot show the {what}: internal error ({type(exc).__name__})")


def state_of(v: PlanView) -> tuple[str, str]:
    """(css class, words) of a plan's state."""
    if v.error:
        return "failed", "plan invalid"
    if v.running:
        return "running", " and ".join(r.get("job", "?") for r in v.running) + " running"
    if v.paused:
        return "paused", "paused"
    return "ok", "idle"


def worst_rpo(v: PlanView) -> rpo.ServiceRpo | None:
    """The service nearest to (or furthest past) its RPO; a service never backed up
    first of all."""
    if not v.rpo:
        return None
    missing = [s for s in v.rpo if s.state == rpo.NO_BACKUP]
    if missing:
        return missing[0]
    graded = [s for s in v.rpo if s.ratio is not None]
    return max(graded, key=lambda s: s.ratio or 0.0) if graded else v.rpo[0]


def next_job(v: PlanView) -> tuple[str, float] | None:
    if not v.next:
        return None
    job, t = min(v.next.items(), key=lambda kv: kv[1])
    return job, t


def last_backup(v: PlanView) -> dict[str, Any]:
    """The newest backup: the repository's newest run (the truth) and the daemon's own
    newest backup job (which may have failed since)."""
    status = v.facts.get("status") or {}
    last_run = status.get("last_run") or {}
    run = v.last.get("backup")
    return {
        "repo_at": parse_time(last_run.get("started_at")),
        "repo_complete": last_run.get("complete"),
        "repo_run": last_run.get("run_id"),
        "daemon": run,
    }


def index_rows(views: list[PlanView], now: float) -> list[dict[str, Any]]:
    rows = []
    for v in views:
        css, words = state_of(v)
        drill = (v.facts.get("status") or {}).get("last_drill") or None
        rows.append(
            {
                "v": v,
                "state_css": css,
                "state": words,
                "worst": worst_rpo(v),
                "backup": last_backup(v),
                "next": next_job(v),
                "drill": drill,
            }
        )
    return rows


# -- RPO, next jobs, repository health -----------------------------------------------------

BAR_W = 220  # the RPO bar's width for 100 % of the objective ... up to 150 %


def rpo_rows(v: PlanView) -> list[dict[str, Any]]:
    """Each service's age against its objective, with the bar's geometry (the objective
    at two thirds of the bar, so a breach shows past it)."""
    services = {
        s.get("service"): s for s in (v.facts.get("status") or {}).get("services", []) or []
    }
    rows = []
    for s in v.rpo:
        ratio = s.ratio
        fill = 0.0 if ratio is None else min(ratio, 1.5) / 1.5
        doc = services.get(s.service) or {}
        rows.append(
            {
                "s": s,
                "percent": None if ratio is None else round(ratio * 100),
                "fill_w": round(BAR_W * fill, 1),
                "objective_x": round(BAR_W / 1.5, 1),
                "warning_x": round(BAR_W * 0.8 / 1.5, 1),
                "bar_w": BAR_W,
                "colour": {
                    rpo.OK: "#2e7d32",
                    rpo.AT_RISK: "#ef6c00",
                    rpo.BREACHED: "#c62828",
                }.get(s.state, "#9e9e9e"),
                "run_id": doc.get("run_id"),
                "nodes": doc.get("nodes") or [],
            }
        )
    return rows


def next_rows(v: PlanView, now: float) -> list[dict[str, Any]]:
    rows = []
    for job, t in sorted(v.next.items(), key=lambda kv: kv[1]):
        due = t <= now
        rows.append({"job": job, "at": max(t, now), "due": due, "when": relative(t, now)})
    return rows


def repository_health(v: PlanView) -> dict[str, Any] | None:
    """The status fact's `repository` block (opens, reachable_s, last check), with a URL
    safe to show."""
    status = v.facts.get("status")
    if not status:
        return None
    repo = status.get("repository") or {}
    return {
        "name": repo.get("repository"),
        "url": redact_url(repo.get("url")),
        "opens": repo.get("opens"),
        "reachable_s": repo.get("reachable_s"),
        "last_check": parse_time(repo.get("last_check")),
        "last_check_ok": repo.get("last_check_ok"),
        "error": repo.get("error"),
        "needs_drill": status.get("needs_drill"),
        "needs_drill_reason": status.get("needs_drill_reason"),
    }


def newest_drill_run(daemon: Daemon, name: str) -> st.Run | None:
    """The daemon's newest drill job that left a document (a running one has none yet)."""
    run = daemon.state.last(name, "drill")
    if run is not None and run.details:
        return run
    return daemon.state.last(name, "drill", st.OK)


DRILL_KEYS = (
    "drill_id",
    "started_at",
    "profile",
    "passed",
    "failure",
    "rto_s",
    "rto_objective_s",
    "rto_verdict",
    "rpo_s",
    "rpo_objective_s",
    "rpo_verdict",
)


def drill_row(doc: Any) -> dict[str, Any]:
    """A row of the drill history with every key the page reads (a document from an
    older drplan may lack some)."""
    doc = doc if isinstance(doc, dict) else {}
    return {key: doc.get(key) for key in DRILL_KEYS}


def drills_section(v: PlanView, drill_run: st.Run | None) -> dict[str, Any]:
    """The newest drill (from the repository's history), its Gantt chart (from the
    record the daemon kept of the drill it ran) and the RTO trend."""
    history = [drill_row(d) for d in (v.facts.get("drills") or {}).get("drills") or []]
    newest = history[-1] if history else None
    record = None
    if drill_run is not None and drill_run.details:
        try:
            record = drill_record(json.loads(drill_run.details))
        except ValueError:
            record = None
    # the repository's newest record, whoever ran it (`drplan drills --json` "newest")
    stored = drill_record((v.facts.get("drills") or {}).get("newest"))
    if stored is not None and (
        record is None or (newest is not None and stored.drill_id == newest.get("drill_id"))
    ):
        record = stored
    if newest is None and record is not None:
        newest = {
            "drill_id": record.drill_id,
            "started_at": record.started_at,
            "profile": record.profile,
            "passed": record.passed,
            "failure": record.failure,
            "rto_s": record.rto.measured_s,
            "rto_objective_s": record.rto.objective_s,
            "rto_verdict": record.rto.verdict,
            "rpo_s": record.rpo.measured_s,
            "rpo_objective_s": record.rpo.objective_s,
            "rpo_verdict": record.rpo.verdict,
        }
    gantt_note = None
    gantt = None
    if record is not None:
        gantt = drill_gantt(record, v.plan, v.name)
        if newest is not None and record.drill_id != newest.get("drill_id"):
            gantt_note = (
                f"The chart is of drill {record.drill_id}, the newest this daemon ran; "
                f"drill {newest.get('drill_id')} was run elsewhere."
            )
    elif newest is not None:
        gantt_note = (
            "No Gantt chart: the newest drill's record could not be read back with its steps."
        )
    return {
        "newest": newest,
        "record": record,
        "gantt": gantt,
        "gantt_note": gantt_note,
        "history": list(reversed(history[-DRILLS_SHOWN:])),
        "trend": rto_trend(history[-DRILLS_SHOWN:]),
        "direction": ((v.facts.get("drills") or {}).get("trend") or {})
        .get("rto", {})
        .get("direction"),
    }


# -- risks and the crisis journal (the plan and a local file: no engine) ---------------


def risks_section(plan: m.Plan | None) -> Markup | None:
    if plan is None or not plan.risks:
        return None
    return svg_fragment(render_risks_svg(build_matrix(plan), f"Risks of {plan.stack.name}"))


def crisis_section(plan: m.Plan | None, plan_path: Path) -> dict[str, Any]:
    """The crisis journal, read-only: its crises, the chain's verification, the newest
    entries (as `drplan crisis export` reads it: the journal file next to the plan)."""
    if plan is None:
        return {"state": "no_plan"}
    if plan.crisis_cell is None:
        return {"state": "no_cell"}
    ctx = crisis_cell.open_context(plan, plan_path)
    journal = ctx.journal
    location = journal.store.location
    if not journal.store.exists():
        return {"state": "empty", "location": location}
    entries = journal.entries()
    verification = journal.verify()
    crises = Journal.crises(entries)
    people = journal.cell.people
    shown = []
    for e in entries[-JOURNAL_SHOWN:]:
        person = people.get(e.get("author"))
        shown.append(
            {
                "seq": e.get("seq"),
                "ts": e.get("ts"),
                "kind": e.get("kind"),
                "decision": e.get("decision"),
                "role": e.get("role"),
                "author": e.get("author"),
                "name": person.name if person else None,
                "text": e.get("text", ""),
            }
        )
    current = crises[-1] if crises and crises[-1].closed is None else None
    return {
        "state": "journal",
        "location": location,
        "count": len(entries),
        "crises": len(crises),
        "open": current.opened if current else None,
        "ok": verification.ok,
        "broken": str(verification.broken) if verification.broken else None,
        "head": verification.head,
        "notes": verification.notes,
        "entries": list(reversed(shown)),
        "truncated": len(entries) > JOURNAL_SHOWN,
    }


# -- pages ----------------------------------------------------------------------------


def login_page() -> str:
    return _env.get_template("login.html.j2").render(refresh=None)


def render_index(views: list[PlanView], now: float) -> str:
    return _env.get_template("index.html.j2").render(
        rows=index_rows(views, now), now=now, refresh=REFRESH_S, relative=relative
    )


def plan_context(
    v: PlanView, runs: list[st.Run], drill_run: st.Run | None, now: float
) -> dict[str, Any]:
    """Everything the plan page shows (pure: the view, the daemon's runs, the clock)."""
    css, words = state_of(v)
    repo_runs = (v.facts.get("runs") or {}).get("runs") or []
    has_copies = bool(v.plan) and any(r.role == "copy" for r in v.plan.repositories.values())
    return {
        "v": v,
        "now": now,
        "refresh": REFRESH_S,
        "relative": relative,
        "state_css": css,
        "state": words,
        "runs": runs,
        "repo_runs": list(reversed(repo_runs))[:RUNS_SHOWN],
        "jobs": [j for j in cadence.JOBS if j != "copy" or has_copies] if v.plan else [],
        "timeline": guarded("runs timeline", lambda: timeline(runs, repo_runs, now)),
        "rpo": guarded("RPO", lambda: rpo_rows(v)),
        "next": next_rows(v, now),
        "health": guarded("repository health", lambda: repository_health(v)),
        "drills": guarded("drills", lambda: drills_section(v, drill_run)),
        "risks": guarded("risk matrix", lambda: risks_section(v.plan)),
        "crisis": guarded("crisis journal", lambda: crisis_section(v.plan, v.path)),
    }


def render_plan(v: PlanView, runs: list[st.Run], drill_run: st.Run | None, now: float) -> str:
    return _env.get_template("plan.html.j2").render(**plan_context(v, runs, drill_run, now))


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
                "running": v.running,
                "next": v.next,
                "facts_at": v.facts_at,
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


def page(daemon: Daemon, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes] | None:
    """(status, content type, body) of a dashboard page, or None for an unknown path."""
    views = daemon.views()
    now = time.time()
    if path in ("/", "/plans", "/plans/"):
        return 200, HTML, render_index(views, now).encode()
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "plans":
        v = next((v for v in views if v.name == parts[1]), None)
        if v is None:
            return None
        runs = daemon.state.runs(v.name, limit=RUNS_SHOWN)
        body = render_plan(v, runs, newest_drill_run(daemon, v.name), now)
        return 200, HTML, body.encode()
    return None
