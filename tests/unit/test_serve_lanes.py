"""A drill runs beside a plan's backups (drplan.serve.daemon.PlanWorker's drill lane):
backups go on while it runs, retention and checks (restic's exclusive lock) wait for it,
a second drill waits for the first, and a stop reaches both lanes' processes.

Real plan file, real SQLite state, real child processes: each job's command is a small
Python program standing in for `drplan JOB` (its exit status and timing are all the
daemon reads of it here); the repository reads are left out (no repository exists)."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from drplan.serve import daemon as dm
from drplan.serve import state as st
from drplan.serve.daemon import Daemon, Settings
from tests.unit.plan_helpers import write_stack


@pytest.fixture
def worker(tmp_path, monkeypatch):
    gates = {job: tmp_path / f"{job}.gate" for job in ("drill", "backup", "prune", "check")}

    def argv(job, plan_path, plan, report_dir):
        # the job runs until its gate file exists (the test opens it), then exits 0
        program = (
            "import os, sys, time\n"
            f"while not os.path.exists({str(gates[job])!r}): time.sleep(0.05)\n"
        )
        return [sys.executable, "-c", program]

    monkeypatch.setattr(dm.jobs, "argv", argv)
    monkeypatch.setattr(dm.facts, "READERS", {})
    d = Daemon([write_stack(tmp_path)], st.State(tmp_path / "s.sqlite"), Settings(tmp_path))
    w = d.workers[0]
    assert w.plan is not None, w.error
    d.state.set_paused(w.name, True)  # only what the test asks for runs
    yield w, gates
    d.stopping.set()
    for gate in gates.values():
        gate.touch()
    if w.drill_lane is not None:
        w.drill_lane.join(30)


def running(w) -> set[str]:
    return {r["job"] for r in w.view().running}


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def last(w, job: str) -> st.Run | None:
    return w.d.state.last(w.name, job)


def test_backups_run_while_a_drill_runs(worker):
    w, gates = worker
    w.requested.append("drill")
    w.step()  # the drill starts in its lane; the worker is free at once
    wait_for(lambda: running(w) == {"drill"}, "the drill to run")
    w.requested.append("backup")
    backup = threading.Thread(target=w.step)
    backup.start()
    wait_for(lambda: running(w) == {"drill", "backup"}, "a backup beside the drill")
    assert w.view().running and "drill and backup running" in dm_state(w)
    gates["backup"].touch()
    backup.join(30)
    assert last(w, "backup").status == st.OK
    assert running(w) == {"drill"}  # the backup ended while the drill goes on
    gates["drill"].touch()
    w.drill_lane.join(30)
    drill, backup_run = last(w, "drill"), last(w, "backup")
    assert drill.status == st.OK
    assert drill.started_at < backup_run.started_at < backup_run.ended_at < drill.ended_at


@pytest.mark.parametrize("job", ["prune", "check", "drill"])
def test_what_cannot_share_the_repository_with_a_drill_waits_for_it(worker, job):
    w, gates = worker
    w.requested.append("drill")
    w.step()
    wait_for(lambda: running(w) == {"drill"}, "the drill to run")
    w.requested.append(job)
    w.step()  # held: the job is still asked for, nothing else started
    assert w.requested == [job]
    assert running(w) == {"drill"}
    gates["drill"].touch()
    w.drill_lane.join(30)
    first = last(w, "drill")
    gates[job].touch()
    w.step()  # the drill is over: now it runs
    if job == "drill":
        w.drill_lane.join(30)
    assert w.requested == []
    run = last(w, job)
    assert run.id != first.id and run.status == st.OK
    assert run.started_at >= first.ended_at


def test_a_stop_reaches_the_job_and_the_drill(worker):
    w, _ = worker
    w.requested.append("drill")
    w.step()
    w.requested.append("backup")
    backup = threading.Thread(target=w.step)
    backup.start()
    wait_for(lambda: running(w) == {"drill", "backup"}, "both lanes busy")
    w.d.stopping.set()
    w.stop_child()
    backup.join(90)
    w.drill_lane.join(90)
    assert not backup.is_alive() and not w.drill_lane.is_alive()
    assert last(w, "backup").status == st.INTERRUPTED
    assert last(w, "drill").status == st.INTERRUPTED


def dm_state(w) -> str:
    from drplan.serve.dashboard import state_of

    return state_of(w.view())[1]
