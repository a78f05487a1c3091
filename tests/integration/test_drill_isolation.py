"""A drill on the primary site leaves production's data alone, on the real testbed.

helpdesk's MariaDB keeps its data in a volume with an explicit `name:`, which the stack
prefix of a drill does not namespace: before drills isolated their compose files, the
drill's MariaDB started on production's data directory and its restore dropped and
recreated production's databases. Here production gets rows the backup does not hold,
then a drill runs on the primary site, beside it: production's data must be exactly as
before, its MariaDB the same container, and the drill's MariaDB must have mounted a
volume of the drill's own (the engine's volume mount events say which).
"""

from __future__ import annotations

import contextlib
import threading
import time

import docker
import pytest

from testbed import generator, plans, sites, stacks, verifier
from testbed.plans import ok, ok_json

pytestmark = pytest.mark.integration
STACK_NS = "com.docker.stack.namespace"


class Mounts:
    """Watches the engine's container creations and volume mounts as they happen (the
    engine keeps only its last 256 events for a later query: health checks flood it)."""

    def __init__(self, client) -> None:
        self.events: list[dict] = []
        self.stream = client.events(decode=True, filters={"event": ["create", "mount"]})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when closed
            for e in self.stream:
                self.events.append(e)

    def of_stack(self, stack: str) -> set[str]:
        """Volumes the containers of `stack` mounted."""
        time.sleep(1)  # the last events are on their way
        self.stream.close()
        self.thread.join(10)
        mine = {
            e["Actor"]["ID"]
            for e in self.events
            if e.get("Type") == "container"
            and e.get("Action") == "create"
            and e["Actor"].get("Attributes", {}).get(STACK_NS) == stack
        }
        return {
            e["Actor"]["ID"]
            for e in self.events
            if e.get("Type") == "volume"
            and e.get("Action") == "mount"
            and e["Actor"].get("Attributes", {}).get("container") in mine
        }


def test_a_drill_beside_production_does_not_touch_its_named_volume(testbed, tmp_path, unique_name):
    url = testbed["primary"]
    client = sites.client(url)
    name = unique_name("isolhd")
    prod_volume = f"{name}-mariadb-prod"

    def named(compose: dict) -> None:
        compose["volumes"]["mariadb-data"] = {"name": prod_volume}

    tp = plans.adapt("helpdesk", tmp_path / "plan", name=name, edit_compose=named)
    validated = ok("validate", str(tp.path)).stdout
    assert f"volume mariadb-data has an explicit name ({prod_volume})" in validated
    try:
        plans.deploy(url, tp)
        generator.populate(client, "helpdesk", name, generator.Size.small(), seed=5)
        ok("repo", "init", str(tp.path))
        assert ok_json("backup", str(tp.path))["complete"] is True
        # production moves on: rows the backup does not hold
        generator.run(client, name, "glpi", ["--seed", "9", "--rows", "25"])
        before = verifier.fingerprint(client, "helpdesk", name, services=["mariadb"])
        db = stacks.container(client, name, "mariadb")
        labels = client.volumes.get(prod_volume).attrs["Labels"]

        watch = Mounts(client)
        rec = ok_json(
            "drill",
            str(tp.path),
            "--site",
            "primary",
            "--profile",
            "ticketing-only",
            "--report-dir",
            str(tmp_path / "reports"),
        )
        assert rec["passed"] and rec["verified"], rec["failure"]
        assert rec["teardown"]["clean"], rec["teardown"]
        assert any(
            "mariadb-data" in line and "isolated copy" in line for line in rec["isolated"]
        ), rec["isolated"]

        # production: the same data, the same MariaDB, the same volume
        after = verifier.fingerprint(client, "helpdesk", name, services=["mariadb"])
        assert verifier.differences(before, after) == []
        assert stacks.container(client, name, "mariadb").id == db.id
        assert client.volumes.get(prod_volume).attrs["Labels"] == labels
        # the drill's MariaDB had a volume of its own, and it is gone
        used = watch.of_stack(rec["stack"])
        assert f"{rec['stack']}_mariadb-data" in used, used
        assert prod_volume not in used, used
        assert not [v for v in client.volumes.list() if v.name.startswith(rec["stack"])]
        assert not list(tp.dir.glob(".drplan-*"))
    finally:
        plans.remove(url, tp)
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.volumes.get(prod_volume).remove(force=True)
