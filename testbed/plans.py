"""Per-test copies of the testbed's plans: a unique stack name, private repository, ports.

    tp = plans.adapt("campus", tmp_path, name="campusab12cd")
    plans.deploy(primary_url, tp)            # the adapted compose file, waited healthy
    tp = plans.adapt("helpdesk", tmp_path, name=..., copies={"offsite": {"url": ...}},
                     edit=lambda p: p["services"]["glpi"]["data"]["attachments"]
                                     .update(method="cold"))

The compose file and drplan.yml of `testbed/stacks/KIND` are copied into DEST; the plan's
`stack.name` becomes `name`, its primary repository a directory under DEST (or
`repo_url`), and the published (host-mode) ports free ones, so tests never share a stack,
a repository or a port with another test (or with a stack deployed by hand). Copies are
added as `role: copy` repositories with the same password reference unless one is given.
`drplan(...)` runs the real console script, as a user would.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import yaml

from testbed import stacks
from testbed.stacks import STACKS

PASSWORD_ENV = "DRPLAN_REPO_PASSWORD"
PASSWORD = "backup-tests-secret"
DRPLAN = str(Path(sys.executable).parent / "drplan")


@dataclass
class TestPlan:
    path: Path  # the plan file
    name: str  # the stack name
    kind: str  # campus | helpdesk
    repo: str  # the primary repository url
    ports: dict[str, dict[int, int]] = field(default_factory=dict)  # service: {target: published}

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def compose(self) -> Path:
        return self.dir / "compose.yml"

    def port(self, service: str, target: int = 8080) -> int:
        return self.ports[service][target]


def load(kind: str) -> dict:
    return yaml.safe_load((STACKS / kind / "drplan.yml").read_text())


def _used_ports(urls: list[str]) -> set[int]:
    used: set[int] = set()
    for url in urls:
        client = docker.DockerClient(base_url=url)
        for svc in client.services.list():
            for p in svc.attrs.get("Spec", {}).get("EndpointSpec", {}).get("Ports", []) or []:
                used.add(int(p.get("PublishedPort", 0)))
        client.close()
    return used


def adapt(
    kind: str,
    dest: Path,
    *,
    name: str,
    repo_url: str | None = None,
    copies: dict[str, dict] | None = None,
    edit: Callable[[dict], None] | None = None,
    edit_compose: Callable[[dict], None] | None = None,
    docker_hosts: list[str] | None = None,
) -> TestPlan:
    """Write an adapted plan and compose file into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    plan = load(kind)
    compose = yaml.safe_load((STACKS / kind / "compose.yml").read_text())
    hosts = docker_hosts or [s["docker_host"] for s in plan["sites"].values()]
    used = _used_ports(hosts)
    ports: dict[str, dict[int, int]] = {}
    rng = random.Random()
    for svc_name, svc in compose["services"].items():
        for p in svc.get("ports", []):
            while (port := rng.randrange(20000, 30000)) in used:
                pass
            used.add(port)
            p["published"] = port
            ports.setdefault(svc_name, {})[int(p["target"])] = port
    if edit_compose is not None:
        edit_compose(compose)
    (dest / "compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    plan["stack"]["name"] = name
    plan["stack"]["compose"] = "compose.yml"
    primary = next(n for n, r in plan["repositories"].items() if r.get("role") == "primary")
    repo = repo_url or str(dest / "repo")
    plan["repositories"][primary]["url"] = repo
    for repo_name, spec in (copies or {}).items():
        entry = {"role": "copy", "password": {"env": PASSWORD_ENV}, **copy.deepcopy(spec)}
        plan["repositories"][repo_name] = entry
    if edit is not None:
        edit(plan)
    path = dest / "drplan.yml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return TestPlan(path=path, name=name, kind=kind, repo=repo, ports=ports)


def deploy(url: str, tp: TestPlan, timeout: float = 240) -> None:
    """Deploy the adapted compose file as stack `tp.name` and wait until it is healthy."""
    subprocess.run(
        ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(tp.compose),
         tp.name],
        check=True, capture_output=True, text=True, env={**os.environ, "DOCKER_HOST": url},
    )
    stacks.wait_healthy(docker.DockerClient(base_url=url), tp.name, timeout)


def remove(url: str, tp: TestPlan) -> None:
    """Remove the stack with its volumes, and any drplan helper container of its plan."""
    client = docker.DockerClient(base_url=url)
    for c in client.containers.list(all=True, filters={"label": f"org.drplan.plan={tp.name}"}):
        c.remove(force=True)
    stacks.remove(url, tp.name)


# -- the real CLI -------------------------------------------------------------------------


def drplan(*args: str, password: str | None = PASSWORD, env: dict | None = None,
           timeout: float = 900, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    full.pop(PASSWORD_ENV, None)
    if password is not None:
        full[PASSWORD_ENV] = password
    t0 = time.monotonic()
    proc = subprocess.run([DRPLAN, *map(str, args)], capture_output=True, text=True, env=full,
                          timeout=timeout, cwd=cwd)
    if os.environ.get("DRPLAN_TEST_TIMING"):  # where the suite's time goes
        with open(os.environ["DRPLAN_TEST_TIMING"], "a") as fh:
            fh.write(f"{time.monotonic() - t0:7.2f} {' '.join(map(str, args[:2]))}\n")
    return proc


def ok(*args: str, **kw) -> subprocess.CompletedProcess:
    proc = drplan(*args, **kw)
    assert proc.returncode == 0, (
        f"drplan {' '.join(map(str, args))} exited {proc.returncode}:\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def ok_json(*args: str, **kw):
    return json.loads(ok(*args, "--json", **kw).stdout)


def restic_env(repo: str, password: str = PASSWORD) -> dict[str, str]:
    return {**os.environ, "RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD": password}
