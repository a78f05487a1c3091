"""Multi-node clusters: data on workers backed up where it lives and recovered onto a
cluster of another shape; a lost worker's database brought back on a surviving node; a
site too small for the constraints refused before any change.

The primary is a 3-node Swarm (manager, primary-w1, primary-w2: storage=local), the
recovery site a 2-node one (recovery, recovery-w1: tier=data), as scripts/testbed builds
them. The workers take tasks only while this module runs (they are drained between other
tests), and it stops engines, so it runs in the suite's exclusive pass.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from testbed import generator, nodes, plans, sites, stacks, verifier
from testbed.plans import drplan, ok, ok_json
from tests.integration.kill_trials import backup_trials, recovery_trials, trials_here
from tests.integration.recovery_helpers import backed_up, recovered_services

pytestmark = [pytest.mark.integration, pytest.mark.exclusive, pytest.mark.timeout(3600)]

PRIMARY_NODES = ("primary", "primary-w1", "primary-w2")


@pytest.fixture(scope="module")
def cluster(testbed):
    managers = {s: sites.client(testbed[s]) for s in ("primary", "recovery")}
    with nodes.workers_active(*managers.values()):
        yield managers


@pytest.fixture(scope="module")
def backed(testbed, cluster, tmp_path_factory):
    made = {}
    try:
        for kind in ("campus", "helpdesk"):
            edit_compose, edit = nodes.pinned(kind)
            made[kind] = backed_up(testbed, kind, tmp_path_factory.mktemp(kind), edit_compose, edit)
        yield made
    finally:
        for b in made.values():
            stacks.remove(testbed["primary"], b.name)
            stacks.remove_recovered(testbed["recovery"], b.name)


def _restart_all(cluster) -> None:
    sites.up()  # restarts stopped engines; drains the workers (the testbed's default)
    for manager in cluster.values():
        nodes.set_workers(manager, "active")


def test_data_on_workers_was_backed_up_where_it_lives(backed, cluster, tmp_path):
    primary = cluster["primary"]
    for kind, services in (("campus", ("db", "redis", "web")), ("helpdesk", ("mariadb",))):
        b = backed[kind]
        status = {s["service"]: s for s in ok_json("status", str(b.plan))["services"]}
        read_on = {s["service"]: s["node"] for s in b.report["sources"]}
        for svc in services:
            node = nodes.task_node(primary, f"{b.name}_{svc}")
            assert node in ("primary-w1", "primary-w2"), (svc, node)
            # the run recorded the node each source was read on; status shows it
            assert status[svc]["nodes"] == [node], status[svc]
            assert read_on[svc] == node, b.report["sources"]
    # the fingerprints were read on the workers, by the testbed's own verifier
    assert all(backed[k].expected for k in backed)
    # the runbook says on which node a restore runs, and with which placement
    out = tmp_path / "runbook"
    ok("runbook", str(backed["campus"].plan), "-o", str(out))
    page = next(p for p in out.glob("*.md") if "restore" in p.name and "db" in p.name)
    text = " ".join(page.read_text().split())
    assert "Run it on the node that runs (or will run) service db" in text, text[:2000]
    assert "its placement on this site: node.labels.tier == data" in text  # the site's own


def test_a_node_drplan_cannot_reach_fails_the_backup_clearly_and_completes_nothing(backed):
    """Data on a worker and no endpoint for it (or one that is another node): the backup
    exits 1 naming the node and the plan key, and no run is listed complete."""
    b = backed["campus"]
    plan = yaml.safe_load(b.plan.read_text())
    before = [r["run_id"] for r in ok_json("runs", str(b.plan))["runs"] if r["complete"]]
    for nodes_entry, said in (
        ({}, "sites.primary.nodes names no"),
        ({"*": nodes.url("primary")}, "is not node"),  # every node pointed at the manager
    ):
        plan["sites"]["primary"]["nodes"] = nodes_entry
        variant = b.plan.with_name("drplan-unreachable.yml")
        variant.write_text(yaml.safe_dump(plan, sort_keys=False))
        proc = drplan("backup", str(variant))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert said in proc.stderr and "primary-w" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    after = [r["run_id"] for r in ok_json("runs", str(b.plan))["runs"] if r["complete"]]
    assert after == before


def test_a_site_too_small_for_the_constraints_is_refused_before_any_change(backed, cluster):
    b = backed["campus"]
    plan = yaml.safe_load(b.plan.read_text())
    plan["sites"]["recovery"]["placement"]["web"] = [
        "node.labels.tier == data",
        "node.role == manager",
    ]
    small = b.plan.with_name("drplan-small.yml")
    small.write_text(yaml.safe_dump(plan, sort_keys=False))
    recovery = cluster["recovery"]
    volumes_before = {v.name for v in recovery.volumes.list()}
    proc = drplan("recover", str(small), "--site", "recovery")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "service web: no usable node of site recovery satisfies" in proc.stderr, proc.stderr
    assert "recovery-w1" in proc.stderr and "nothing was changed" in proc.stderr, proc.stderr
    assert stacks.services(recovery, b.name) == []
    assert {v.name for v in recovery.volumes.list()} == volumes_before


def test_a_lost_workers_database_comes_back_on_a_surviving_node(backed, cluster):
    b = backed["campus"]
    primary = cluster["primary"]
    lost = nodes.task_node(primary, f"{b.name}_db")
    assert lost in ("primary-w1", "primary-w2")
    others = {svc: stacks.container(primary, b.name, svc).id for svc in ("redis", "web", "exam")}
    others = {s: c for s, c in others.items() if nodes.task_node(primary, f"{b.name}_{s}") != lost}
    assert others, "every other service ran on the lost node"
    nodes.stop_engine(lost)
    try:
        nodes.wait_node_down(primary, lost)
        report = ok_json("recover", str(b.plan), "--site", "primary", "--service", "db")
        assert report["ok"] and report["verified"], report
        assert {s["service"] for s in report["steps"] if s.get("service")} == {"db"}
        now = nodes.task_node(primary, f"{b.name}_db")
        assert now not in (None, lost), now
        # the rest of the stack kept running, untouched
        for svc, cid in others.items():
            assert stacks.container(primary, b.name, svc).id == cid, svc
        got = verifier.fingerprint(primary, "campus", b.name, services=["db"])
        want = {k: v for k, v in b.expected.items() if k.startswith("db/")}
        assert verifier.differences(want, got) == []
    finally:
        _restart_all(cluster)


# DRPLAN_TEST_FULL=1: the full ten trials of the one-node tests; three by default (CI time)
@pytest.mark.timeout(3600)
def test_sigkill_trials_of_backups_of_data_on_workers(testbed, cluster, tmp_path):
    url = testbed["primary"]
    edit_compose, edit = nodes.pinned("helpdesk")
    tp = plans.adapt(
        "helpdesk",
        tmp_path,
        name=f"mnkill{os.urandom(3).hex()}",
        edit_compose=edit_compose,
        edit=edit,
    )
    plans.deploy(url, tp)
    try:
        assert nodes.task_node(cluster["primary"], f"{tp.name}_mariadb") != "primary"
        generator.populate(cluster["primary"], "helpdesk", tp.name, generator.Size.small())
        plans.ok("repo", "init", tp.path)
        plans.ok("backup", tp.path)
        backup_trials(url, tp, trials_here())
    finally:
        plans.remove(url, tp)


@pytest.mark.timeout(3600)
def test_sigkill_trials_of_recoveries_onto_the_recovery_cluster(testbed, backed, tmp_path):
    recovery_trials(testbed, backed["helpdesk"], tmp_path, trials_here())


def _wait_spread(manager, service: str, count: int, timeout: float = 120) -> None:
    """Until the service runs on `count` different nodes."""
    deadline = time.monotonic() + timeout
    while len(set(nodes.task_nodes(manager, service))) < count:
        assert time.monotonic() < deadline, nodes.task_nodes(manager, service)
        time.sleep(0.5)


SHARED = Path("/var/lib/drplan-testbed/shared")  # this host: the sites' "NFS servers"


def test_a_volume_on_shared_storage_is_recreated_on_the_targets_storage(testbed, cluster, tmp_path):
    """campus's uploads on shared storage (a `local` volume bound to a shared directory:
    this kernel has no NFS), web with two replicas on two workers seeing the same files:
    backed up once, recovered into the recovery site's own shared directory
    (`sites.recovery.volume_options`), where both of its replicas see them."""
    name = f"mnshared{os.urandom(3).hex()}"
    here, there = SHARED / "primary" / name, SHARED / "recovery" / name
    for d in (here, there):
        d.mkdir(parents=True)
    edit_compose, edit = nodes.pinned("campus")

    def on_shared_storage(compose: dict) -> None:
        edit_compose(compose)
        opts = {"type": "none", "o": "bind", "device": str(here)}
        compose["volumes"]["files"] = {"driver": "local", "driver_opts": opts}
        compose["services"]["web"]["deploy"]["replicas"] = 2
        compose["services"]["web"]["deploy"]["placement"] = {
            "constraints": ["node.role == worker"],
            "preferences": [{"spread": "node.id"}],
        }

    def dr_storage(plan: dict) -> None:
        edit(plan)
        plan["sites"]["recovery"]["volume_options"] = {
            "files": {"type": "none", "o": "bind", "device": str(there)}
        }
        plan["sites"]["recovery"]["placement"]["web"] = []  # anywhere: both nodes

    tp = plans.adapt("campus", tmp_path, name=name, edit_compose=on_shared_storage, edit=dr_storage)
    url, primary, recovery = testbed["primary"], cluster["primary"], cluster["recovery"]
    plans.deploy(url, tp)
    try:
        _wait_spread(primary, f"{name}_web", 2)  # two nodes, one directory
        generator.populate(primary, "campus", name, generator.Size.small(), seed=7)
        written = sorted(p.name for p in here.rglob("*") if p.is_file())
        assert written, "the uploads did not reach the shared directory"
        plans.ok("repo", "init", tp.path)
        report = ok_json("backup", str(tp.path))
        assert [s["source"] for s in report["sources"] if s["service"] == "web"] == ["files"]
        expected = verifier.fingerprint(primary, "campus", name, services=["web"])
        rec = ok_json("recover", str(tp.path), "--site", "recovery")
        assert rec["ok"] and rec["verified"], rec
        # restored into the recovery site's own shared directory, seen by both replicas
        assert sorted(p.name for p in there.rglob("*") if p.is_file()) == written
        stacks.wait_healthy(recovery, name)
        _wait_spread(recovery, f"{name}_web", 2)
        replicas = nodes.task_containers(recovery, f"{name}_web")
        for c in replicas:
            code, out = stacks.exec_text(c, ["find", "/srv/files", "-type", "f"])
            assert code == 0 and len(out.split()) == len(written), (c.name, out)
        got = verifier.fingerprint(recovery, "campus", name, services=["web"])
        assert verifier.differences(expected, got) == []
    finally:
        plans.remove(url, tp)
        stacks.remove_recovered(testbed["recovery"], name)
        for d in (here, there):
            shutil.rmtree(d, ignore_errors=True)


def test_whole_stacks_recover_onto_the_recovery_cluster_with_every_primary_engine_stopped(
    testbed, backed, cluster, tmp_path
):
    def recover(b) -> dict:
        return ok_json(
            "recover", str(b.plan), "--site", "recovery", "--report-dir", str(tmp_path / b.kind)
        )

    for node in PRIMARY_NODES:
        nodes.stop_engine(node)
    try:
        with ThreadPoolExecutor(2) as pool:
            reports = dict(zip(backed, pool.map(recover, backed.values()), strict=True))
        recovery = cluster["recovery"]
        for kind, b in backed.items():
            report = reports[kind]
            assert report["ok"] and report["verified"], report
            assert report["run_id"] == b.run_id
            stacks.wait_healthy(recovery, b.name, timeout=120)
            assert recovered_services(testbed["recovery"], b.name) == b.services
            got = verifier.fingerprint(recovery, b.kind, b.name)
            assert verifier.differences(b.expected, got) == []
        # the recovery site's own placement: the databases on its data node, as reported
        assert reports["campus"]["placement"]["db"] == "recovery-w1", reports["campus"]
        assert reports["helpdesk"]["placement"]["mariadb"] == "recovery-w1"
        assert nodes.task_node(recovery, f"{backed['campus'].name}_db") == "recovery-w1"
        assert nodes.task_node(recovery, f"{backed['helpdesk'].name}_mariadb") == "recovery-w1"
    finally:
        _restart_all(cluster)
