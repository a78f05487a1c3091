"""`drplan serve` under faults, with the real daemon, engines and repositories (issue 16):
an unreachable engine and an unreachable repository are failed runs, retried, never the
end of the daemon; SIGTERM in the middle of a backup ends the daemon in a bounded time
with the run recorded interrupted; after a SIGKILL, the next start reports the dead run
and goes on. Nothing is ever recorded complete that the repository does not hold
complete.

The "engine stopped" case is a plan whose primary site's socket has no engine behind it
(what a stopped dockerd leaves): the testbed's engines serve the other tests meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import docker
import pytest
import yaml

from testbed import plans
from testbed.plans import PASSWORD
from testbed.serve import Serve, wait_for

pytestmark = pytest.mark.integration

EVERY_MINUTE = {"schedule": {"every": "1m"}, "retention": {"keep_last": 5}}


@pytest.fixture(scope="module")
def campus(testbed, tmp_path_factory):
    """The campus stack deployed once for the module, with a plan backing up every minute."""
    name = f"servefault{os.urandom(3).hex()}"
    base = tmp_path_factory.mktemp("serve-faults")
    tp = plans.adapt(
        "campus",
        base / "campus",
        name=name,
        edit=lambda p: p.update(backup=EVERY_MINUTE, objectives={"rpo": "10m", "rto": "30m"}),
    )
    plans.deploy(testbed["primary"], tp)
    plans.ok("repo", "init", tp.path)
    yield tp
    plans.remove(testbed["primary"], tp)


def complete_runs(tp) -> list[str]:
    doc = plans.ok_json("runs", tp.path)
    return [r["run_id"] for r in doc["runs"] if r["complete"]]


def no_helpers_left(url: str, plan: str) -> bool:
    client = docker.DockerClient(base_url=url)
    try:
        return not client.containers.list(all=True, filters={"label": f"org.drplan.plan={plan}"})
    finally:
        client.close()


def test_unreachable_engine_and_repository_are_failed_runs_retried(campus, tmp_path):
    # a second plan, same stack, whose primary engine is gone (a socket with no dockerd)
    dead = tmp_path / "stopped-engine" / "docker.sock"
    dead.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as s:  # the socket file a stopped engine leaves
        s.bind(str(dead))
    doc = yaml.safe_load(campus.path.read_text())
    doc["stack"]["name"] = campus.name + "x"
    doc["sites"]["primary"]["docker_host"] = f"unix://{dead}"
    doc["repositories"]["local"]["url"] = str(tmp_path / "repo-x")
    gone = campus.dir / "engine-gone.yml"  # beside the compose file, as a plan must be
    gone.write_text(yaml.safe_dump(doc, sort_keys=False))
    plans.ok("repo", "init", gone)

    # the campus repository moved away: the next backups of campus fail too
    repo = Path(campus.repo)
    hidden = repo.with_name(repo.name + ".away")
    before = complete_runs(campus)
    repo.rename(hidden)
    d = Serve([campus.path, gone], tmp_path / "state")
    try:
        failed = wait_for(
            "a failed backup of each plan",
            lambda: (
                {r["plan"]: r for r in d.runs() if r["job"] == "backup" and r["status"] == "failed"}
                if len({r["plan"] for r in d.runs() if r["status"] == "failed"}) == 2
                else None
            ),
            180,
        )
        engine_msg = failed[campus.name + "x"]["message"]
        repo_msg = failed[campus.name]["message"]
        assert str(dead) in engine_msg and "unreachable" in engine_msg, engine_msg
        assert str(repo) in repo_msg and "no restic repository" in repo_msg, repo_msg
        assert d.healthy()  # the daemon goes on
        assert d.metric("drplan_job_last_failed", plan=campus.name, job="backup") == 1
        # the repository is back: the retry (after its backoff) succeeds, the other plan
        # keeps failing without taking the daemon down
        hidden.rename(repo)
        ok = wait_for(
            "a retried backup of campus that succeeds",
            lambda: [
                r for r in d.runs(campus.name) if r["job"] == "backup" and r["status"] == "ok"
            ],
            240,
            every=2,
        )
        assert ok[0]["trigger"] == "retry" and ok[0]["attempt"] >= 2
        assert ok[0]["ref"] in complete_runs(campus)
        assert d.healthy()
        others = d.runs(campus.name + "x")
        assert others and all(r["status"] in ("failed", "running") for r in others)
        assert PASSWORD not in d.text()
    finally:
        if hidden.exists() and not repo.exists():
            hidden.rename(repo)
        assert d.stop() == 0, d.text()
    assert len(complete_runs(campus)) > len(before)


def backup_running(d: Serve, plan: str):
    runs = [r for r in d.runs(plan) if r["job"] == "backup" and r["status"] == "running"]
    return runs[0] if runs and runs[0]["pid"] else None


def test_sigterm_mid_backup_stops_in_bounded_time_and_records_interrupted(
    campus, testbed, tmp_path
):
    before = set(complete_runs(campus))
    d = Serve([campus.path], tmp_path / "state", grace=0)
    run = wait_for("a backup in progress", lambda: backup_running(d, campus.name), 120, 0.2)
    t0 = time.monotonic()
    code = d.stop(signal.SIGTERM, timeout=150)
    took = time.monotonic() - t0
    assert code == 0, d.text()
    assert took < 100, f"the daemon took {took:.0f}s to stop"
    [row] = [r for r in d.runs(campus.name) if r["id"] == run["id"]]
    # a campus backup takes seconds, the signal came within 0.2 s of its start: with no
    # grace, the daemon stopped it
    assert row["status"] == "interrupted", (row, d.text())
    assert set(complete_runs(campus)) == before  # nothing half-done counts as complete
    assert wait_for(
        "no helper container left", lambda: no_helpers_left(testbed["primary"], campus.name), 60
    )
    assert all(r["status"] != "running" for r in d.runs())


def test_sigkill_then_restart_reports_the_dead_run_and_goes_on(campus, tmp_path):
    state = tmp_path / "state"
    d = Serve([campus.path], state)
    run = wait_for("a backup in progress", lambda: backup_running(d, campus.name), 120, 0.2)
    d.stop(signal.SIGKILL, timeout=30)
    # the orphaned child finishes or dies on its own; wait until it is gone
    wait_for("the orphaned backup to end", lambda: not _alive(run["pid"]), 180)
    d2 = Serve([campus.path], state)
    try:
        [row] = [r for r in d2.runs(campus.name) if r["id"] == run["id"]]
        assert row["status"] == "dead", row
        assert "stopped during this run" in row["message"]
        assert d2.metric("drplan_dead_runs_found") == 1
        assert "was left by a stopped daemon" in d2.text()
        # and it goes on: a new backup runs and succeeds after the restart
        ok = wait_for(
            "a backup after the restart",
            lambda: [
                r
                for r in d2.runs(campus.name)
                if r["job"] == "backup" and r["status"] == "ok" and r["id"] > run["id"]
            ],
            240,
            every=2,
        )
        assert ok[0]["ref"] in complete_runs(campus)
    finally:
        assert d2.stop() == 0, d2.text()
    assert next(r for r in d2.runs(campus.name) if r["id"] == run["id"])["status"] == "dead"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive (its parent, the killed daemon, is gone; init reaps it)
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False
