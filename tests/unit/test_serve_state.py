"""The daemon's SQLite bookkeeping (drplan.serve.state) and its RPO watch (serve.rpo):
runs left by a killed daemon are found dead, never complete; one daemon per state file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from drplan.serve import rpo
from drplan.serve import state as st


def test_runs_and_failure_streaks(tmp_path):
    s = st.State(tmp_path / "s.sqlite")
    a = s.start("p", "backup", "schedule")
    s.finish(a, st.OK, exit_code=0, ref="r1", details={"sources": [{"bytes": 5}]})
    for _ in range(3):
        b = s.start("p", "backup", "retry")
        s.finish(b, st.FAILED, exit_code=1, message="repository unreachable")
    assert s.failures_since_ok("p", "backup") == 3
    assert s.last("p", "backup", st.OK).ref == "r1"
    assert s.last("p", "backup").status == st.FAILED
    assert s.last_details("p", "backup") == {"sources": [{"bytes": 5}]}
    assert s.run_counts() == {("p", "backup", "ok"): 1, ("p", "backup", "failed"): 3}
    assert (tmp_path / "s.sqlite").stat().st_mode & 0o077 == 0


def test_a_finished_run_cannot_be_finished_again(tmp_path):
    s = st.State(tmp_path / "s.sqlite")
    a = s.start("p", "backup", "schedule")
    s.finish(a, st.FAILED, exit_code=1)
    s.finish(a, st.OK, exit_code=0)
    assert s.run(a).status == st.FAILED


def test_runs_left_running_by_a_killed_daemon_are_dead_on_restart(tmp_path):
    path = tmp_path / "s.sqlite"
    # a daemon in another process starts a run, then dies without finishing it
    code = (
        "import sys; from drplan.serve import state as st;"
        f"s = st.State({str(path)!r}); r = s.start('p', 'backup', 'schedule');"
        "s.set_pid(r, 999999); import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    s = st.State(path)
    reaped = s.reap()
    assert [r.status for r in reaped] == [st.DEAD]
    assert "stopped during this run" in (reaped[0].message or "")
    assert s.failures_since_ok("p", "backup") == 1
    assert s.last("p", "backup", st.OK) is None


def test_one_daemon_per_state_file(tmp_path):
    path = tmp_path / "s.sqlite"
    fd = st.lock(path)
    try:
        code = f"from drplan.serve import state as st; st.lock({str(path)!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "BlockingIOError" in proc.stderr
    finally:
        os.close(fd)
    fd = st.lock(path)  # released: free again
    os.close(fd)


def test_alert_states_and_pause(tmp_path):
    s = st.State(tmp_path / "s.sqlite")
    assert s.alert_state("p", "rpo:db") is None
    s.set_alert_state("p", "rpo:db", "at_risk")
    assert s.alert_state("p", "rpo:db") == "at_risk"
    assert s.paused("p") is None
    s.set_paused("p", True)
    assert s.paused("p") is not None
    s.set_paused("p", False)
    assert s.paused("p") is None


@pytest.mark.parametrize(
    ("age", "state"),
    [(10, rpo.OK), (85, rpo.AT_RISK), (100, rpo.AT_RISK), (101, rpo.BREACHED)],
)
def test_rpo_states(age, state):
    now = 1_800_000_000.0
    point = datetime.fromtimestamp(now - age, UTC).isoformat().replace("+00:00", "Z")
    status = {"services": [{"service": "db", "recovery_point": point, "rpo_objective_s": 100}]}
    [s] = rpo.watch(status, now, 0.8)
    assert s.state == state and s.age_s == pytest.approx(age)


def test_rpo_without_backup():
    status = {"services": [{"service": "db", "recovery_point": None, "rpo_objective_s": 100}]}
    assert rpo.watch(status, 0.0)[0].state == rpo.NO_BACKUP
    assert rpo.watch(None, 0.0) == []


def test_a_jobs_message_is_its_error_line_or_the_exception_of_a_crash():
    from drplan.serve.jobs import error_line

    assert error_line("progress\nerror: repository r: no restic repository\n") == (
        "repository r: no restic repository"
    )
    crash = (
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
        "    boom()\npydantic_core.ValidationError: 1 validation error for Manifest\n"
        "  compose_files.0\n    Value error\n"
        "    For further information visit https://errors.pydantic.dev/2/v/value_error\n"
    )
    assert error_line(crash) == (
        "internal error: pydantic_core.ValidationError: 1 validation error for Manifest"
    )
    assert error_line("") is None
