"""`drplan backup` killed with SIGKILL at random moments never harms the repository.

The run's duration is measured first, then each trial kills the real CLI process after a
random delay within it. After every trial: earlier runs are still listed, complete, with
every snapshot present; the interrupted run is never listed as complete unless it had
already committed its manifest (the last snapshot of a run). At the end `drplan check`
passes and the next backup succeeds, as drplan removes what killed runs leave (helper
containers, stale restic locks; the host lock is an flock that dies with its process).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import uuid

import pytest

from testbed import generator, plans, sites

pytestmark = pytest.mark.integration
TRIALS = 10


def _runs(tp) -> list[dict]:
    return plans.ok_json("runs", tp.path)["runs"]


def _snapshot_ids(tp) -> set[str]:
    out = subprocess.run(
        ["restic", "snapshots", "--no-lock", "--json"],
        capture_output=True,
        check=True,
        env=plans.restic_env(tp.repo),
    ).stdout
    return {s["short_id"] for s in json.loads(out)} | {s["id"] for s in json.loads(out)}


def _manifest_snapshots(tp, run_id: str) -> list[str]:
    """Every snapshot a run's manifest references, read from the repository."""
    env = plans.restic_env(tp.repo)
    snaps = json.loads(
        subprocess.run(
            ["restic", "snapshots", "--no-lock", "--json", "--tag", f"run:{run_id},kind:manifest"],
            capture_output=True,
            check=True,
            env=env,
        ).stdout
    )
    assert len(snaps) == 1, snaps
    m = json.loads(
        subprocess.run(
            ["restic", "dump", "--no-lock", snaps[0]["id"], "/manifest.json"],
            capture_output=True,
            check=True,
            env=env,
        ).stdout
    )
    return [s["snapshot"] for s in m["sources"]] + [
        x for x in (m["images_snapshot"], m["config_snapshot"]) if x
    ]


# ten trials, each a whole run: the hang guard scales with that work, not one test's
@pytest.mark.timeout(3600)
def test_sigkill_at_random_moments_leaves_earlier_runs_intact(testbed, tmp_path):
    url = testbed["primary"]
    tp = plans.adapt("helpdesk", tmp_path, name=f"bkkill{uuid.uuid4().hex[:6]}")
    plans.deploy(url, tp)
    try:
        generator.populate(sites.client(url), "helpdesk", tp.name, generator.Size.small())
        plans.ok("repo", "init", tp.path)
        plans.ok("backup", tp.path)  # the first run stores the images once
        t0 = time.monotonic()
        plans.ok("backup", tp.path)
        duration = time.monotonic() - t0
        rng = random.Random()
        interrupted_complete = 0
        before = [r for r in _runs(tp) if r["complete"]]
        for trial in range(TRIALS):
            delay = rng.uniform(0.05, duration)
            proc = subprocess.Popen(
                [plans.DRPLAN, "backup", str(tp.path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=plans.restic_env(tp.repo) | {plans.PASSWORD_ENV: plans.PASSWORD},
            )
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = _runs(tp)
            done = [r for r in after if r["complete"]]
            ids = [r["run_id"] for r in done]
            # earlier complete runs: all still there, in order, with every snapshot
            assert ids[: len(before)] == [r["run_id"] for r in before], (trial, delay, after)
            present = _snapshot_ids(tp)
            for r in before[-1:]:
                missing = set(_manifest_snapshots(tp, r["run_id"])) - present
                assert not missing, (trial, r["run_id"], missing)
            # the killed run is listed complete only if its manifest was already written,
            # and then it is whole
            new = done[len(before) :]
            assert len(new) <= 1, (trial, delay, new)
            for r in new:
                interrupted_complete += 1
                assert not set(_manifest_snapshots(tp, r["run_id"])) - present
            assert all(not r["complete"] for r in after if r["run_id"] not in ids)
            before = done
        assert interrupted_complete < TRIALS  # most kills land before the manifest
        check = plans.ok_json("check", tp.path)
        assert check["ok"], check
        run = plans.ok_json("backup", tp.path)
        assert run["complete"]
        assert [r["run_id"] for r in _runs(tp) if r["complete"]][-1] == run["run_id"]
        # nothing of the killed runs is left running on the engine
        left = sites.client(url).containers.list(
            all=True, filters={"label": f"org.drplan.plan={tp.name}"}
        )
        assert left == []
    finally:
        plans.remove(url, tp)
