"""On the real engines: a stack's external secret must exist on the recovery site, its
file secret travels with the run, and its placement constraint is the one the plan maps
for the recovery site.

The stack is one service with an external secret (under a `name:` of its own), a file
secret kept in the plan's folder, and a placement constraint no recovery node satisfies;
the plan maps it, for the recovery site, to that site's node. It is backed up from the
primary (nothing runs there: the run holds the image and the plan), then recovered with
the repository alone: refused while the external secret is missing, naming it and its
service, with nothing deployed; once it is created, recovered, the task reading both
secrets, under the mapped constraint.
"""

from __future__ import annotations

import contextlib
import os

import docker.errors
import pytest
import yaml

from testbed import sites, stacks
from testbed.plans import PASSWORD_ENV, ok, ok_json
from testbed.plans import drplan as run

pytestmark = pytest.mark.integration

API_KEY = b"api-key-from-the-vault"
DB_PASS = "db-pass-kept-with-the-run"


def _write(dest, name: str, external: str, testbed: dict, hostname: str) -> None:
    (dest / "secrets").mkdir()
    (dest / "secrets" / "db_pass.txt").write_text(DB_PASS)
    compose = {
        "version": "3.8",
        "services": {
            "app": {
                "image": "drplan-tb/app:latest",
                "command": ["sleep", "100000"],
                "secrets": ["api_key", "db_pass"],
                "healthcheck": {
                    "test": [
                        "CMD-SHELL",
                        "test -s /run/secrets/api_key -a -s /run/secrets/db_pass",
                    ],
                    "interval": "1s",
                    "retries": 30,
                },
                "deploy": {
                    "endpoint_mode": "dnsrr",
                    "placement": {"constraints": ["node.labels.drplan_zone == primary"]},
                },
            }
        },
        "secrets": {
            "api_key": {"external": True, "name": external},
            "db_pass": {"file": "./secrets/db_pass.txt"},
        },
    }
    plan = {
        "version": 1,
        "stack": {"name": name, "compose": "compose.yml"},
        "sites": {
            "primary": {"role": "primary", "docker_host": testbed["primary"]},
            "recovery": {
                "role": "recovery",
                "docker_host": testbed["recovery"],
                "placement": {"app": [f"node.hostname == {hostname}"]},
            },
        },
        "repositories": {
            "local": {
                "url": str(dest / "repo"),
                "role": "primary",
                "password": {"env": PASSWORD_ENV},
            }
        },
        "backup": {"schedule": {"every": "1h"}, "retention": {"keep_daily": 7}},
        "objectives": {"rto": "15m", "rpo": "1h"},
        "services": {"app": {"tier": "P1"}},
    }
    (dest / "compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    (dest / "drplan.yml").write_text(yaml.safe_dump(plan, sort_keys=False))


def _remove_secrets(client, stack: str, external: str) -> None:
    for secret in client.secrets.list(filters={"label": f"com.docker.stack.namespace={stack}"}):
        with contextlib.suppress(docker.errors.APIError):
            secret.remove()
    for secret in client.secrets.list(filters={"name": external}):
        with contextlib.suppress(docker.errors.APIError):
            secret.remove()


def test_secrets_are_checked_recreated_and_placement_mapped(testbed, tmp_path):
    client = sites.client(testbed["recovery"])
    hostname = client.info()["Name"]
    name = f"sx{os.urandom(3).hex()}"
    external = f"{name}_vault_api_key"
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    _write(plan_dir, name, external, testbed, hostname)
    plan = plan_dir / "drplan.yml"
    fresh = tmp_path / "fresh-host"
    fresh.mkdir()
    try:
        checked = ok("validate", str(plan))
        assert f"secret {external} (must exist before recovering; used by app)" in checked.stderr
        ok("repo", "init", str(plan))
        assert ok_json("backup", str(plan))["complete"] is True
        repo = str(plan_dir / "repo")

        refused = run("recover", "--repo", repo, "--site", "recovery", cwd=fresh)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert f"secret {external} (needed by app)" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert stacks.services(client, name) == []
        assert client.secrets.list(filters={"label": f"com.docker.stack.namespace={name}"}) == []

        client.secrets.create(name=external, data=API_KEY)
        report = ok_json("recover", "--repo", repo, "--site", "recovery", cwd=fresh)
        assert report["ok"], report

        [svc] = stacks.services(client, name)
        placement = svc.attrs["Spec"]["TaskTemplate"].get("Placement", {})
        assert placement.get("Constraints") == [f"node.hostname == {hostname}"]
        stacks.wait_healthy(client, name, timeout=120)
        box = stacks.container(client, name, "app")
        assert stacks.exec_text(box, ["cat", "/run/secrets/api_key"]) == (0, API_KEY.decode())
        assert stacks.exec_text(box, ["cat", "/run/secrets/db_pass"]) == (0, DB_PASS)
    finally:
        stacks.remove_recovered(testbed["recovery"], name, name)
        _remove_secrets(client, name, external)
