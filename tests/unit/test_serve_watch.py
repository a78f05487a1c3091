"""What the daemon tells people, and when (drplan.serve.daemon.PlanWorker): an RPO that
enters at-risk or breached is notified once per transition; a failing job at its first
failure and when it succeeds again, not at every retry; every drill with its RTO. Real
plan files, real SQLite state; only the delivery is recorded instead of sent."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drplan.serve import jobs
from drplan.serve import state as st
from drplan.serve.daemon import Daemon, Settings
from drplan.serve.notify import Message, Notifier
from tests.unit.plan_helpers import write_stack


class Recorder(Notifier):
    """Keeps the messages a plan would send (the subscription filter still applies)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Message] = []

    def send(self, plan, base: Path, msg: Message, *, wait: bool = False) -> None:
        if any(msg.event in n.events for n in plan.notifications):
            self.messages.append(msg)


@pytest.fixture
def worker(tmp_path):
    path = write_stack(tmp_path)
    text = path.read_text() + "notifications:\n  - url: {env: NOTIFY_URL}\n"
    path.write_text(text)
    rec = Recorder()
    d = Daemon([path], st.State(tmp_path / "s.sqlite"), Settings(report_dir=tmp_path), rec)
    w = d.workers[0]
    assert w.plan is not None, w.error
    return w, rec


def status(age_s: float, objective: float = 100.0) -> dict:
    point = datetime.fromtimestamp(time.time() - age_s, UTC).isoformat()
    return {"services": [{"service": "db", "recovery_point": point, "rpo_objective_s": objective}]}


def test_rpo_notified_once_per_transition(worker):
    w, rec = worker
    for age, expected in [(10, []), (85, ["rpo_at_risk"]), (90, []), (150, ["rpo_breached"])]:
        rec.messages.clear()
        w.facts["status"] = status(age)
        w.watch_rpo()
        assert [m.event for m in rec.messages] == expected, age
    assert "BREACHED" in rec.messages[0].title and "150s" in rec.messages[0].body
    rec.messages.clear()
    w.facts["status"] = status(5)  # a new backup: back to ok, silently
    w.watch_rpo()
    w.facts["status"] = status(85)
    w.watch_rpo()
    assert [m.event for m in rec.messages] == ["rpo_at_risk"]


def finished(w, job: str, status_: str, **kw) -> st.Run:
    s = w.d.state
    run = s.start(w.name, job, "schedule")
    s.finish(run, status_, **kw)
    return s.run(run)


def test_a_failing_job_is_notified_at_its_first_failure_and_its_recovery(worker):
    w, rec = worker
    for _ in range(3):
        run = finished(w, "backup", st.FAILED, exit_code=1, message="repository unreachable")
        w.tell("backup", run, jobs.Outcome(exit_code=1, error="repository unreachable"))
    assert [m.event for m in rec.messages] == ["run_failed"]
    assert rec.messages[0].failure and "repository unreachable" in rec.messages[0].body
    run = finished(w, "backup", st.OK, exit_code=0)
    w.tell("backup", run, jobs.Outcome(exit_code=0))
    assert "succeeded again" in rec.messages[-1].title
    run = finished(w, "check", st.FAILED, exit_code=1, message="check failed")
    w.tell("check", run, jobs.Outcome(exit_code=1))
    assert rec.messages[-1].event == "check_failed"


def test_every_drill_is_notified_with_its_rto(worker):
    w, rec = worker
    doc = {"passed": True, "rto": {"measured_s": 42.4, "objective_s": 3600}}
    run = finished(w, "drill", st.OK, exit_code=0, details=doc)
    w.tell("drill", run, jobs.Outcome(exit_code=0, document=doc))
    doc = {"passed": False, "failure": "verification failed", "rto": {"measured_s": None}}
    run = finished(w, "drill", st.FAILED, exit_code=1, message="the drill failed")
    w.tell("drill", run, jobs.Outcome(exit_code=1, document=doc))
    first, second = rec.messages
    assert first.event == second.event == "drill"
    assert "passed" in first.title and "RTO 42s (objective 3600s)" in first.body
    assert "FAILED" in second.title and second.failure and "drill failed" in second.body


def test_an_invalid_edit_keeps_the_last_good_plan(worker, tmp_path):
    w, rec = worker
    good = w.plan
    path = w.path
    path.write_text(path.read_text().replace("rpo: 24h", "rpo: soon"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    w.reload()
    assert w.plan is good and w.error and "rpo" in w.error
    assert [m.title for m in rec.messages] == [f"drplan: plan {w.name} is invalid"]
