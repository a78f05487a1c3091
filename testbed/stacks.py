"""Wait for and remove the testbed's stacks (deployed by `plans.deploy`); inspect their tasks.

The tests read containers and tasks with the SDK, and the oracle runs commands in them
through the docker CLI (see `exec_text`).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import docker

from testbed import nodes

STACKS = Path(__file__).resolve().parent / "stacks"


def services(client: docker.DockerClient, name: str) -> list:
    return client.services.list(filters={"label": f"com.docker.stack.namespace={name}"})


def container(client: docker.DockerClient, name: str, service: str):
    """The running container of service `service` of stack `name`."""
    found = client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={name}_{service}", "status": "running"}
    )
    if not found:  # on another node of the cluster
        with contextlib.suppress(docker.errors.APIError):
            found = nodes.task_containers(client, f"{name}_{service}")
    if not found:
        raise LookupError(f"no running container for {name}_{service}")
    return found[0]


def wait_healthy(client: docker.DockerClient, name: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        pending = []
        svcs = services(client, name)
        for svc in svcs:
            short = svc.name.removeprefix(f"{name}_")
            try:
                c = container(client, name, short)
                c.reload()
                health = c.attrs["State"].get("Health", {}).get("Status", "healthy")
                if health != "healthy":
                    pending.append(f"{short}({health})")
            except (LookupError, docker.errors.NotFound):
                pending.append(f"{short}(no task)")
        if svcs and not pending:
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"stack {name} not healthy after {timeout}s: {', '.join(pending)}; "
        f"tasks: {_task_states(client, name)}"
    )


def _task_states(client: docker.DockerClient, name: str) -> dict[str, list[str]]:
    """The last tasks of each service of the stack, as state and Swarm's message: why a
    service has no running container (rejected, pending on a port, failing to start)."""
    out: dict[str, list[str]] = {}
    for svc in services(client, name):
        try:
            tasks = sorted(svc.tasks(), key=lambda t: t.get("UpdatedAt", ""))[-3:]
        except docker.errors.APIError as exc:
            out[svc.name] = [f"cannot list tasks: {exc}"]
            continue
        out[svc.name] = [
            f"{t['Status'].get('State')}: {t['Status'].get('Err') or t['Status'].get('Message')}"
            for t in tasks
        ]
    return out


def docker_host(client) -> str:
    """The DOCKER_HOST URL a docker SDK client talks to."""
    adapter = getattr(client.api, "_custom_adapter", None)
    if getattr(adapter, "socket_path", None):
        return f"unix://{adapter.socket_path}"
    return client.api.base_url.replace("https://", "tcp://").replace("http://", "tcp://")


def exec_text(container, cmd: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run cmd in the container with the docker CLI; (exit code, its stdout, or its
    stdout and stderr when it failed).

    The tests' oracle and data generator read command output through the CLI, not the
    SDK: the SDK's exec can lose the first bytes of an output under load (docker-py
    #3160), and the oracle must not share the product's own exec code either.
    """
    proc = subprocess.run(
        ["docker", "--host", docker_host(container.client), "exec", container.id, *cmd],
        capture_output=True,
        timeout=timeout,
    )
    out = proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr
    return proc.returncode, out.decode(errors="replace")


def remove(url: str, name: str, timeout: float = 120) -> None:
    """Remove stack `name` with its containers, volumes and networks, and wait until gone."""
    client = docker.DockerClient(base_url=url)
    label = f"com.docker.stack.namespace={name}"
    for svc in services(client, name):
        svc.remove()
    # The tasks' containers are killed rather than waited through their graceful stop:
    # this tears down a test's stack, nothing in it needs to shut down cleanly.
    deadline = time.monotonic() + timeout
    engines = nodes.engines(client)  # every node: a worker holds its tasks and volumes
    while time.monotonic() < deadline:
        left = [
            (e, c) for e in engines for c in e.api.containers(all=True, filters={"label": label})
        ]
        if not left:
            break
        for e, c in left:
            with contextlib.suppress(docker.errors.APIError):
                e.api.remove_container(c["Id"], force=True)
        time.sleep(0.3)
    while time.monotonic() < deadline:
        try:
            for net in client.networks.list(filters={"label": label}):
                net.remove()
            for e in engines:
                for vol in e.volumes.list(filters={"label": label}):
                    vol.remove(force=True)
            return
        except docker.errors.APIError:
            time.sleep(0.5)  # a network or volume still in use by a task being torn down
    raise TimeoutError(f"stack {name} not removed after {timeout}s")


def remove_recovered(url: str, name: str, plan: str | None = None) -> None:
    """Remove a stack drplan recovered, with its volumes, helpers and recovery journal."""
    remove(url, name)
    client = docker.DockerClient(base_url=url)
    label = f"org.drplan.plan={plan or name}"
    for e in nodes.engines(client):
        for c in e.api.containers(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound):
                e.api.remove_container(c["Id"], force=True)
    try:
        client.volumes.get("drplan-journal")
    except docker.errors.NotFound:
        return
    client.containers.run(
        "drplan-tb/app:latest",
        ["rm", "-f", f"/journal/{name}.jsonl"],
        remove=True,
        network_mode="none",
        volumes={"drplan-journal": {"bind": "/journal"}},
        labels={"org.drplan.test": "cleanup"},
    )
