"""Drills and runbooks on the real two-site testbed.

campus and helpdesk are deployed on the primary, filled and backed up once (module
fixture); drills then run on the recovery site. The engine's state (containers, volumes,
networks, images with their tags) is compared before and after: things of *other*
tests' stacks and plans, which may run at the same time on a developer's machine, are
left out of the comparison; everything else must be exactly as before. The runbook test
follows the generated Markdown by hand (bash, docker, restic) and asks the independent
verifier whether the data came back.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from drplan.render import png_stats, svg_to_png
from testbed import generator, plans, sites, stacks, verifier
from testbed.plans import DRPLAN, PASSWORD, ok, ok_json
from testbed.plans import drplan as run

pytestmark = pytest.mark.integration
STACK_NS = "com.docker.stack.namespace"
PLAN_LABEL = "org.drplan.plan"
SHARED_VOLUMES = {"drplan-journal", "drplan-restic-cache"}


class Backed:
    def __init__(self, kind: str, name: str, plan: Path, expected: dict):
        self.kind, self.name, self.plan, self.expected = kind, name, plan, expected

    @property
    def repo(self) -> Path:
        return self.plan.parent / "repo"


@pytest.fixture(scope="module")
def backed(testbed, tmp_path_factory):
    made = {}
    try:
        for kind in ("campus", "helpdesk"):
            name = f"{kind}{os.urandom(3).hex()}"
            tp = plans.adapt(kind, tmp_path_factory.mktemp(kind), name=name)
            plans.deploy(testbed["primary"], tp)
            client = sites.client(testbed["primary"])
            generator.populate(client, kind, name, generator.Size.small(), seed=5)
            ok("repo", "init", str(tp.path))
            assert ok_json("backup", str(tp.path))["complete"] is True
            made[kind] = Backed(kind, name, tp.path, verifier.fingerprint(client, kind, name))
        yield made
    finally:
        for b in made.values():
            stacks.remove(testbed["primary"], b.name)


def inventory(url: str, plan: str) -> dict[str, set]:
    """The engine's state, less what belongs to other tests' stacks and plans."""
    c = sites.client(url)
    # Every recovery on an engine shares drplan's journal and cache volumes: when other
    # test sessions recover at the same time (parallel workers), whether they exist after
    # a drill is theirs to say. The drill's own journal file is checked by its teardown.
    shared = SHARED_VOLUMES if os.environ.get("PYTEST_XDIST_WORKER") else set()

    def foreign(labels: dict | None) -> bool:
        labels = labels or {}
        ns, owner = labels.get(STACK_NS), labels.get(PLAN_LABEL)
        other_test = "org.drplan.test" in labels  # other tests' oracle containers, volumes
        return bool((ns and not ns.endswith(plan)) or (owner and owner != plan) or other_test)

    return {
        "containers": {
            x["Names"][0] for x in c.api.containers(all=True) if not foreign(x.get("Labels"))
        },
        "volumes": {
            v["Name"]
            for v in c.api.volumes().get("Volumes") or []
            if not foreign(v.get("Labels")) and v["Name"] not in shared
        },
        "networks": {n["Name"] for n in c.api.networks() if not foreign(n.get("Labels"))},
        "images": {
            (i["Id"], tuple(sorted(i.get("RepoTags") or [])))
            for i in c.api.images()
            if not foreign(i.get("Labels"))
        },
    }


def assert_same(before: dict, after: dict) -> None:
    for kind in before:
        assert after[kind] == before[kind], (
            kind,
            "left:",
            sorted(after[kind] - before[kind]),
            "gone:",
            sorted(before[kind] - after[kind]),
        )


def looks_drawn(png: Path, min_w: int, min_h: int) -> None:
    stats = png_stats(png)
    assert stats.width >= min_w and stats.height >= min_h, stats
    assert stats.colours >= 8 and 0.02 < stats.ink < 0.95, stats


def test_drills_pass_leave_nothing_and_are_recorded(testbed, backed, tmp_path):
    for b in backed.values():
        before = inventory(testbed["recovery"], b.name)
        rec = ok_json("drill", str(b.plan), "--report-dir", str(tmp_path / b.kind))
        assert rec["passed"] and rec["verified"], rec["failure"]
        assert rec["stack"].startswith("drill-") and rec["stack"].endswith(b.name)
        assert all(s["status"] == "ok" for s in rec["steps"].values()), rec["steps"]
        assert {k.split(":")[0] for k in rec["steps"]} >= {"restore", "health", "validate"}
        assert rec["rto"]["verdict"] == "met" and rec["rto"]["measured_s"] > 0
        assert rec["rpo"]["verdict"] == "met" and rec["rpo"]["measured_s"] >= 0
        assert rec["teardown"]["clean"], rec["teardown"]
        assert_same(before, inventory(testbed["recovery"], b.name))
        history = ok_json("drills", str(b.plan))
        mine = [d for d in history["drills"] if d["drill_id"] == rec["drill_id"]]
        assert len(mine) == 1 and mine[0]["passed"], history
        assert mine[0]["rto_verdict"] == "met" and mine[0]["rpo_verdict"] == "met"
        # the newest record whole, with its steps (the dashboard's Gantt chart)
        assert history["newest"]["drill_id"] == rec["drill_id"]
        assert history["newest"]["steps"] == rec["steps"]
        svg = Path(rec["reports"]["gantt"]).read_text()
        looks_drawn(svg_to_png(svg, tmp_path / f"{b.kind}-gantt.png"), 800, 300)
    # the plan as drilled needs no drill; once edited, it does
    plan = backed["campus"].plan
    status = ok_json("status", str(plan))
    assert status["needs_drill"] is False and status["last_drill"]["passed"]
    assert {s["verdict"] for s in status["services"]} == {"met"}
    assert status["repository"]["opens"] is True
    plan.write_text(plan.read_text() + "\n# edited after the drill\n")
    status = ok_json("status", str(plan))
    assert status["needs_drill"] is True and status["plan_changed_since_drill"] is True
    # drills taught the schedule: `drplan plan` estimates come from them now
    steps = ok_json("plan", str(plan))["steps"]
    assert {s["estimate_basis"] for s in steps} == {"history"}, steps


def test_a_failing_drill_says_why_exits_non_zero_and_cleans_up(testbed, backed, tmp_path):
    b = backed["campus"]

    def impossible(plan: dict) -> None:
        plan["services"]["web"]["checks"] = [
            {
                "type": "http",
                "url": "http://web:8080/health",
                "status": 200,
                "body_contains": "text this app never serves",
                "retries": 2,
                "interval": 1,
            }
        ]

    tp = plans.adapt(
        "campus", tmp_path / "plan", name=b.name, repo_url=str(b.repo), edit=impossible
    )
    before = inventory(testbed["recovery"], b.name)
    proc = run("drill", str(tp.path), "--report-dir", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "drill failed" in proc.stderr and "text this app never serves" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_same(before, inventory(testbed["recovery"], b.name))
    history = ok_json("drills", str(tp.path))
    last = history["drills"][-1]
    assert last["passed"] is False and "never serves" in last["failure"]
    assert "FAILED" in run("drills", str(tp.path)).stdout


def _drill_stack_appears(url: str, name: str, timeout: float = 120) -> bool:
    c = sites.client(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s.name.startswith("drill-") and name in s.name for s in c.services.list()):
            return True
        time.sleep(0.2)
    return False


def test_a_drill_killed_with_sigkill_is_cleaned_by_the_next(testbed, backed, tmp_path):
    b = backed["helpdesk"]
    before = inventory(testbed["recovery"], b.name)
    env = {**os.environ, "DRPLAN_REPO_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [DRPLAN, "drill", str(b.plan), "--json", "--report-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # kill at a random moment while the drill's stack exists (restores, starts, checks)
        assert _drill_stack_appears(testbed["recovery"], b.name)
        time.sleep(random.Random(os.urandom(4)).uniform(0, 8))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = inventory(testbed["recovery"], b.name)
    assert left != before  # the killed drill did leave things behind
    rec = ok_json("drill", str(b.plan), "--report-dir", str(tmp_path))
    assert rec["passed"], rec["failure"]
    assert len(rec["cleaned_before"]) == 1 and not rec["cleaned_before"][0]["errors"]
    assert_same(before, inventory(testbed["recovery"], b.name))


def test_sigterm_tears_down_before_exiting(testbed, backed, tmp_path):
    b = backed["helpdesk"]
    before = inventory(testbed["recovery"], b.name)
    env = {**os.environ, "DRPLAN_REPO_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [DRPLAN, "drill", str(b.plan), "--report-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _drill_stack_appears(testbed["recovery"], b.name)
        time.sleep(random.Random(os.urandom(4)).uniform(0, 3))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "interrupted by SIGTERM" in stderr, stderr
    assert_same(before, inventory(testbed["recovery"], b.name))
    last = ok_json("drills", str(b.plan))["drills"][-1]
    assert last["passed"] is False and "SIGTERM" in last["failure"]


SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def test_the_runbook_followed_by_hand_recovers_campus(testbed, backed, tmp_path):
    b = backed["campus"]
    out = tmp_path / "runbook"
    stack = f"hand{b.name}"
    ok("runbook", str(b.plan), "-o", str(out), "--stack-name", stack)
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    password.chmod(0o600)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_HOST": testbed["recovery"],
        "RESTIC_REPOSITORY": str(b.repo),
        "RESTIC_PASSWORD_FILE": str(password),
    }
    steps = sorted(out.glob("[0-9][0-9]-*.md"))
    index = (out / "README.md").read_text()
    assert [m for m in re.findall(r"\]\((\d\d-[^)]+\.md)\)", index)][: len(steps)] == [
        p.name for p in steps
    ]  # the index lists the steps in this order
    try:
        ran = 0
        for page in steps:
            text = page.read_text()
            assert PASSWORD not in text
            for block in SH_BLOCK.findall(text):
                proc = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block],
                    cwd=out,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert proc.returncode == 0, (
                    page.name,
                    block,
                    proc.stdout[-2000:],
                    proc.stderr[-2000:],
                )
                ran += 1
        assert ran >= len(steps)
        client = sites.client(testbed["recovery"])
        got = verifier.fingerprint(client, "campus", stack)
        assert verifier.differences(b.expected, got) == []
    finally:
        stacks.remove(testbed["recovery"], stack)
    # a person looks at the chart and the printable runbook
    looks_drawn(svg_to_png((out / "gantt.svg").read_text(), tmp_path / "rb.png"), 800, 300)
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (scripts/setup installs it)"
    shot = tmp_path / "runbook.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            f"file://{out / 'runbook.html'}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    looks_drawn(shot, 1200, 1600)
    if os.environ.get("DRPLAN_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["DRPLAN_KEEP_SCREENSHOT"])
