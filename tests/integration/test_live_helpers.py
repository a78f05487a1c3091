"""One operation never removes another's live helpers (threat model, class 8).

Backup, prune, check, recover and drill clean what a killed run of the plan left behind.
They used to remove every helper container labelled with the plan, including those of an
operation running at that moment (from this host or another). Now a helper is removed
only when its owner (host, boot, pid and start time, on the helper's labels) is provably
dead. Two helpers of the plan are planted on the real engine: one owned by a live
process, one by a process that has exited; `drplan check` must remove only the second.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid

import docker.errors
import pytest

from drplan import labels, owner
from testbed import plans, sites

pytestmark = pytest.mark.integration


def _owner_of(proc: subprocess.Popen) -> str:
    me = owner.current()
    return owner.Owner(me.host, me.boot, proc.pid, owner.start_time(proc.pid) or "?").label()


def test_check_removes_a_dead_runs_helper_and_leaves_a_live_ones(testbed, tmp_path):
    client = sites.client(testbed["primary"])
    tp = plans.adapt("campus", tmp_path, name=f"helpers{uuid.uuid4().hex[:6]}")
    plans.ok("repo", "init", tp.path)
    live = subprocess.Popen(["sleep", "600"])
    dead = subprocess.Popen(["sleep", "600"])
    dead_owner = _owner_of(dead)
    dead.kill()
    dead.wait()
    planted = {}
    try:
        for name, label in (("live", _owner_of(live)), ("dead", dead_owner)):
            planted[name] = client.containers.run(
                "drplan-tb/app:latest",
                ["sleep", "600"],
                detach=True,
                network_mode="none",
                labels={
                    "org.drplan.helper": "1",
                    "org.drplan.plan": tp.name,
                    "org.drplan.run": "elsewhere",
                    labels.OWNER: label,
                    "org.drplan.test": "live-helpers",
                },
            )
        plans.drplan("check", tp.path)  # no run yet: it fails after its clean-up, as meant
        left = {
            c.id
            for c in client.containers.list(
                all=True, filters={"label": f"org.drplan.plan={tp.name}"}
            )
        }
        assert planted["live"].id in left, "a live operation's helper was removed"
        assert planted["dead"].id not in left, "a dead run's helper was left"
    finally:
        live.kill()
        live.wait()
        for c in planted.values():
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
