"""SIGKILL trials shared by the one-node and the multi-node tests.

`backup_trials`: `drplan backup` killed at random moments never harms the repository
(earlier runs still listed complete with every snapshot; the interrupted run complete only
if its manifest was written, and then whole; `check` passes and the next backup succeeds;
no helper left on any node). `recovery_trials`: a recovery killed at random moments
completes when the same command runs again, the data verified equal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

from testbed import nodes, plans, sites, stacks, verifier
from testbed.plans import DRPLAN, PASSWORD, ok, ok_json

#: the full count of trials; the multi-node runs take fewer unless DRPLAN_TEST_FULL=1
TRIALS = 10


def trials_here(full: int = TRIALS, quick: int = 3) -> int:
    return full if os.environ.get("DRPLAN_TEST_FULL") == "1" else quick


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


def backup_trials(url: str, tp, trials: int = TRIALS) -> None:
    """`tp` deployed, filled and its repository initialised; one run already stored."""
    t0 = time.monotonic()
    plans.ok("backup", tp.path)
    duration = time.monotonic() - t0
    rng = random.Random()
    interrupted_complete = 0
    before = [r for r in _runs(tp) if r["complete"]]
    for trial in range(trials):
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
    assert interrupted_complete < trials  # most kills land before the manifest
    check = plans.ok_json("check", tp.path)
    assert check["ok"], check
    run = plans.ok_json("backup", tp.path)
    assert run["complete"]
    assert [r["run_id"] for r in _runs(tp) if r["complete"]][-1] == run["run_id"]
    # nothing of the killed runs is left running on the engine
    for engine in nodes.engines(sites.client(url)):  # every node of the cluster
        left = engine.containers.list(all=True, filters={"label": f"org.drplan.plan={tp.name}"})
        assert left == [], engine.api.base_url


def recovery_trials(testbed, b, tmp_path, trials: int = TRIALS) -> None:
    """`b`: a stack backed up on the primary (recovery_helpers.Backed)."""
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    env = {**os.environ, "DRPLAN_REPO_PASSWORD": PASSWORD}
    # how long an uninterrupted recovery takes, to spread the kills over it
    t0 = time.monotonic()
    ok("recover", str(b.plan), "--prefix", "k0", "--json", "--report-dir", str(tmp_path))
    duration = time.monotonic() - t0
    stacks.remove_recovered(testbed["recovery"], f"k0{b.name}", b.name)
    for trial in range(1, trials + 1):
        stack = f"k{trial}{b.name}"
        args = ["recover", str(b.plan), "--prefix", f"k{trial}", "--report-dir", str(tmp_path)]
        delay = rng.uniform(0.3, duration * 0.95)
        proc = subprocess.Popen(
            [DRPLAN, *args, "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        try:
            again = ok_json(*args)  # the same command again
            assert again["ok"] and again["verified"], (trial, delay, again)
            client = sites.client(testbed["recovery"])
            got = verifier.fingerprint(client, "helpdesk", stack)
            assert verifier.differences(b.expected, got) == [], (trial, delay)
        finally:
            stacks.remove_recovered(testbed["recovery"], stack, b.name)
