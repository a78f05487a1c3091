"""The nodes of the testbed's clusters (scripts/testbed): reach each node's own engine, and
make the workers take tasks for the multi-node tests.

Each node is an engine at /run/drplan/HOSTNAME/docker.sock. Between tests the workers are
drained, so a stack deployed by any other test runs on its site's manager; a multi-node
test activates them (`workers_active`) and drains them again when it ends. Written
against the SDK only, independently of drplan's own node code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import docker

RUN = "/run/drplan"
#: the `nodes` entry of a site in a testbed plan
NODE_URLS = {"*": f"unix://{RUN}/{{hostname}}/docker.sock"}


# where production pins its data (compose), and the recovery site's own mapping (plan)
PLACEMENT = {
    "campus": (
        {
            "db": ["node.labels.storage == local"],
            "redis": ["node.labels.zone == c"],
            "web": ["node.labels.storage == local"],
        },
        {
            "db": ["node.labels.tier == data"],
            "redis": ["node.labels.zone == dr"],
            "web": ["node.labels.zone == dr"],
        },
    ),
    "helpdesk": (
        {"mariadb": ["node.labels.storage == local"], "glpi": ["node.role == worker"]},
        {"mariadb": ["node.labels.tier == data"]},
    ),
}


def pinned(kind: str):
    """(edit_compose, edit) for `plans.adapt`: the stack's data pinned to workers as in
    production, and the plan's sites given their node endpoints and the recovery site
    its own placement."""

    def edit_compose(compose: dict) -> None:
        for svc, constraints in PLACEMENT[kind][0].items():
            deploy = compose["services"][svc].setdefault("deploy", {})
            deploy["placement"] = {"constraints": constraints}

    def edit(plan: dict) -> None:
        for site in plan["sites"].values():
            site["nodes"] = dict(NODE_URLS)
        plan["sites"]["recovery"]["placement"] = PLACEMENT[kind][1]

    return edit_compose, edit


def url(hostname: str) -> str:
    return f"unix://{RUN}/{hostname}/docker.sock"


def client_of(hostname: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url(hostname), timeout=120)


def hostname(manager: docker.DockerClient, node_id: str) -> str:
    return manager.nodes.get(node_id).attrs["Description"]["Hostname"]


def workers(manager: docker.DockerClient) -> list:
    return [n for n in manager.nodes.list() if n.attrs["Spec"]["Role"] == "worker"]


def set_workers(manager: docker.DockerClient, availability: str) -> None:
    """Every worker of the cluster at `availability`. A node that just restarted bumps
    its spec version under us ("update out of sequence"): read it again and retry."""
    for node in workers(manager):
        for attempt in range(50):
            node.reload()
            spec = dict(node.attrs["Spec"])
            if spec.get("Availability") == availability:
                break
            spec["Availability"] = availability
            try:
                node.update(spec)
                break
            except docker.errors.APIError as exc:
                if "out of sequence" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.2)


@contextlib.contextmanager
def workers_active(*managers: docker.DockerClient) -> Iterator[None]:
    """The sites' workers take tasks while the block runs; drained again after it."""
    try:
        for m in managers:
            set_workers(m, "active")
        yield
    finally:
        for m in managers:
            with contextlib.suppress(docker.errors.APIError):
                set_workers(m, "drain")


def engines(manager: docker.DockerClient) -> list[docker.DockerClient]:
    """The manager's client and one for every other ready node of its cluster."""
    out = [manager]
    try:
        own = manager.info()["Swarm"].get("NodeID")
        listed = manager.nodes.list()
    except docker.errors.APIError:
        return out
    for node in listed:
        if node.id != own and node.attrs["Status"]["State"] == "ready":
            out.append(client_of(node.attrs["Description"]["Hostname"]))
    return out


def task_containers(manager: docker.DockerClient, service: str) -> list:
    """The running containers of a service's tasks, each read from its node's engine."""
    out = []
    for task in manager.api.tasks(filters={"service": service, "desired-state": "running"}):
        status = task.get("Status") or {}
        cid = (status.get("ContainerStatus") or {}).get("ContainerID")
        if status.get("State") != "running" or not cid or not task.get("NodeID"):
            continue
        node = client_of(hostname(manager, task["NodeID"]))
        with contextlib.suppress(docker.errors.NotFound):
            out.append(node.containers.get(cid))
    return out


def task_nodes(manager: docker.DockerClient, service: str) -> list[str]:
    """The hostnames of the nodes running the service's tasks (one per running task)."""
    return [
        hostname(manager, t["NodeID"])
        for t in manager.api.tasks(filters={"service": service, "desired-state": "running"})
        if (t.get("Status") or {}).get("State") == "running" and t.get("NodeID")
    ]


def task_node(manager: docker.DockerClient, service: str) -> str | None:
    """The hostname of the node running the service's task (None: no running task)."""
    for task in manager.api.tasks(filters={"service": service, "desired-state": "running"}):
        if (task.get("Status") or {}).get("State") == "running" and task.get("NodeID"):
            return hostname(manager, task["NodeID"])
    return None


def holding_volume(manager: docker.DockerClient, volume: str) -> docker.DockerClient:
    """The engine (the manager's or a node's) holding a volume of that name."""
    with contextlib.suppress(docker.errors.NotFound):
        manager.volumes.get(volume)
        return manager
    try:
        nodes = manager.nodes.list()
    except docker.errors.APIError:
        nodes = []
    for node in nodes:
        client = client_of(node.attrs["Description"]["Hostname"])
        try:
            client.volumes.get(volume)
            return client
        except (docker.errors.NotFound, docker.errors.DockerException):
            continue
    return manager


def stop_engine(node: str) -> None:
    """Stop a node's engine as a power cut would leave it: SIGTERM, then SIGKILL after
    60 s (`scripts/testbed up` starts it again)."""
    pid = int(Path(f"{RUN}/{node}/docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def wait_node_down(manager: docker.DockerClient, name: str, timeout: float = 120) -> None:
    """Until the manager sees node `name` down (a stopped engine is seen after its
    heartbeats stop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = next(
            (n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == name), None
        )
        if node is None or node.attrs["Status"]["State"] == "down":
            return
        time.sleep(0.5)
    raise TimeoutError(f"node {name} is still not down after {timeout}s")
