"""Recovery of whole stacks on the recovery site, checked by the independent verifier."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testbed import generator, plans, sites, stacks, verifier
from testbed.plans import DRPLAN, PASSWORD, ok, ok_json
from testbed.plans import drplan as run

pytestmark = pytest.mark.integration


class Backed:
    """A stack deployed on the primary, filled, backed up; what the verifier saw then."""

    def __init__(self, kind: str, name: str, plan: Path, expected: dict, run_id: str):
        self.kind, self.name, self.plan = kind, name, plan
        self.expected, self.run_id = expected, run_id

    @property
    def services(self) -> set[str]:
        return set(verifier.LAYOUT[self.kind])


def _backed_up(testbed, kind: str, dest: Path) -> Backed:
    name = f"{kind}{os.urandom(3).hex()}"
    tp = plans.adapt(kind, dest, name=name)
    plan = tp.path
    plans.deploy(testbed["primary"], tp)
    client = sites.client(testbed["primary"])
    generator.populate(client, kind, name, generator.Size.small(), seed=11)
    ok("repo", "init", str(plan))
    report = ok_json("backup", str(plan))
    assert report["complete"] is True
    expected = verifier.fingerprint(client, kind, name)
    return Backed(kind, name, plan, expected, report["run_id"])


@pytest.fixture(scope="module")
def backed(testbed, tmp_path_factory):
    """campus and helpdesk, each backed up once on the primary (shared by this module)."""
    made = {k: _backed_up(testbed, k, tmp_path_factory.mktemp(k)) for k in ("campus", "helpdesk")}
    yield made
    for b in made.values():
        stacks.remove(testbed["primary"], b.name)


def _recovered_services(url: str, stack: str) -> set[str]:
    client = sites.client(url)
    return {s.name.removeprefix(f"{stack}_") for s in stacks.services(client, stack)}


def _stop_primary() -> None:
    pid = int(Path("/run/drplan/primary/docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.exclusive  # stops the primary engine under every other test's feet
def test_whole_stacks_recover_with_the_primary_engine_stopped(testbed, backed, tmp_path):
    _stop_primary()
    try:
        for b in backed.values():
            report = ok_json("recover", str(b.plan), "--site", "recovery",
                             "--report-dir", str(tmp_path))
            try:
                assert report["ok"] and report["verified"], report
                assert report["run_id"] == b.run_id
                assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
                assert report["rto"]["measured_s"] > 0
                assert report["rpo"]["measured_s"] >= 0
                client = sites.client(testbed["recovery"])
                stacks.wait_healthy(client, b.name, timeout=60)
                assert _recovered_services(testbed["recovery"], b.name) == b.services
                got = verifier.fingerprint(client, b.kind, b.name)
                assert verifier.differences(b.expected, got) == []
                for f in ("report.json", "report.md", "gantt.svg"):
                    assert any(tmp_path.rglob(f)), f
            finally:
                stacks.remove_recovered(testbed["recovery"], b.name)
    finally:
        sites.up()


def test_degraded_profile_brings_back_exactly_its_services(testbed, backed, tmp_path):
    b = backed["campus"]
    stack = f"dg{b.name}"
    report = ok_json("recover", str(b.plan), "--profile", "exams-only", "--prefix", "dg",
                     "--report-dir", str(tmp_path))
    try:
        assert report["ok"], report
        assert set(report["services"]) == {"exam", "db", "redis"}
        assert _recovered_services(testbed["recovery"], stack) == {"exam", "db", "redis"}
        client = sites.client(testbed["recovery"])
        got = verifier.fingerprint(client, "campus", stack, services=["exam", "db", "redis"])
        want = {k: v for k, v in b.expected.items() if k.split("/")[0] in ("exam", "db", "redis")}
        assert verifier.differences(want, got) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)


def test_sigkill_at_random_moments_then_the_same_command_completes(testbed, backed, tmp_path):
    b = backed["helpdesk"]
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    env = {**os.environ, "DRPLAN_REPO_PASSWORD": PASSWORD}
    # how long an uninterrupted recovery takes, to spread the kills over it
    t0 = time.monotonic()
    ok("recover", str(b.plan), "--prefix", "k0", "--json", "--report-dir", str(tmp_path))
    duration = time.monotonic() - t0
    stacks.remove_recovered(testbed["recovery"], f"k0{b.name}", b.name)
    for trial in range(1, 11):
        stack = f"k{trial}{b.name}"
        args = ["recover", str(b.plan), "--prefix", f"k{trial}", "--report-dir", str(tmp_path)]
        delay = rng.uniform(0.3, duration * 0.95)
        proc = subprocess.Popen([DRPLAN, *args, "--json"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def test_refusals_leave_the_target_untouched(testbed, backed, tmp_path):
    b = backed["campus"]
    client = sites.client(testbed["recovery"])
    stack = f"rf{b.name}"

    def untouched() -> None:
        assert stacks.services(client, stack) == []
        assert not [v for v in client.volumes.list() if v.name.startswith(f"{stack}_")
                    and v.name != f"{stack}_db-data"]

    wrong = run("recover", str(b.plan), "--prefix", "rf", password="not-the-password")
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr
    untouched()

    missing = run("recover", str(b.plan), "--prefix", "rf", "--run", "20000101T000000Z-dead")
    assert missing.returncode == 1 and "no complete run" in missing.stderr, missing.stderr
    untouched()

    unreachable = run("recover", str(b.plan), "--prefix", "rf",
                      "--docker-host", "unix:///nonexistent/docker.sock")
    assert unreachable.returncode == 1 and "unreachable" in unreachable.stderr
    assert "site recovery" in unreachable.stderr
    untouched()

    # a target volume that already holds data
    vol = client.volumes.create(f"{stack}_db-data")
    client.containers.run("drplan-tb/app:latest", ["sh", "-c", "echo precious > /v/keep"],
                          volumes={vol.name: {"bind": "/v"}}, remove=True)
    try:
        busy = run("recover", str(b.plan), "--prefix", "rf")
        assert busy.returncode == 2, busy.stderr
        assert f"{stack}_db-data" in busy.stderr and "--force" in busy.stderr
        untouched()
        kept = client.containers.run("drplan-tb/app:latest", ["cat", "/v/keep"],
                                     volumes={vol.name: {"bind": "/v"}}, remove=True)
        assert kept.strip() == b"precious"
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)
        vol.remove(force=True)


def test_recover_from_the_repository_alone_into_another_name(testbed, backed, tmp_path):
    """A fresh host with drplan, an engine and the repository's password: nothing else."""
    b = backed["helpdesk"]
    repo = b.plan.parent / "repo"
    empty = tmp_path / "fresh-host"
    empty.mkdir()
    report = ok_json("recover", "--repo", str(repo), "--site", "recovery", "--prefix", "copy",
                     "--report-dir", str(tmp_path), cwd=empty)
    stack = f"copy{b.name}"
    try:
        assert report["ok"] and report["verified"]
        assert report["stack"] == stack
        got = verifier.fingerprint(sites.client(testbed["recovery"]), "helpdesk", stack)
        assert verifier.differences(b.expected, got) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)


def test_a_training_copy_beside_production_on_the_same_engine(testbed, backed, tmp_path):
    """Production data into another name on production's own engine (Pegase's test
    environment): production is untouched, the copy equals the backup."""
    b = backed["campus"]
    stack = f"train{b.name}"
    client = sites.client(testbed["primary"])
    stacks.wait_healthy(client, b.name, timeout=240)  # e.g. after the primary's restart
    before = verifier.fingerprint(client, "campus", b.name)
    report = ok_json("recover", str(b.plan), "--site", "primary", "--prefix", "train",
                     "--report-dir", str(tmp_path))
    try:
        assert report["ok"] and report["verified"]
        assert verifier.differences(b.expected, verifier.fingerprint(client, "campus", stack)) == []
        assert verifier.differences(before, verifier.fingerprint(client, "campus", b.name)) == []
        # the copy published no port of production's
        for svc in stacks.services(client, stack):
            assert not svc.attrs["Spec"].get("EndpointSpec", {}).get("Ports")
    finally:
        stacks.remove_recovered(testbed["primary"], stack, b.name)
