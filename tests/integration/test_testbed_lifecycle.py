"""scripts/testbed: `up` is idempotent, `down` leaves nothing of the testbed behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from testbed import sites

pytestmark = pytest.mark.integration
SCRIPT = str(sites.SCRIPT)


def _dockerd_pids() -> dict[str, str]:
    return {
        site: Path(f"/run/drplan/{site}/docker.pid").read_text().strip()
        for site in ("primary", "recovery")
        if Path(f"/run/drplan/{site}/docker.pid").exists()
    }


def test_up_twice_is_a_noop(testbed):
    before = _dockerd_pids()
    out = subprocess.run(["bash", SCRIPT, "up"], check=True, capture_output=True, text=True)
    assert sites.parse_env(out.stdout) == testbed
    assert out.stderr == "", out.stderr  # nothing started, built or loaded
    assert _dockerd_pids() == before


@pytest.mark.exclusive  # stops both engines
def test_down_leaves_nothing_behind(testbed, unique_name):
    client = sites.client(testbed["recovery"])
    vol = client.volumes.create(unique_name("leftover"))
    client.containers.create("drplan-tb/app:latest", ["true"], volumes={vol.name: {"bind": "/v"}})
    client.close()
    try:
        subprocess.run(["bash", SCRIPT, "down"], check=True, capture_output=True, text=True)
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "drplan-" not in netns
        assert not Path("/run/drplan/primary").exists()
        assert not Path("/run/drplan/recovery").exists()
        procs = subprocess.run(["pgrep", "-af", "dockerd"], capture_output=True, text=True).stdout
        assert "/run/drplan/" not in procs, procs
    finally:
        again = sites.up()
    assert again == testbed
    client = sites.client(testbed["recovery"])
    assert client.containers.list(all=True) == []
    assert client.volumes.list() == []
    assert client.info()["Swarm"]["LocalNodeState"] == "active"
    assert os.path.exists("/run/drplan/recovery/docker.sock")
