"""The dashboard of `drplan serve` in a real browser (issue 16's acceptance): the campus
stack deployed and backed up with `drplan backup`, the real daemon running its own
prune, check and drill, then its pages loaded in headless Chromium (Debian's): they
render, show the stack's runs and every service's RPO, the drill's Gantt chart, the risk
matrix and the crisis journal; a screenshot is kept as a test artefact. A backup asked
for while the drill runs runs beside it (the drill has a lane of its own). An action without
the token is refused; with it (Authorization: Bearer, or the login form's cookie) it is
accepted and its effect (paused) is on the page.

Chromium cannot send a header or a cookie from its command line, so pages are read from
the daemon started again without a token on 127.0.0.1, on the same state file: reading
on localhost needs nothing, by design, and acting still needs the token (the test shows
that daemon refusing an action too). The daemon with the token is driven with urllib.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from drplan.render.png import png_stats
from testbed import plans
from testbed.serve import Serve, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-" + os.urandom(8).hex()
WINDOW = (1400, 2000)
FULL = (1400, 4200)  # tall enough for the whole plan page of the campus stack
SERVICES = ("db", "redis", "web", "exam")

PLAN_EXTRA = {
    "backup": {"schedule": {"every": "1h"}, "retention": {"keep_last": 3}},
    "objectives": {"rto": "15m", "rpo": "1h"},
    # the daemon drills at once after the first backup, then monthly
    "drills": {"every": "30d", "site": "recovery"},
    "risks": [
        {
            "id": "dc-fire",
            "event": "Datacenter fire",
            "probability": "low",
            "impact": "very_high",
            "triggers_plan": True,
        },
        {
            "id": "ransomware",
            "event": "Ransomware on the campus network",
            "probability": "medium",
            "impact": "high",
            "triggers_plan": True,
        },
    ],
    "crisis_cell": {
        "people": {
            "boss": {"name": "Head of IT"},
            "tech": {"name": "Tech lead"},
            "comms": {"name": "Comms officer"},
            "desk": {"name": "Help desk"},
        },
        "roles": {
            "direction": ["boss"],
            "technical_coordination": ["tech"],
            "communication": ["comms"],
            "user_support": ["desk"],
        },
        "activation": [{"kind": "service_down", "services": ["web"], "duration": "15m"}],
    },
}


def facts_read(serve: Serve, name: str, headers: dict | None = None) -> dict | None:
    """The plan's entry once the daemon has read the repository (every service graded)."""
    p = serve.plan(name, headers)
    graded = [s for s in p["rpo"] if s["age_s"] is not None]
    return p if p.get("facts_at") and len(graded) == len(SERVICES) else None


def job_done(serve: Serve, name: str, job: str, headers: dict) -> dict | None:
    """The daemon's newest `job` once it ended; a failure stops the test with the log."""
    run = serve.plan(name, headers)["last"].get(job)
    if run is None or run["status"] == "running":
        return None
    assert run["status"] == "ok", f"the daemon's {job} ended {run['status']}:\n{serve.text()}"
    return run


def chromium(
    args: list[str], profile: Path, timeout: float = 90, window: tuple[int, int] = WINDOW
) -> subprocess.CompletedProcess:
    """Debian's Chromium, headless, with a private profile (root in a container: no
    sandbox)."""
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def dom(url: str, profile: Path) -> str:
    return chromium(["--dump-dom", url], profile).stdout


def text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment)))


def element(page: str, element_id: str, end: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start : page.index(end, start)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def campus(testbed, tmp_path_factory):
    """The campus stack, deployed and backed up once with `drplan backup`."""
    name = f"dash{os.urandom(3).hex()}"
    base = tmp_path_factory.mktemp("serve-dashboard")
    tp = plans.adapt("campus", base / "campus", name=name, edit=lambda p: p.update(PLAN_EXTRA))
    plans.deploy(testbed["primary"], tp)
    try:
        plans.ok("repo", "init", tp.path)
        backup = plans.ok_json("backup", tp.path)
        yield tp, backup["run_id"]
    finally:
        plans.remove(testbed["primary"], tp)


@pytest.fixture
def artefacts(tmp_path) -> Path:
    folder = Path(os.environ.get("DRPLAN_TEST_ARTEFACTS") or tmp_path) / "serve-dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def daemons():
    started: list[Serve] = []
    yield started
    for d in started:
        d.stop()


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")
def test_dashboard_in_chromium(campus, tmp_path, artefacts, daemons, record_property):
    tp, run_id = campus
    name = tp.name
    plans.ok(
        "crisis",
        "open",
        tp.path,
        "--role",
        "direction",
        "--author",
        "boss",
        "--reason",
        "Datacenter fire drill <b>exercise</b>",
        "--no-commands",
    )
    state_dir = tmp_path / "state"
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    # -- the daemon with a token: it reads the repository, prunes, checks and drills ----
    armed = Serve([tp.path], state_dir, token=TOKEN, refresh=30)
    daemons.append(armed)
    wait_for("the daemon to read the repository", lambda: facts_read(armed, name, bearer), 90)
    assert armed.call("GET", "/api/plans")[0] == 401  # reading needs the token too
    # an action without the token, or with a wrong one, is refused and changes nothing
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "drplan_token=wrong"}):
        status, body, _ = armed.call("POST", f"/plans/{name}/pause", headers)
        assert status == 403, (headers, status, body)
    assert armed.plan(name, bearer)["paused"] is False
    # a drill runs in a lane of its own: a backup asked for meanwhile runs beside it
    wait_for(
        "the daemon's drill to start",
        lambda: any(r["job"] == "drill" for r in armed.plan(name, bearer)["running"]),
        240,
    )
    status, _, _ = armed.call("POST", f"/plans/{name}/run/backup", bearer)
    assert status == 303
    wait_for("the daemon's drill", lambda: job_done(armed, name, "drill", bearer), 240)
    wait_for("the backup asked for", lambda: job_done(armed, name, "backup", bearer), 240)
    runs = {r["job"]: r for r in armed.runs(name)}
    drill, beside = runs["drill"], runs["backup"]
    assert beside["started_at"] < drill["ended_at"], (drill, beside)  # it did not wait
    newest = beside["ref"]  # the newest complete run: the RPO is measured from it
    assert newest and newest != run_id, beside
    for job in ("prune", "check"):
        assert job_done(armed, name, job, bearer), job
    # with the token: the API's way (Bearer), then the browser's (the login cookie)
    status, _, headers = armed.call("POST", f"/plans/{name}/pause", bearer)
    assert status == 303 and headers["Location"] == f"/plans/{name}"
    assert armed.plan(name, bearer)["paused"] is True
    status, _, headers = armed.call("POST", f"/plans/{name}/resume", bearer)
    assert status == 303 and armed.plan(name, bearer)["paused"] is False
    status, _, headers = armed.call("POST", "/login", body=f"token={TOKEN}")
    cookie = headers["Set-Cookie"]
    assert status == 303 and "HttpOnly" in cookie
    status, _, _ = armed.call("POST", f"/plans/{name}/pause", {"Cookie": cookie.split(";")[0]})
    assert status == 303 and armed.plan(name, bearer)["paused"] is True
    assert armed.stop() == 0, armed.text()
    assert TOKEN not in armed.text()

    # -- the same state, served for reading on localhost without a token ----------------
    reader = Serve([tp.path], state_dir, refresh=30)
    daemons.append(reader)
    wait_for("the reading daemon to read the repository", lambda: facts_read(reader, name), 90)
    status, _, _ = reader.call("POST", f"/plans/{name}/resume")
    assert status == 403  # no token configured: no action from anyone

    profile = tmp_path / "chromium"
    index = dom(f"{reader.url}/", profile)
    row = text(element(index, "plans", "</table>"))
    assert name in row and "paused" in row and "complete" in row, row

    page = dom(f"{reader.url}/plans/{name}", profile)
    assert f"Plan {name}" in page
    # the runs: the repository's (the backup run by hand, complete) ...
    repo_runs = text(element(page, "repo-runs", "</table>"))
    assert run_id in repo_runs and "complete" in repo_runs, repo_runs
    # ... and the daemon's jobs, each ok, on the timeline and in the table
    jobs = text(element(page, "runs", "</table>"))
    for job in ("prune", "check", "drill"):
        assert re.search(rf"\b{job} schedule ok\b", jobs), (job, jobs)
    timeline = element(page, "timeline", "</svg>")
    assert 'class="bar lane-repository status-complete"' in timeline
    assert 'class="bar lane-drill status-ok"' in timeline
    # every service's RPO: the newest run (the daemon's backup), a small age, 1 h, ok
    rpo = text(element(page, "rpo", "</table>"))
    for service in SERVICES:
        assert re.search(rf"\b{service} {re.escape(newest)} .*?60min", rpo), (service, rpo)
    assert rpo.count(" ok") >= len(SERVICES)
    assert re.search(r'id="state"[^>]*>paused<', page), "the state is not paused"
    assert 'id="paused"' in page
    assert 'action="/plans/' + name + '/resume"' in page
    # repository health, the drill with its Gantt chart, risks, the crisis journal
    health = text(element(page, "repository", "</table>"))
    assert "yes" in health and "passed" in health, health
    drill = text(element(page, "drill", "</table>"))
    assert "passed" in drill, drill
    gantt = element(page, "gantt", "</svg>")
    assert "restore:db/pg" in gantt and "validate:web" in gantt
    assert "dc-fire" in element(page, "risks", "</svg>")
    journal = text(element(page, "journal", "</table>"))
    assert "Datacenter fire drill <b>exercise</b>" in journal  # shown as text
    assert "<b>exercise</b>" not in page

    # the screenshot, kept as the test's artefact
    shot = artefacts / f"dashboard-{name}.png"
    chromium([f"--screenshot={shot}", f"{reader.url}/plans/{name}"], profile)
    record_property("screenshot", str(shot))
    print(f"dashboard screenshot: {shot}")
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 50_000, shot.stat().st_size  # a blank page is a few KB
    stats = png_stats(shot)
    assert stats.colours > 100, stats  # text, tables and charts, not a flat page
    # and the whole page, for a person to look at (not decoded: the first one was)
    whole = artefacts / f"dashboard-{name}-full.png"
    chromium([f"--screenshot={whole}", f"{reader.url}/plans/{name}"], profile, window=FULL)
    record_property("screenshot_full", str(whole))
    print(f"dashboard screenshot, whole page: {whole}")
    assert png_size(whole) == FULL
    assert reader.stop() == 0, reader.text()
