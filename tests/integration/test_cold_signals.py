"""A cold backup stopped by a signal never leaves production scaled to 0 (threat model,
class 7).

The cold method scales the writers of a volume to 0 for the copy. SIGTERM (or SIGINT) in
that window stops the backup cleanly: every service is back at its replicas, the run's
helpers are gone, the run is recorded incomplete. SIGKILL cannot be caught: the services
carry a mark on the engine (replicas, owner), and the next drplan command on the plan
finds the mark of a dead process and scales them back.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import pytest

from testbed import generator, plans, sites, stacks

pytestmark = pytest.mark.integration
QUIESCED = ("web", "exam")


def _cold_web(plan: dict) -> None:
    plan["services"]["web"]["data"]["files"]["method"] = "cold"
    plan["services"]["exam"]["depends_on"] = ["db", "redis", "web"]
    plan["services"]["exam"]["data"] = {}
    plan.pop("profiles", None)


def _share_uploads(compose: dict) -> None:
    compose["services"]["exam"]["volumes"] = ["files:/srv/files"]


def _replicas(client, stack: str, service: str) -> int:
    spec = client.services.get(f"{stack}_{service}").attrs["Spec"]
    return int(spec["Mode"]["Replicated"]["Replicas"])


def _start_backup(tp) -> subprocess.Popen:
    return subprocess.Popen(
        [plans.DRPLAN, "backup", str(tp.path), "--service", "web"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=plans.restic_env(tp.repo) | {plans.PASSWORD_ENV: plans.PASSWORD},
    )


def _wait_window(client, tp, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Until the cold copy's window has begun: both writers scaled to 0."""
    deadline = time.monotonic() + timeout
    while not all(_replicas(client, tp.name, s) == 0 for s in QUIESCED):
        assert proc.poll() is None, f"the backup ended before its cold window: {proc.stdout}"
        assert time.monotonic() < deadline, "the cold window never began"
        time.sleep(0.05)


def _helpers(client, tp) -> list:
    return client.containers.list(
        all=True, filters={"label": ["org.drplan.helper=1", f"org.drplan.plan={tp.name}"]}
    )


@pytest.fixture
def cold_campus(testbed, tmp_path):
    url = testbed["primary"]
    tp = plans.adapt(
        "campus",
        tmp_path,
        name=f"coldsig{uuid.uuid4().hex[:6]}",
        edit=_cold_web,
        edit_compose=_share_uploads,
    )
    plans.deploy(url, tp)
    try:
        client = sites.client(url)
        generator.populate(client, "campus", tp.name, generator.Size.small())
        plans.ok("repo", "init", tp.path)
        plans.ok("backup", tp.path, "--service", "web")  # images stored once
        yield client, tp
    finally:
        plans.remove(url, tp)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_the_cold_window_brings_every_service_back(cold_campus, sig):
    client, tp = cold_campus
    complete_before = [r["run_id"] for r in plans.ok_json("runs", tp.path)["runs"] if r["complete"]]
    proc = _start_backup(tp)
    _wait_window(client, tp, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    assert f"interrupted by {sig.name}" in out, out
    for service in QUIESCED:
        assert _replicas(client, tp.name, service) == 1, (service, out)
    stacks.wait_healthy(client, tp.name, timeout=300)
    assert _helpers(client, tp) == []
    runs = plans.ok_json("runs", tp.path)["runs"]
    assert [r["run_id"] for r in runs if r["complete"]] == complete_before, runs
    assert not runs[-1]["complete"], runs[-1]


def test_after_a_sigkill_in_the_cold_window_the_next_command_brings_them_back(cold_campus):
    client, tp = cold_campus
    proc = _start_backup(tp)
    _wait_window(client, tp, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [_replicas(client, tp.name, s) for s in QUIESCED] == [0, 0]
    # the next drplan command on the plan that reaches its engine: a check
    check = plans.drplan("check", tp.path)
    assert "scaled back" in check.stderr, check.stderr
    for service in QUIESCED:
        assert _replicas(client, tp.name, service) == 1, service
    stacks.wait_healthy(client, tp.name, timeout=300)
    run = plans.ok_json("backup", tp.path, "--service", "web")
    assert run["complete"], run
    assert _helpers(client, tp) == []
