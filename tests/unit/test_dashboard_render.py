"""The dashboard of `drplan serve` (drplan.serve.dashboard), rendered from hand-built
views: what each section shows, that every name is text (autoescaped, also inside the
inline SVG), the empty states a new daemon meets, and the action forms' access (the real
HTTP handler on a loopback port: refused without the token, accepted with the login
cookie the form flow uses)."""

from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from drplan.actions.context import load_plan
from drplan.crisis import cell
from drplan.crisis.activation import Observations
from drplan.schedule.dag import build_schedule
from drplan.serve import charts, dashboard, formats, rpo
from drplan.serve import state as st
from drplan.serve.daemon import Daemon, PlanView, Settings
from drplan.serve.http import Access, Server
from tests.unit.crisis_helpers import crisis_context, crisis_plan
from tests.unit.plan_helpers import PLAN, write_stack

NOW = 1_800_000_000.0
HOSTILE = '<script>alert("x")</script>'
FILE_HOSTILE = '"><img src=x onerror="alert(1)">'  # a file name: no slash


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def status_doc(ages: dict[str, float | None], objective: float = 3600.0) -> dict[str, Any]:
    services = []
    for name, age in ages.items():
        services.append(
            {
                "service": name,
                "run_id": None if age is None else "20270115T080000Z-ab12",
                "recovery_point": None if age is None else iso(NOW - age),
                "age_s": age,
                "rpo_objective_s": objective,
                "nodes": ["node-1"] if age is not None else [],
            }
        )
    return {
        "plan": "campus",
        "services": services,
        "last_run": {
            "run_id": "20270115T080000Z-ab12",
            "complete": True,
            "started_at": iso(NOW - 600),
        },
        "last_drill": None,
        "needs_drill": True,
        "needs_drill_reason": "no drill has passed yet",
        "repository": {
            "repository": "main",
            "url": "rest:https://backup:hunter2@vault.example:8000/campus",
            "opens": True,
            "reachable_s": 0.42,
            "last_check": iso(NOW - 7200),
            "last_check_ok": True,
        },
    }


def runs_doc(*runs: tuple[str, float, bool]) -> dict[str, Any]:
    return {
        "plan": "campus",
        "repository": "/srv/restic/campus",
        "runs": [
            {
                "run_id": run_id,
                "started_at": iso(NOW - age),
                "finished_at": iso(NOW - age + 30),
                "complete": complete,
                "bytes": 123456789,
                "sources": 4,
                "age_s": age,
                "rpo_objective_s": 3600,
                "within_rpo": age <= 3600,
                "errors": [],
            }
            for run_id, age, complete in runs
        ],
    }


def view(plan_path: Path | None = None, **kw: Any) -> PlanView:
    """A plan's view as the daemon copies it, from a plan file (or none: invalid)."""
    plan = load_plan(plan_path).plan if plan_path is not None else None
    facts = kw.pop("facts", {})
    base: dict[str, Any] = {
        "name": plan.stack.name if plan else "broken",
        "path": plan_path or Path("/plans/broken.yml"),
        "plan": plan,
        "error": None,
        "paused": False,
        "next": {},
        "facts": facts,
        "facts_at": NOW - 30 if facts else None,
        "last": {},
    }
    base.update(kw)
    v = PlanView(**base)
    v.rpo = rpo.watch(facts.get("status"), NOW)
    return v


def run(job: str, status: str, started: float, seconds: float | None = 20, **kw: Any) -> st.Run:
    fields: dict[str, Any] = {
        "id": int(started),
        "plan": "campus",
        "job": job,
        "trigger": "schedule",
        "attempt": 1,
        "started_at": started,
        "ended_at": None if seconds is None else started + seconds,
        "status": status,
        "exit_code": 0 if status == st.OK else 1,
        "pid": None,
        "daemon_pid": None,
        "ref": None,
        "bytes": None,
        "message": None,
        "details": None,
    }
    fields.update(kw)
    return st.Run(**fields)


def drill_doc(plan_path: Path, drill_id: str = "d1", **kw: Any) -> dict[str, Any]:
    """A `drplan drill --json` document for this plan: every step of its schedule 2 s."""
    schedule = build_schedule(load_plan(plan_path).plan)
    doc: dict[str, Any] = {
        "drill_id": drill_id,
        "plan": "campus",
        "stack": f"drill-{drill_id}-campus",
        "site": "b",
        "run_id": "20270115T080000Z-ab12",
        "started_at": iso(NOW - 900),
        "finished_at": iso(NOW - 800),
        "seconds": 100.0,
        "passed": True,
        "rto": {"measured_s": 40.0, "objective_s": 60.0, "verdict": "met"},
        "rpo": {"recovery_point": iso(NOW - 1000), "measured_s": 100.0, "objective_s": 86400},
        "steps": {sid: {"status": "ok", "seconds": 2.0} for sid in schedule.steps},
        "critical_path": {"estimated": schedule.critical_path, "actual": schedule.critical_path},
        "teardown": {"clean": True},
        "reports": {"gantt": "/somewhere/gantt.svg"},
    }
    doc.update(kw)
    return doc


def text_of(html: str, element_id: str) -> str:
    """The text of the element with this id (tags dropped), for assertions on content."""
    start = html.index(f'id="{element_id}"')
    end = html.index("</table>", start) if "<table" in html[start - 80 : start] else None
    chunk = html[start:end] if end else html[start : start + 4000]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", chunk))


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    return write_stack(tmp_path)


# -- what the pages show -----------------------------------------------------------------


def test_plan_page_shows_runs_rpo_next_health_and_drill(plan_path: Path):
    facts = {
        "status": status_doc({"db": 600, "redis": 3000, "web": 5000, "exam": None}),
        "runs": runs_doc(
            ("20270115T070000Z-aa11", 4200, True), ("20270115T080000Z-ab12", 600, True)
        ),
        "drills": {
            "drills": [
                {
                    "drill_id": "d0",
                    "started_at": iso(NOW - 90000),
                    "passed": False,
                    "rto_s": 70.0,
                    "rto_objective_s": 60.0,
                    "failure": "health:web timed out",
                },
                {
                    "drill_id": "d1",
                    "started_at": iso(NOW - 900),
                    "passed": True,
                    "rto_s": 40.0,
                    "rto_objective_s": 60.0,
                    "rto_verdict": "met",
                },
            ],
            "trend": {"rto": {"direction": "better"}},
        },
    }
    v = view(plan_path, facts=facts, next={"backup": NOW + 1800, "check": NOW - 5})
    runs = [
        run("drill", st.OK, NOW - 900, 100, ref="d1", details=json.dumps(drill_doc(plan_path))),
        run("backup", st.FAILED, NOW - 1200, 5, message="repository unreachable"),
        run("backup", st.OK, NOW - 630, 30, ref="20270115T080000Z-ab12", bytes=2048),
    ]
    html = dashboard.render_plan(v, runs, runs[0], NOW)

    # the runs: timeline with a bar per job and per repository run, and both tables
    assert html.count('class="bar lane-repository status-complete"') == 2
    assert 'class="bar lane-backup status-failed"' in html
    assert 'class="bar lane-drill status-ok"' in html
    jobs = text_of(html, "runs")
    assert "backup schedule failed" in jobs and "repository unreachable" in jobs
    assert "20270115T080000Z-ab12" in text_of(html, "repo-runs")
    # RPO: every service, its state, the no-backup one named as such
    rpo_text = text_of(html, "rpo")
    for service, state in (
        ("db", "ok"),
        ("redis", "at risk"),
        ("web", "breached"),
        ("exam", "no backup"),
    ):
        assert re.search(rf"{service} .*?{state}", rpo_text), (service, state, rpo_text)
    assert "139%" in rpo_text  # 5000 s against 3600 s
    # next: due now first, then in 30 min
    nxt = text_of(html, "next")
    assert nxt.index("check") < nxt.index("backup") and "due now" in nxt and "in 30min" in nxt
    # repository health, the URL's password never shown
    health = text_of(html, "repository")
    assert "yes" in health and "passed" in health and "backup:***@vault.example:8000" in health
    assert "hunter2" not in html
    # the newest drill, its Gantt chart (the plan's steps), the RTO trend
    assert "d1" in text_of(html, "drill") and "passed" in text_of(html, "drill")
    assert 'id="gantt"' in html and "restore:db/pg" in html and "<?xml" not in html
    assert "critical-path" in html
    assert 'id="rto-trend"' in html and html.count("<circle") == 2
    assert "getting <b>better</b>" in html


def test_index_lists_every_plan_with_its_worst_rpo_last_backup_and_next(plan_path: Path):
    facts = {"status": status_doc({"db": 600, "web": 5000})}
    backup = run("backup", st.OK, NOW - 630, 30)
    v = view(
        plan_path,
        facts=facts,
        next={"drill": NOW + 86400, "backup": NOW + 1800},
        last={"backup": backup},
        paused=True,
    )
    html = dashboard.render_index([v], NOW)
    row = text_of(html, "plans")
    assert "campus" in row and "paused" in row
    assert "web: 83min / 60min" in row  # the worst service, breached
    assert "complete" in row and "backup in 30min" in row
    assert 'href="/plans/campus"' in html


def test_action_forms_post_to_the_actions_and_never_carry_the_token(plan_path: Path):
    html = dashboard.render_plan(view(plan_path), [], None, NOW)
    forms = re.findall(r'<form method="post" action="([^"]+)">', html)
    assert "/plans/campus/run/backup" in forms and "/plans/campus/pause" in forms
    assert "/plans/campus/run/copy" in forms  # the plan has a copy repository
    paused = dashboard.render_plan(view(plan_path, paused=True), [], None, NOW)
    assert 'action="/plans/campus/resume"' in paused and 'id="paused"' in paused
    assert "token" not in "".join(re.findall(r"<form.*?</form>", html, re.S)).lower()


# -- empty states ----------------------------------------------------------------------------


def test_a_new_daemon_before_any_run_or_read(plan_path: Path):
    html = dashboard.render_plan(view(plan_path), [], None, NOW)
    assert 'id="no-runs"' in html
    assert "has not run a job of this plan yet" in html
    assert html.count("The repository has not been read yet.") >= 3  # runs, RPO, health
    assert 'id="no-drill"' in html and "drills.every" in html
    assert "The plan's risk register is empty" in html
    assert "no <code>crisis_cell</code>" in html.replace("has no", "no")
    assert 'id="timeline"' not in html and 'id="gantt"' not in html
    index = dashboard.render_index([view(plan_path)], NOW)
    assert "not read yet" in index and "none in the repository" in index
    assert "No plan is served." in dashboard.render_index([], NOW)


def test_a_drill_run_elsewhere_has_its_gantt_from_the_repositorys_record(plan_path: Path):
    row = {"drill_id": "hand", "started_at": iso(NOW), "passed": True, "rto_s": 30.0}
    # `drplan drills --json` of this drplan: the newest record whole, with its steps
    facts = {"drills": {"drills": [row], "newest": drill_doc(plan_path, "hand")}}
    html = dashboard.render_plan(view(plan_path, facts=facts), [], None, NOW)
    assert "hand" in text_of(html, "drill")
    assert 'id="gantt"' in html and "Drill hand of" in html
    # an older drplan's document has no record: no chart, and the page says why
    facts = {"drills": {"drills": [row]}}
    html = dashboard.render_plan(view(plan_path, facts=facts), [], None, NOW)
    assert 'id="gantt"' not in html and "could not be read back with its steps" in html
    assert "A trend needs two drills" in html


def test_a_drill_that_failed_before_its_record_is_not_a_chart(plan_path: Path):
    broken = run("drill", st.FAILED, NOW - 60, 10, details=json.dumps({"error": "no engine"}))
    html = dashboard.render_plan(view(plan_path), [broken], broken, NOW)
    assert 'id="gantt"' not in html and 'id="no-drill"' in html


def test_an_invalid_plan_still_has_a_page(tmp_path: Path):
    # an invalid plan's view is named after its file, whatever the file is called
    path = tmp_path / f"{FILE_HOSTILE}.yml"
    v = view(None, name=path.stem, path=path, error=f"{path}:3:1: stack: {HOSTILE}")
    html = dashboard.render_plan(v, [], None, NOW)
    assert 'id="plan-error"' in html and "plan invalid" in html
    assert "No valid plan." in html and "Nothing scheduled (no valid plan)" in html
    assert "<script>" not in html and "<img" not in html
    index = dashboard.render_index([v], NOW)
    assert "<script>" not in index and "<img" not in index and "plan invalid" in index
    # the name is one URL path segment, quoted
    assert 'href="/plans/%22%3E%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E"' in index
    assert 'action="/plans/%22%3E%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E/pause"' in html


# -- every name is text ------------------------------------------------------------------------


def test_hostile_names_are_escaped_everywhere(tmp_path: Path):
    plan_text = PLAN + (
        "risks:\n"
        f"  - {{id: fire, event: '{HOSTILE}', probability: low, impact: high,"
        " triggers_plan: true}\n"
    )
    path = write_stack(tmp_path, plan_text)
    status = status_doc({"db": 10})
    status["services"][0]["service"] = HOSTILE
    status["repository"]["error"] = HOSTILE
    status["repository"]["url"] = f"/srv/{HOSTILE}"
    drills = {
        "drills": [
            {
                "drill_id": HOSTILE,
                "started_at": HOSTILE,
                "passed": False,
                "failure": HOSTILE,
                "rto_s": 1.0,
            }
        ]
    }
    facts = {"status": status, "runs": runs_doc((HOSTILE, 10, False)), "drills": drills}
    doc = drill_doc(path, failure=HOSTILE)
    doc["steps"][HOSTILE] = {"status": HOSTILE, "seconds": 1.0, "error": HOSTILE}
    hostile_run = run(
        "drill",
        st.FAILED,
        NOW - 100,
        10,
        message=HOSTILE,
        ref=HOSTILE,
        trigger=HOSTILE,
        details=json.dumps(doc),
    )
    v = view(
        path,
        facts=facts,
        running=[{"job": HOSTILE, "started_at": NOW - 5}],
        next={HOSTILE: NOW + 5},
    )
    html = dashboard.render_plan(v, [hostile_run], hostile_run, NOW)
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 10
    assert 'id="gantt"' in html and 'id="risks"' in html  # the SVGs are there, escaped
    index = dashboard.render_index([v], NOW)
    assert "<script>" not in index


def test_redact_url_hides_only_the_password():
    assert formats.redact_url("rest:https://u:secret@h:8000/r") == "rest:https://u:***@h:8000/r"
    assert (
        formats.redact_url("s3:https://user:pw@s3.example/b") == "s3:https://user:***@s3.example/b"
    )
    assert formats.redact_url("sftp:backup@vault:/drplan") == "sftp:backup@vault:/drplan"
    assert formats.redact_url("/srv/restic/campus") == "/srv/restic/campus"
    assert formats.redact_url(None) == "—"


# -- risks and the crisis journal ---------------------------------------------------------


def test_risk_matrix_and_crisis_journal_read_only(tmp_path: Path, clock):
    path = crisis_plan(tmp_path)
    ctx = crisis_context(str(path), clock=clock)
    cell.open_crisis(
        ctx,
        role="direction",
        author="boss",
        reason=f"DC fire {HOSTILE}",
        observations=Observations(down=[], run_commands=False),
    )
    cell.log(ctx, role="technical_coordination", author="tech", text="restoring on site b")
    journal = ctx.journal.store.location
    before = Path(journal).read_bytes()
    html = dashboard.render_plan(view(path), [], None, NOW)
    assert 'id="risks"' in html and "Datacenter fire" in html
    entries = text_of(html, "journal")
    assert "restoring on site b" in entries and "Tech lead (tech)" in entries
    assert "A crisis is open" in html and "intact" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert Path(journal).read_bytes() == before  # read-only
    # a tampered journal is shown as such, not hidden
    Path(journal).write_bytes(before.replace(b"restoring on site b", b"all fine, go home"))
    tampered = dashboard.render_plan(view(path), [], None, NOW)
    assert "BROKEN at" in tampered


def test_a_section_that_fails_does_not_take_the_page_down(plan_path, monkeypatch):
    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(dashboard, "risks_section", boom)
    facts = {"status": status_doc({"db": 10})}
    html = dashboard.render_plan(view(plan_path, facts=facts), [], None, NOW)
    assert "cannot show the risk matrix: internal error (RuntimeError)" in html
    assert "db" in text_of(html, "rpo")


# -- charts' geometry ---------------------------------------------------------------------------


def test_timeline_puts_every_run_in_its_lane_inside_the_chart():
    runs = [run("backup", st.OK, NOW - 7200, 60), run("check", st.RUNNING, NOW - 30, None)]
    tl = charts.timeline(runs, runs_doc(("r1", 7100, True))["runs"], NOW)
    assert tl is not None
    lanes = {lane["name"]: lane["y"] for lane in tl.lanes}
    for bar in tl.bars:
        assert tl.left <= bar["x"] and bar["x"] + bar["w"] <= tl.right + 4
        assert lanes[bar["lane"]] < bar["y"] < lanes[bar["lane"]] + charts.TL_ROW
    running = next(b for b in tl.bars if b["status"] == st.RUNNING)
    assert abs(running["x"] + running["w"] - tl.now_x) < 5  # a running job reaches "now"
    assert 3 <= len(tl.ticks) <= 11
    assert charts.timeline([], [], NOW) is None


def test_rpo_bar_is_capped_and_marks_the_objective():
    v = view(None, facts={"status": status_doc({"a": 900, "b": 36000, "c": None})})
    rows = {r["s"].service: r for r in dashboard.rpo_rows(v)}
    assert rows["a"]["fill_w"] < rows["a"]["objective_x"]
    assert rows["b"]["fill_w"] == rows["b"]["bar_w"] and rows["b"]["percent"] == 1000
    assert rows["c"]["fill_w"] == 0 and rows["c"]["percent"] is None


def test_rto_trend_needs_two_measured_drills():
    one = [{"drill_id": "a", "rto_s": 10.0}]
    assert charts.rto_trend(one) is None
    three = [
        *one,
        {"drill_id": "b", "rto_s": None},
        {"drill_id": "c", "rto_s": 30.0, "rto_objective_s": 60.0},
    ]
    trend = charts.rto_trend(three)
    assert trend is not None and len(trend.points) == 2
    assert trend.points[0]["y"] > trend.points[1]["y"]  # a longer RTO is higher
    assert trend.objective_y is not None and trend.objective_y < trend.points[1]["y"]


def test_drill_gantt_uses_the_measured_steps_and_critical_path(plan_path: Path):
    from drplan.store.records import DrillRecord

    record = DrillRecord.model_validate(drill_doc(plan_path))
    plan = load_plan(plan_path).plan
    schedule = charts.drill_schedule(record, plan)
    assert set(schedule.steps) == set(record.steps)
    assert all(step.estimate_s == 2.0 for step in schedule.steps.values())
    assert schedule.critical_path == record.critical_path["actual"]
    assert schedule.estimated_rto_s >= 40.0
    # an objective far beyond the drill's end is named, not drawn
    far = DrillRecord.model_validate(
        drill_doc(plan_path, rto={"measured_s": 5.0, "objective_s": 86400.0})
    )
    svg = charts.drill_gantt(far, plan, "campus")
    assert svg is not None and "off the chart" in svg and 'id="objective"' not in svg
    near = charts.drill_gantt(record, plan, "campus")
    assert near is not None and 'id="objective"' in near


def test_drill_gantt_draws_the_steps_when_they_started(plan_path: Path):
    from drplan.store.records import DrillRecord

    doc = drill_doc(plan_path)
    # every step started 3 s after the previous one, whatever the dependencies say
    for i, sid in enumerate(sorted(doc["steps"])):
        doc["steps"][sid]["started_at"] = iso(NOW - 900 + 3 * i)
    record = DrillRecord.model_validate(doc)
    schedule = charts.drill_schedule(record, load_plan(plan_path).plan)
    for i, sid in enumerate(sorted(doc["steps"])):
        assert schedule.start_s[sid] == pytest.approx(3 * i)
        assert schedule.finish_s[sid] == pytest.approx(3 * i + 2.0)
    assert schedule.estimated_rto_s == pytest.approx(max(40.0, 3 * (len(doc["steps"]) - 1) + 2))
    # one step without its start: laid out on the dependencies, as before
    doc["steps"][sorted(doc["steps"])[0]].pop("started_at")
    laid = charts.drill_schedule(DrillRecord.model_validate(doc), load_plan(plan_path).plan)
    assert min(laid.start_s.values()) == 0.0 and laid.start_s != schedule.start_s


# -- the pages through the real HTTP handler (no job runs: the workers are not started) ------


def request(
    port: int, method: str, path: str, headers: dict | None = None, body: str = ""
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    conn.request(method, path, body=body.encode(), headers=hdrs)
    resp = conn.getresponse()
    resp.read()
    return resp


@pytest.fixture
def served(plan_path: Path, tmp_path: Path):
    daemon = Daemon(
        [plan_path],
        st.State(tmp_path / "state" / "serve.sqlite"),
        Settings(report_dir=tmp_path / "reports"),
    )
    server = Server(daemon, "127.0.0.1", 0, Access("s3cret-token", None, True))
    server.start()
    yield daemon, server.address[1]
    server.stop()


def test_pages_and_the_form_flow_over_http(served):
    daemon, port = served
    # reading with a token set needs it: a browser is sent to the login form
    assert request(port, "GET", "/plans/campus").status == 303
    bearer = {"Authorization": "Bearer s3cret-token"}
    page = request(port, "GET", "/plans/campus", bearer)
    assert page.status == 200 and page.getheader("Content-Type").startswith("text/html")
    # an action without the token, or with a wrong one, is refused
    assert request(port, "POST", "/plans/campus/pause").status == 403
    assert (
        request(port, "POST", "/plans/campus/pause", {"Cookie": "drplan_token=guess"}).status == 403
    )
    assert daemon.state.paused("campus") is None
    # the browser's way: sign in (HttpOnly cookie), then the page's form posts with it
    login = request(port, "POST", "/login", body="token=s3cret-token")
    cookie = login.getheader("Set-Cookie")
    assert login.status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    done = request(port, "POST", "/plans/campus/pause", jar)
    assert done.status == 303 and done.getheader("Location") == "/plans/campus"
    assert daemon.state.paused("campus") is not None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/plans/campus", headers=jar)
    html = conn.getresponse().read().decode()
    assert 'id="paused"' in html and 'action="/plans/campus/resume"' in html
    assert "s3cret-token" not in html
    assert request(port, "GET", "/plans/nope", bearer).status == 404
