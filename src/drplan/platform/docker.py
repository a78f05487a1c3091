"""The one owner of the Docker Engine API (the `docker` SDK).

Endpoints per site, stacks and services, tasks, exec with stdin/stdout streams, helper
containers, volumes, images save/load. Nothing else in drplan imports the SDK, so remote
engines (tcp/TLS, ssh) and Swarm nodes work the same way everywhere and tests have one seam.
A site is a Swarm cluster: the engine drplan is given (a manager) answers for the
cluster (services, tasks, nodes), and each node's own engine holds that node's containers,
volumes and images. :meth:`DockerEngine.on` gives the engine of a node (reached through
the site's `nodes` endpoints); an engine so obtained hands cluster questions back to its
manager, and every container drplan gets carries the node it runs on, so an exec or a
removal goes to the right engine whoever is asked (docs/design/nodes.md).

No SDK object leaves this module either: callers get small typed values
(:class:`Container`, :class:`SwarmService`, :class:`Mount`, :class:`ExecResult`) and
ask the engine to act on them (`remove_container`, `exec_run`...); what the SDK or its
HTTP layer raises out of a public method becomes an :class:`OperationError` naming the
site (`_translate_errors`), so a caller handles one error type and the CLI prints it
without a traceback.

The SDK is imported when the first engine is created (or any `docker.X` is first
used: `_LazySdk`), not with this module: importing it (with requests and urllib3) costs
about 0.15 s, and the commands that never talk to an engine (`drplan validate`, `drplan
plan`, `--help`) import this module through the actions and must start fast (under 1 s
for a 500-service plan). Its names are imported here for type checkers only.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import io
import json
import os
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from drplan import labels, owner, process
from drplan.errors import OperationError
from drplan.plan.model import TlsFiles
from drplan.plan.placement import Node
from drplan.platform import image_archive
from drplan.platform.stdio_bridge import StdioBridge, ssh_argv, tls_argv

HELPER_LABEL = labels.HELPER
OWNER_LABEL = labels.OWNER
SCALED_LABEL = labels.SCALED_DOWN_FROM
_STDERR = 2
STACK_LABEL = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.swarm.service.name"
# Swarm task states after which the agent creates or starts nothing more for the task
TERMINAL_TASK_STATES = frozenset(
    {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}
)


if TYPE_CHECKING:
    import docker
    import docker.errors
    import docker.models.containers
    import docker.models.services
    import docker.types


def _sdk() -> Any:
    """The docker SDK, imported on first use (see the module docstring)."""
    global docker
    if isinstance(docker, _LazySdk):
        import docker as sdk
        import docker.errors
        import docker.models.containers
        import docker.models.services
        import docker.types

        docker = sdk
    return docker


class _LazySdk:
    """Stands for the SDK until it is imported: the first `docker.X` imports it, so no
    code path depends on an engine having been created first."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_sdk(), name)


if not TYPE_CHECKING:
    docker = _LazySdk()


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class Container:
    """A container on an engine, as drplan sees it (never the SDK's object)."""

    id: str
    name: str
    image_id: str = ""
    state: str = ""
    """created, running, exited, dead..."""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    node: str = ""
    """The Swarm node id of the engine that holds it ("" when not in a swarm)."""


@dataclass(frozen=True)
class SwarmService:
    """A Swarm service, as drplan sees it."""

    id: str
    name: str
    """Its full name: `STACK_service` for a stack's service."""
    replicas: int | None
    """Replicas asked for; None for a global service (one task per node)."""
    image: str = ""
    """The image it runs, as its spec names it, without the `@sha256:` pin."""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def stack(self) -> str | None:
        return self.labels.get(STACK_LABEL)


@dataclass(frozen=True)
class Mount:
    """A volume or host path mounted into a helper container."""

    target: str
    source: str
    type: Literal["volume", "bind"] = "volume"
    read_only: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    """What a running container really has, as `drplan init --from-stack` reads it: its
    environment (every variable's name; a value only where the caller's `readable` said
    so, "" otherwise: secrets never leave this module) and its mounts."""

    env: Mapping[str, str]
    mounts: tuple[Mount, ...]


def _container_of(c: docker.models.containers.Container, node: str = "") -> Container:
    return Container(
        id=c.id,
        name=c.name,
        image_id=c.attrs.get("Image") or "",
        state=(c.attrs.get("State") or {}).get("Status", ""),
        labels=dict(c.labels or {}),
        node=node,
    )


def _listed_container(c: dict) -> Container:
    """A container from the API's list (`GET /containers/json`)."""
    return Container(
        id=c["Id"],
        name=(c.get("Names") or ["?"])[0].lstrip("/"),
        image_id=c.get("ImageID") or "",
        state=c.get("State") or "",
        labels=dict(c.get("Labels") or {}),
    )


def _service_of(attrs: dict) -> SwarmService:
    """A service from its API document (an SDK service's `attrs` or a listed one)."""
    spec = attrs.get("Spec") or {}
    mode = spec.get("Mode") or {}
    replicas = int(mode["Replicated"].get("Replicas", 1)) if "Replicated" in mode else None
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return SwarmService(
        id=attrs.get("ID", ""),
        name=spec.get("Name", ""),
        replicas=replicas,
        image=(container_spec.get("Image") or "").split("@", 1)[0],
        labels=dict(spec.get("Labels") or {}),
    )


def client_timeout(default: float = 600) -> float:
    """The Engine API client's read timeout for ordinary calls (DRPLAN_ENGINE_TIMEOUT, s).
    Exec streams do not use it: see `_Liveness`."""
    try:
        return float(os.environ.get("DRPLAN_ENGINE_TIMEOUT", default))
    except ValueError:
        return default


def tls_from_env() -> TlsFiles | None:
    """TLS files as the docker CLI finds them: `DOCKER_CERT_PATH` (default ~/.docker)
    holding ca.pem, cert.pem and key.pem, when `DOCKER_TLS_VERIFY` is set (non-empty)."""
    if not os.environ.get("DOCKER_TLS_VERIFY"):
        return None
    base = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    return TlsFiles(
        ca=os.path.join(base, "ca.pem"),
        cert=os.path.join(base, "cert.pem"),
        key=os.path.join(base, "key.pem"),
    )


def _one_pool(client: Any) -> None:
    """One pool of kept-alive connections for the whole engine, not one per URL.

    The SDK's unix-socket adapter keys its connection pools by the request's full URL
    (`/images/<id>/json`, `/containers/<id>/json`...), so nearly every request opened a new
    connection. On a local socket that is cheap; behind the bridge of an ssh:// or TLS
    engine (platform/stdio_bridge.py) each one was a new ssh session or TLS handshake:
    listing 14 images took 14 sessions. The socket is the same whatever the URL, so one
    pool serves them all."""
    adapter = getattr(client.api, "_custom_adapter", None)
    if adapter is None or not hasattr(adapter, "pools"):
        return
    per_url = adapter.get_connection

    def get_connection(url: str, proxies: Any = None) -> Any:
        return per_url("http+docker://localhost", proxies)

    adapter.get_connection = get_connection


#: reaches a node's engine: (hostname, address) -> Docker URL, or None when the site
#: says nothing of that node (the plan's `sites.NAME.nodes`)
NodeUrl = Callable[[str, str], "str | None"]


class DockerEngine:
    """A Docker engine: one site of the plan (its manager), or one node of a site's
    cluster (`on`), which then asks its manager about services and tasks."""

    def __init__(
        self,
        site: str,
        url: str,
        *,
        timeout: float | None = None,
        node_url: NodeUrl | None = None,
        manager: DockerEngine | None = None,
        hostname: str = "",
        ssh_config: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.site = site
        self.url = url  # as the plan names it (messages); the API goes to api_url
        self.timeout = timeout if timeout is not None else client_timeout()
        self.manager = manager
        self.hostname = hostname
        self.ssh_config = ssh_config
        self.tls = (tls or tls_from_env()) if url.startswith("tcp://") else None
        self._node_url = node_url
        self._node_id: str | None = None
        self._node_engines: dict[str, DockerEngine] = {}
        self._nodes_seen: tuple[float, list[Node]] | None = None
        self._bridge: StdioBridge | None = None
        try:
            if url.startswith("ssh://"):
                self._bridge = StdioBridge(ssh_argv(url, ssh_config))
            elif self.tls is not None:
                self._bridge = StdioBridge(tls_argv(url, self.tls))
        except (ValueError, OSError) as exc:
            raise OperationError(
                f"cannot reach the Docker engine at {url!r}: {exc}", where=f"site {site}"
            ) from exc
        self.api_url = self._bridge.url if self._bridge else url
        sdk = _sdk()
        try:
            self.client = sdk.DockerClient(base_url=self.api_url, timeout=self.timeout)
            _one_pool(self.client)
            self.client.ping()
        except Exception as exc:  # the SDK raises many kinds for an unreachable engine
            said = self._bridge.error() if self._bridge else ""
            self.close()
            hint = (
                f"; an engine listening with --tlsverify needs sites.{site}.tls"
                if url.startswith("tcp://") and not self.tls
                else ""
            )
            raise OperationError(
                f"the Docker engine at {url} is unreachable "
                f"({said or _short(exc)}){hint}",
                where=f"site {site}",
            ) from exc

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def close(self) -> None:
        """Close this engine and the node engines reached through it (their ssh or TLS
        bridges' processes end with them)."""
        for node in self._node_engines.values():
            node.close()
        self._node_engines.clear()
        if getattr(self, "client", None) is not None:
            self.client.close()
        if self._bridge is not None:
            self._bridge.close()

    # -- swarm and stacks -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The engine's `docker info`: its version, its Swarm state and role."""
        return self.client.info()

    def swarm_state(self) -> str:
        return self.info().get("Swarm", {}).get("LocalNodeState", "inactive")

    def ensure_swarm(self) -> bool:
        """Initialise Swarm mode if needed; True when it was initialised now."""
        if self.swarm_state() == "active":
            return False
        try:
            self.client.swarm.init(advertise_addr="127.0.0.1")
        except docker.errors.APIError as exc:
            raise OperationError(
                f"cannot initialise Swarm: {_short(exc)}", where=self.where
            ) from exc
        return True

    @property
    def where(self) -> str:
        return f"site {self.site}, node {self.hostname}" if self.manager else f"site {self.site}"

    # -- nodes of the site's cluster ---------------------------------------------------

    @property
    def node_id(self) -> str:
        """This engine's Swarm node id ("" when it is in no swarm)."""
        if self._node_id is None:
            info = self.client.info()
            self._node_id = str((info.get("Swarm") or {}).get("NodeID") or "")
            self.hostname = self.hostname or str(info.get("Name") or "")
        return self._node_id

    @property
    def node_name(self) -> str:
        """This engine's node hostname, as Swarm names the node."""
        if not self.hostname:
            _ = self.node_id
        return self.hostname

    def nodes(self, *, fresh: bool = False) -> list[Node]:
        """The cluster's nodes, as the manager sees them (kept for 5 s: several steps ask
        at once). None but this engine's own when it is not a swarm manager."""
        if self.manager is not None:
            return self.manager.nodes(fresh=fresh)
        now = time.monotonic()
        if not fresh and self._nodes_seen and now - self._nodes_seen[0] < 5:
            return self._nodes_seen[1]
        try:
            found = [Node.from_api(n) for n in self.api.nodes()]
        except docker.errors.APIError as exc:
            if exc.status_code != 503:  # 503: not a swarm manager
                raise
            found = []
        self._nodes_seen = (now, found)
        return found

    def multi_node(self) -> bool:
        return len(self.nodes()) > 1

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes() if n.id == node_id), None)

    def node_named(self, hostname: str) -> Node | None:
        return next((n for n in self.nodes() if n.hostname == hostname), None)

    def on(self, node_id: str) -> DockerEngine:
        """The engine of node `node_id` of this site's cluster ("" or this engine's own
        node: this engine). Reached through the site's `nodes` endpoints; an engine that
        turns out to be another node than asked is refused."""
        if self.manager is not None:
            return self.manager.on(node_id)
        if not node_id or node_id == self.node_id:
            return self
        if node_id in self._node_engines:
            return self._node_engines[node_id]
        node = self.node(node_id)
        if node is None:
            node = next((n for n in self.nodes(fresh=True) if n.id == node_id), None)
        name = node.hostname if node else node_id
        url = self._node_url(name, node.addr if node else "") if self._node_url else None
        if not url:
            raise OperationError(
                f"the data is on node {name}, and drplan reaches another node's engine only "
                f"through the site's `nodes` endpoints (sites.{self.site}.nodes names no "
                f"{name!r} and no '*')",
                where=self.where,
            )
        engine = DockerEngine(
            self.site,
            url,
            timeout=self.timeout,
            manager=self,
            hostname=name,
            ssh_config=self.ssh_config,
            tls=self.tls,
        )
        if engine.node_id != node_id:
            engine.close()
            raise OperationError(
                f"the engine at {url} (sites.{self.site}.nodes) is not node {name}: it is "
                f"{'in no swarm' if not engine.node_id else 'node ' + engine.node_id}",
                where=self.where,
            )
        self._node_engines[node_id] = engine
        return engine

    def node_engines(self) -> list[DockerEngine]:
        """This engine and the engine of every other ready node drplan can reach: where
        a whole-site sweep (helpers, volumes, images) must go. A node without an
        endpoint, or unreachable, is left out."""
        if self.manager is not None:
            return self.manager.node_engines()
        out: list[DockerEngine] = [self]
        for n in self.nodes():
            if n.id == self.node_id or n.state != "ready":
                continue
            try:
                out.append(self.on(n.id))
            except OperationError:
                continue
        return out

    def task_nodes(self, stack: str, name: str) -> list[str]:
        """Node ids of the service's running tasks."""
        if self.manager is not None:
            return self.manager.task_nodes(stack, name)
        return sorted(
            {
                t["NodeID"]
                for t in self._tasks(f"{stack}_{name}")
                if t.get("NodeID") and (t.get("Status") or {}).get("State") == "running"
            }
        )

    def volume_nodes(self, name: str) -> list[str]:
        """Node ids of the reachable nodes holding a volume of this name."""
        return [e.node_id for e in self.node_engines() if e.volume_exists(name)]

    def _tasks(self, service: str) -> list[dict]:
        try:
            return self.api.tasks(filters={"service": service})
        except docker.errors.NotFound:
            return []

    def _holder(self, container: Container) -> DockerEngine:
        """The engine holding the container."""
        if not container.node or container.node == self.node_id:
            return self
        return (self.manager or self).on(container.node)

    def distribute_images(self, names: list[str]) -> list[str]:
        """Copy the images (as this engine holds them) to every other ready node drplan
        reaches that lacks them, engine to engine (`docker save | docker load`): Swarm
        may place a task on any node, and no registry is assumed. Returns the hostnames
        served."""
        ids = {n: self.image_id(n) for n in names}
        served = []
        for engine in self.node_engines():
            if engine is self:
                continue
            missing = [n for n in names if ids[n] and engine.image_id(n) != ids[n]]
            if missing:
                engine.load_images(self.save_images(missing))
                served.append(engine.hostname)
        return served

    def stack_deploy(
        self,
        stack: str,
        compose_files: list[str],
        *,
        prune: bool = True,
        inherit_env: bool = True,
        variables: dict[str, str] | None = None,
    ) -> None:
        """`docker stack deploy` (no Engine API call exists for it).

        `prune` removes the stack's services that the files no longer name (callers gate
        it: it is destructive). With `inherit_env` False the CLI gets no more environment
        than it needs: a compose file read back from a repository must not interpolate
        `${DRPLAN_REPO_PASSWORD}` or any other variable of the operator's into a service.
        `variables`: what the project's `.env` sets (the CLI reads no `.env`, Compose does),
        so the stack deployed gets the values drplan read.
        """
        argv = ["docker", "stack", "deploy", "--resolve-image", "never"]
        if prune:
            argv.append("--prune")
        for f in compose_files:
            argv += ["-c", f]
        env = {**(variables or {}), "DOCKER_HOST": self.api_url}
        if not inherit_env:
            env |= {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}
        process.run(
            [*argv, "--", stack],
            env=env,
            what=f"{self.where}: deploy of stack {stack}",
            timeout=600,
            inherit_env=inherit_env,
        )

    def _services(self, stack: str) -> list[docker.models.services.Service]:
        return self.client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})

    def services(self, stack: str) -> list[SwarmService]:
        """The stack's services."""
        return [_service_of(s.attrs) for s in self._services(stack)]

    def secret_names(self) -> set[str]:
        """Names of the swarm's secrets (none when the engine is not a swarm manager):
        what an `external` secret of a compose file must find before a deploy."""
        return self._object_names(self.client.secrets)

    def config_names(self) -> set[str]:
        """Names of the swarm's configs (none when the engine is not a swarm manager)."""
        return self._object_names(self.client.configs)

    def _object_names(self, collection) -> set[str]:
        try:
            return {str(o.name) for o in collection.list()}
        except docker.errors.APIError as exc:
            if exc.status_code == 503:  # not a swarm manager: it holds none
                return set()
            raise OperationError(
                f"cannot list secrets/configs: {_short(exc)}", where=self.where
            ) from exc

    def swarm_services(self) -> list[SwarmService]:
        """Every service of the engine's swarm (none when it is not a swarm manager)."""
        try:
            return [_service_of(s) for s in self.api.services()]
        except docker.errors.APIError:
            return []

    def all_containers(self) -> list[Container]:
        """Every container of the engine, in any state."""
        return [_listed_container(c) for c in self.api.containers(all=True)]

    def published_ports(self, *, exclude_stack: str | None = None) -> dict[int, str]:
        """{host port: who publishes it} on this engine, from the services' specs (the
        scheduler reserves a host-mode port even for a task not yet running) and from the
        running containers (a plain `docker run -p` holds one too)."""
        out: dict[int, str] = {}
        for svc in self.client.services.list():
            spec = svc.attrs["Spec"]
            if exclude_stack and spec.get("Labels", {}).get(STACK_LABEL) == exclude_stack:
                continue
            endpoint = svc.attrs.get("Endpoint", {}).get("Spec") or spec.get("EndpointSpec", {})
            for p in endpoint.get("Ports") or []:
                if p.get("PublishedPort"):
                    out[int(p["PublishedPort"])] = f"service {svc.name}"
        for c in self.api.containers():
            if exclude_stack and (c.get("Labels") or {}).get(STACK_LABEL) == exclude_stack:
                continue
            for p in c.get("Ports") or []:
                if p.get("PublicPort"):
                    name = (c.get("Names") or ["?"])[0].lstrip("/")
                    out.setdefault(int(p["PublicPort"]), f"container {name}")
        return out

    def _service(self, stack: str, name: str) -> docker.models.services.Service | None:
        found = [s for s in self._services(stack) if s.name == f"{stack}_{name}"]
        return found[0] if found else None

    def service(self, stack: str, name: str) -> SwarmService | None:
        svc = self._service(stack, name)
        return _service_of(svc.attrs) if svc is not None else None

    def service_replicas(self, stack: str, name: str) -> int | None:
        svc = self.service(stack, name)
        return svc.replicas if svc is not None else None

    def scale(self, stack: str, name: str, replicas: int) -> None:
        svc = self._service(stack, name)
        if svc is None:
            raise OperationError(f"service {stack}_{name} does not exist", where=self.where)
        try:
            svc.scale(replicas)
        except docker.errors.APIError as exc:
            raise OperationError(
                f"cannot scale {stack}_{name} to {replicas}: {_short(exc)}", where=self.where
            ) from exc

    def placement(self, stack: str, name: str) -> list[str]:
        """The service's placement constraints as Swarm holds them."""
        svc = self._service(stack, name)
        if svc is None:
            return []
        spec = svc.attrs["Spec"].get("TaskTemplate", {}).get("Placement") or {}
        return list(spec.get("Constraints") or [])

    def set_placement(self, stack: str, name: str, constraints: list[str]) -> None:
        """Replace the service's placement constraints (only that service is updated:
        the rest of the stack keeps running untouched)."""
        svc = self._service(stack, name)
        if svc is None:
            raise OperationError(f"service {stack}_{name} does not exist", where=self.where)
        try:
            svc.update(constraints=list(constraints))
        except docker.errors.APIError as exc:
            raise OperationError(
                f"cannot place {stack}_{name}: {_short(exc)}", where=self.where
            ) from exc

    # A cold backup scales writers to 0. The service itself records, in the same update,
    # how many replicas it had and which drplan process stopped it: if that process dies
    # (SIGKILL, host crash), the next drplan command finds the mark and scales it back.
    # The mark lives on the engine, where production is, not in a file of the host.

    def scale_down_marked(self, stack: str, name: str) -> int | None:
        """Scale a service to 0, marking it with its replicas and owner; its replicas, or
        None when it was already at 0 (or is not replicated)."""
        svc = self._service(stack, name)
        if svc is None:
            raise OperationError(f"service {stack}_{name} does not exist", where=self.where)
        mode = svc.attrs["Spec"].get("Mode", {})
        replicas = int(mode.get("Replicated", {}).get("Replicas", 0)) if "Replicated" in mode else 0
        if not replicas:
            return None
        labels = dict(svc.attrs["Spec"].get("Labels") or {})
        labels[SCALED_LABEL] = str(replicas)
        labels[OWNER_LABEL] = owner.current().label()
        svc.update(mode=docker.types.ServiceMode("replicated", replicas=0), labels=labels)
        return replicas

    def scale_back_marked(self, stack: str, name: str) -> int | None:
        """Scale a marked service back to the replicas it had and remove the mark."""
        svc = self._service(stack, name)
        if svc is None:
            return None
        labels = dict(svc.attrs["Spec"].get("Labels") or {})
        if SCALED_LABEL not in labels:
            return None
        replicas = int(labels.pop(SCALED_LABEL))
        labels.pop(OWNER_LABEL, None)
        svc.update(mode=docker.types.ServiceMode("replicated", replicas=replicas), labels=labels)
        return replicas

    def abandoned_scale_downs(self, stack: str) -> list[str]:
        """Services of the stack left at 0 by a cold backup whose process is provably
        dead (or is this one)."""
        out = []
        for svc in self.services(stack):
            if SCALED_LABEL in svc.labels and owner.removable(svc.labels.get(OWNER_LABEL)):
                out.append(svc.name[len(stack) + 1 :])
        return out

    def _local_containers(
        self, stack: str, name: str, *, running: bool = True
    ) -> list[docker.models.containers.Container]:
        filters = {"label": f"{SERVICE_LABEL}={stack}_{name}"}
        if running:
            filters["status"] = "running"
        for _ in range(5):
            try:
                return self.client.containers.list(all=not running, filters=filters)
            except docker.errors.NotFound:
                continue  # a task container went away while being listed
        return []

    def _containers(
        self, stack: str, name: str, *, running: bool = True
    ) -> list[tuple[docker.models.containers.Container, str]]:
        """The service's containers with their node ids: this engine's own, and, in a
        cluster of several nodes, those of its tasks on the other nodes (asked of those
        nodes' engines)."""
        found = [(c, self.node_id) for c in self._local_containers(stack, name, running=running)]
        if not self.multi_node():
            return found
        for t in self._tasks(f"{stack}_{name}"):
            node = t.get("NodeID") or ""
            status = t.get("Status") or {}
            cid = (status.get("ContainerStatus") or {}).get("ContainerID")
            if not cid or not node or node == self.node_id:
                continue
            if running and status.get("State") != "running":
                continue
            known = self.node(node)
            if known is not None and known.state != "ready":
                continue  # a lost node: its last known task is no container drplan can reach
            try:
                c = self.on(node).client.containers.get(cid)
            except docker.errors.NotFound:
                continue
            if running and c.status != "running":
                continue
            found.append((c, node))
        return found

    def containers(self, stack: str, name: str, *, running: bool = True) -> list[Container]:
        """The service's containers (running ones only, by default), on any node."""
        return [_container_of(c, n) for c, n in self._containers(stack, name, running=running)]

    def wait_running(
        self, stack: str, name: str, deadline: float, *, healthy: bool = True
    ) -> Container:
        """The service's running (and healthy, when it has a healthcheck) container."""
        last = "no task yet"
        while True:
            for c, node in self._containers(stack, name):
                try:
                    c.reload()
                except docker.errors.NotFound:
                    continue
                health = c.attrs["State"].get("Health", {}).get("Status")
                if not healthy or health in (None, "healthy"):
                    return _container_of(c, node)
                last = f"container {c.name} is {health}"
            if time.monotonic() > deadline:
                if last == "no task yet":
                    last = self.task_status(stack, name) or last
                raise OperationError(
                    f"service {stack}_{name} is not {'healthy' if healthy else 'running'} "
                    f"in time ({last})",
                    where=self.where,
                )
            time.sleep(0.3)

    def task_status(self, stack: str, name: str) -> str | None:
        """Swarm's word on the service's newest task ("pending: host-mode port already in
        use on 1 node", "rejected: No such image"): why it has no running container."""
        svc = self._service(stack, name)
        if svc is None:
            return "the service does not exist"
        try:
            tasks = svc.tasks()
        except docker.errors.APIError:
            return None
        if not tasks:
            return None
        status = max(tasks, key=lambda t: t.get("UpdatedAt", ""))["Status"]
        why = status.get("Err") or status.get("Message") or ""
        return f"its newest task is {status.get('State')}: {why}".rstrip(": ")

    def wait_stopped(self, stack: str, name: str, deadline: float) -> None:
        while self.containers(stack, name):
            if time.monotonic() > deadline:
                raise OperationError(
                    f"service {stack}_{name} did not stop in time", where=self.where
                )
            time.sleep(0.3)

    # -- what a running container shows (drplan init --from-stack) ---------------------

    def container_config(
        self, container: Container, *, readable: Callable[[str, str], bool]
    ) -> ContainerConfig:
        """The container's environment and mounts (`docker inspect`). A variable's value
        is kept only when `readable(name, value)` is true; others come back as ""."""
        holder = self._holder(container)
        if holder is not self:
            return holder.container_config(container, readable=readable)
        attrs = self.api.inspect_container(container.id)
        env: dict[str, str] = {}
        for item in (attrs.get("Config") or {}).get("Env") or []:
            name, _, value = str(item).partition("=")
            env[name] = value if readable(name, value) else ""
        mounts = tuple(
            Mount(
                target=mt.get("Destination", ""),
                source=mt.get("Name") or mt.get("Source") or "",
                type="bind" if mt.get("Type") == "bind" else "volume",
                read_only=not mt.get("RW", True),
            )
            for mt in attrs.get("Mounts") or []
            if mt.get("Type") in ("volume", "bind") and mt.get("Destination")
        )
        return ContainerConfig(env=env, mounts=mounts)

    def process_names(self, container: Container) -> list[str]:
        """The names of the programs running in the container (`docker top`, which needs
        no tool inside it), each the base name of its command's first word, never the
        rest of the line (a command line may carry a password)."""
        holder = self._holder(container)
        if holder is not self:
            return holder.process_names(container)
        top = self.api.top(container.id)
        titles = [str(t).upper() for t in top.get("Titles") or []]
        column = next((titles.index(t) for t in ("CMD", "COMMAND") if t in titles), None)
        if column is None:
            return []
        names = []
        for row in top.get("Processes") or []:
            words = str(row[column]).split() if len(row) > column else []
            if words:
                names.append(words[0].rsplit("/", 1)[-1].rstrip(":"))
        return names

    def path_kind(self, container: Container, path: str) -> Literal["dir", "file"] | None:
        """Whether `path` exists in the container, a directory or another file (the
        Engine API's stat of an archive path: no tool needed inside the container, and
        nothing is read); None when it does not exist."""
        holder = self._holder(container)
        if holder is not self:
            return holder.path_kind(container, path)
        res = self.api.head(
            self.api._url("/containers/{0}/archive", container.id), params={"path": path}
        )
        if res.status_code == 404:
            return None
        self.api._raise_for_status(res)
        header = res.headers.get("X-Docker-Container-Path-Stat", "")
        try:
            mode = int(json.loads(base64.b64decode(header) or b"{}").get("mode", 0))
        except (ValueError, TypeError):
            return "file"
        return "dir" if mode & (1 << 31) else "file"  # Go's os.ModeDir

    # -- exec streams -----------------------------------------------------------------
    #
    # Three rules, each learnt from a way a restore can go wrong (threat model, classes
    # 4-6): an exec's exit status is read only once the engine says the process has ended
    # (an unknown status is a failure, never a success); an exec's stream has no read
    # timeout (a replay that prints nothing for an hour is working, not stuck), liveness
    # is judged by asking the engine about the process; and a consumer fed from a source
    # that fails is killed before it can see end-of-input, so it never commits a partial
    # stream.

    def _exec_start(self, exec_id: str):
        """Start an exec; return (response, buffered reader of its output, raw socket).

        The output is read from the HTTP response's buffered reader, not from the raw
        socket under it as the SDK's `exec_start` does: when the command's first bytes
        arrive in the same packet as the response headers, the HTTP parser has already
        buffered them, and reading the raw socket loses them. Under load that truncated
        outputs or desynchronised the frames ("97 is not a valid stream", docker-py
        #3160); a dump must never lose its first bytes.
        The socket's read timeout (the client's) is lifted: `_Liveness` watches instead.
        """
        res = self.api._post_json(
            self.api._url("/exec/{0}/start", exec_id),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": False, "Detach": False},
            stream=True,
        )
        self.api._raise_for_status(res)
        reader = res.raw._fp.fp
        sock = getattr(reader.raw, "_sock", reader.raw)
        with contextlib.suppress(OSError, AttributeError):
            sock.settimeout(None)
        return res, reader, sock

    def _exec_create(
        self, container: Container, argv: list[str], *, stdin: bool, env: dict[str, str] | None
    ) -> str:
        try:
            return self.api.exec_create(
                container.id, argv, stdin=stdin, stdout=True, stderr=True, environment=env
            )["Id"]
        except docker.errors.APIError as exc:
            raise OperationError(
                f"cannot run {' '.join(argv[:3])} in {container.name}: {_short(exc)}",
                where=self.where,
            ) from exc

    def exit_status(self, exec_id: str, *, grace: float | None = None) -> int:
        """The exit status of an exec, once the engine says its process has ended.

        The output stream can end before the engine records the status (ExitCode is
        then null and Running true): that is waited for, never read as 0. A status still
        unknown after `grace` seconds fails.
        """
        deadline = time.monotonic() + (EXIT_GRACE_S if grace is None else grace)
        while True:
            info = self.api.exec_inspect(exec_id)
            code = info.get("ExitCode")
            if code is not None and not info.get("Running"):
                return int(code)
            if time.monotonic() > deadline:
                raise OperationError(
                    "the engine reports no exit status for a command whose output ended "
                    "(treated as a failure)",
                    where=self.where,
                )
            time.sleep(0.2)

    def exec_out(
        self,
        container: Container,
        argv: list[str],
        *,
        what: str,
        env: dict[str, str] | None = None,
    ) -> Iterator[bytes]:
        """Run argv in the container and yield its stdout as it comes.

        When the stream ends, the exit status is checked: a non-zero or unknown status
        raises OperationError naming `what`, the command and stderr — a failed dump is
        never mistaken for a short one.
        """
        holder = self._holder(container)
        if holder is not self:
            return (yield from holder.exec_out(container, argv, what=what, env=env))
        exec_id = self._exec_create(container, argv, stdin=False, env=env)
        res, reader, sock = self._exec_start(exec_id)
        err = bytearray()
        with _Liveness(self, exec_id, sock):
            try:
                for stream, data in _frames(reader):
                    if stream == _STDERR:
                        err += data[-8192:]
                        del err[:-8192]
                    elif data:
                        yield data
            finally:
                res.close()
        code = self.exit_status(exec_id)
        if code:
            raise OperationError(
                f"{' '.join(argv[:4])} exited with status {code}: {process.tail(bytes(err))}",
                where=what,
            )

    def exec_run(
        self,
        container: Container,
        argv: list[str],
        *,
        what: str,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> ExecResult:
        return self._exec(container, argv, None, what=what, env=env, check=check)

    def exec_in(
        self,
        container: Container,
        argv: list[str],
        chunks: Iterable[bytes],
        *,
        what: str,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> ExecResult:
        """Run argv in the container with `chunks` streamed to its stdin.

        If `chunks` fails (the restic dump feeding a replay died), the command is killed
        before its stdin is closed, so it never takes a truncated stream for a whole one,
        and the source's error is raised. The command is started through `sh` for that
        (it reports its pid first), which every database image has.
        """
        return self._exec(container, argv, chunks, what=what, env=env, check=check)

    def _exec(
        self,
        container: Container,
        argv: list[str],
        chunks: Iterable[bytes] | None,
        *,
        what: str,
        env: dict[str, str] | None,
        check: bool,
    ) -> ExecResult:
        holder = self._holder(container)
        if holder is not self:
            return holder._exec(container, argv, chunks, what=what, env=env, check=check)
        fed = chunks is not None
        run_argv = ["sh", "-c", _PID_WRAPPER, "sh", *argv] if fed else argv
        exec_id = self._exec_create(container, run_argv, stdin=fed, env=env)
        res, reader, raw = self._exec_start(exec_id)
        collected: dict[str, bytes] = {}
        read_error: list[BaseException] = []
        pid: list[str] = []
        pid_seen = threading.Event()

        def consume() -> None:
            out, err = bytearray(), bytearray()
            try:
                for stream, data in _frames(reader):
                    if stream == _STDERR:
                        err.extend(data)
                        if fed and not pid_seen.is_set() and b"\n" in err:
                            first, _, rest = bytes(err).partition(b"\n")
                            if first.startswith(_PID_MARK):
                                pid.append(first[len(_PID_MARK) :].decode().strip())
                                err[:] = rest
                            pid_seen.set()
                    else:
                        out.extend(data)
            except BaseException as exc:  # reported by the caller's thread
                read_error.append(exc)
            finally:
                pid_seen.set()
            collected["out"], collected["err"] = bytes(out), bytes(err)

        t = threading.Thread(target=consume, daemon=True)
        feed_error: BaseException | None = None
        with _Liveness(self, exec_id, raw):
            t.start()
            try:
                for chunk in chunks or ():
                    raw.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command stopped reading: its exit status says why
            except BaseException as exc:  # the source failed (e.g. restic dump)
                feed_error = exc
                self._kill_exec(container, exec_id, pid, pid_seen)
            finally:
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_WR)
            t.join()
            res.close()
        if feed_error is not None:
            raise feed_error
        if read_error:
            raise OperationError(
                f"{' '.join(argv[:4])}: reading its output failed ({_short(read_error[0])})",
                where=what,
            )
        res_ = ExecResult(
            self.exit_status(exec_id), collected.get("out", b""), collected.get("err", b"")
        )
        if check and res_.exit_code != 0:
            raise OperationError(
                f"{' '.join(argv[:4])} exited with status {res_.exit_code}: "
                f"{process.tail(res_.stderr) or process.tail(res_.stdout)}",
                where=what,
            )
        return res_

    def _kill_exec(self, container: Container, exec_id: str, pid: list[str], pid_seen) -> None:
        """SIGKILL an exec's process (its stdin still open) and wait until it has ended."""
        pid_seen.wait(30)
        if pid and pid[0].isdigit():
            with contextlib.suppress(Exception):
                kill = self.api.exec_create(
                    container.id, ["sh", "-c", 'kill -KILL "$1"', "sh", pid[0]]
                )["Id"]
                self.api.exec_start(kill)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if not self.api.exec_inspect(exec_id).get("Running"):
                    return
            time.sleep(0.2)

    # -- helper containers ----------------------------------------------------------------

    def start_helper(
        self,
        image: str,
        *,
        mounts: list[Mount],
        labels: dict[str, str],
        files: dict[str, bytes] | None = None,
        network: str | None = None,
        hostname: str = "drplan-helper",
    ) -> Container:
        """A short-lived container that idles so drplan can exec into it.

        Volumes are read and written through such helpers on the engine that holds them,
        so data never transits through a temporary copy. `files` are copied in before
        start, so they appear in no `docker inspect`. Every helper carries its owner
        (host, boot, pid: `drplan.owner`), so only a dead owner's helpers are ever
        removed by another run. `remove_container` removes it.
        """
        try:
            c = self.client.containers.create(
                image,
                ["sleep", "86400"],
                mounts=[
                    docker.types.Mount(m.target, m.source, type=m.type, read_only=m.read_only)
                    for m in mounts
                ],
                labels={HELPER_LABEL: "1", OWNER_LABEL: owner.current().label(), **labels},
                network_mode=network or "bridge",
                hostname=hostname,
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise OperationError(
                f"cannot create a helper container: {_short(exc)}", where=self.where
            ) from exc
        try:
            if files:
                c.put_archive("/", _tar(files))
            c.start()
        except Exception:
            c.remove(force=True)
            raise
        return Container(
            id=c.id, name=c.name, state="running", labels=dict(c.labels or {}), node=self.node_id
        )

    def remove_container(self, container: Container) -> None:
        """Remove a container (a helper), running or not; one already gone is no error."""
        holder = self._holder(container)
        if holder is not self:
            return holder.remove_container(container)
        try:
            self.api.remove_container(container.id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise OperationError(
                    f"cannot remove container {container.name}: {_short(exc)}", where=self.where
                ) from exc

    def remove_helpers(self, labels: dict[str, str], *, only_dead: bool = True) -> int:
        """Remove helper containers with these labels that a dead run left.

        With `only_dead` (the default) a helper is removed only when it is this
        process's own or its owner is provably dead (`drplan.owner`): another live
        operation's helpers are left to it. `only_dead=False` removes them all. Asked of
        a site's manager, every node drplan reaches is swept (helpers run next to data).
        """
        engines = self.node_engines() if self.manager is None and self.multi_node() else [self]
        return sum(e._remove_helpers_here(labels, only_dead=only_dead) for e in engines)

    def _remove_helpers_here(self, labels: dict[str, str], *, only_dead: bool) -> int:
        filters = {"label": [f"{HELPER_LABEL}=1", *(f"{k}={v}" for k, v in labels.items())]}
        found = [
            c
            for c in self.api.containers(all=True, filters=filters)
            if not only_dead or owner.removable((c.get("Labels") or {}).get(OWNER_LABEL))
        ]
        ids = {c["Id"] for c in found}
        for c in found:
            try:
                self.api.remove_container(c["Id"], force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # removed at this very moment by its own run (e.g. a drill interrupted
                # while a restore ends): wait for that removal instead of failing
                if "already in progress" not in str(exc):
                    raise
        deadline = time.monotonic() + 60
        while ids & {c["Id"] for c in self.api.containers(all=True, filters=filters)}:
            if time.monotonic() > deadline:
                raise OperationError("helper containers are still being removed", where=self.where)
            time.sleep(0.2)
        return len(found)

    @staticmethod
    def volume_mount(volume: str, target: str, *, read_only: bool = False) -> Mount:
        return Mount(target, volume, type="volume", read_only=read_only)

    @staticmethod
    def bind_mount(path: str, target: str, *, read_only: bool = False) -> Mount:
        return Mount(target, path, type="bind", read_only=read_only)

    # -- volumes ----------------------------------------------------------------------

    def volume_exists(self, name: str) -> bool:
        try:
            self.client.volumes.get(name)
            return True
        except docker.errors.NotFound:
            return False

    def create_volume(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        *,
        driver: str | None = None,
        driver_opts: dict[str, str] | None = None,
    ) -> None:
        """Create a volume unless it exists. `driver`/`driver_opts`: as the compose file
        (or the site) declares them: a volume on shared storage (NFS, a bind to a shared
        directory) must be created on it, not as a plain local directory."""
        if not self.volume_exists(name):
            self.client.volumes.create(
                name, driver=driver or "local", driver_opts=driver_opts or {}, labels=labels or {}
            )

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(name).remove(force=True)

    def remove_unused_volume(self, name: str) -> bool:
        """Remove a volume unless a container uses it (False then): for volumes shared by
        every drplan process on the engine, such as the restic cache."""
        try:
            self.client.volumes.get(name).remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # "volume is in use"
                return False
            raise
        return True

    # -- images -----------------------------------------------------------------------

    def image_id(self, name: str) -> str | None:
        try:
            return self.client.images.get(name).id
        except docker.errors.ImageNotFound:
            return None

    def save_images(self, names: list[str]) -> Iterator[bytes]:
        """`docker save` of several images as one tar stream (shared layers stored once),
        exported one image at a time: the engine stages each export on its disk. In a
        cluster, an image this engine lacks is exported from a node that has it."""
        return image_archive.merge(
            (self.find_image(name) or (self, ""))[0]._export_image(name) for name in names
        )

    def find_image(self, name: str) -> tuple[DockerEngine, str] | None:
        """(engine, image id) of this engine, else of the first other node holding the
        image: a Swarm node pulls only the images of the tasks it runs."""
        image_id = self.image_id(name)
        if image_id is not None:
            return self, image_id
        if self.manager is not None or not self.multi_node():
            return None
        for engine in self.node_engines():
            found = engine.image_id(name) if engine is not self else None
            if found is not None:
                return engine, found
        return None

    def _export_image(self, name: str) -> Iterator[bytes]:
        try:
            chunks = self.api.get_image(name, chunk_size=1 << 20)
        except docker.errors.APIError as exc:
            raise OperationError(
                f"cannot export image {name}: {_short(exc)}", where=self.where
            ) from exc
        yield from chunks

    def load_images(self, chunks: Iterable[bytes]) -> None:
        try:
            for _ in self.api.load_image(data=chunks, quiet=True):
                pass
        except docker.errors.APIError as exc:
            raise OperationError(f"docker load failed: {_short(exc)}", where=self.where) from exc

    def import_image(self, data: bytes, repository: str, tag: str, changes: list[str]) -> None:
        self.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)

    def remove_stack(self, stack: str, *, volumes: bool = True, timeout: float = 180) -> None:
        """Remove a stack's services, then its networks and (by default) its volumes,
        waiting for its containers to be gone. Nothing else is touched.

        Each container gets its graceful stop; once stopped, it is removed here rather
        than waited for: Swarm's agent reaps the tasks of removed services seconds later
        (about 10 s on a one-node swarm), which a drill's teardown need not wait for.
        """
        label = f"{STACK_LABEL}={stack}"
        ids = set()
        for svc in self._services(stack):
            ids.add(svc.id)
            with contextlib.suppress(docker.errors.NotFound):
                svc.remove()
        deadline = time.monotonic() + timeout
        while True:
            # a task still on its way (pending .. starting) may yet create a container
            live = [
                t
                for t in self.api.tasks()
                if t.get("ServiceID") in ids
                and t.get("Status", {}).get("State") not in TERMINAL_TASK_STATES
            ]
            left = self.api.containers(all=True, filters={"label": label})
            if not live and not left:
                break
            for c in left:
                # a "created" container is one the agent may be about to start: removed
                # only once no task of the stack is still on its way
                if c.get("State") in ("exited", "dead") or (
                    not live and c.get("State") == "created"
                ):
                    with contextlib.suppress(docker.errors.APIError):
                        self.api.remove_container(c["Id"], force=True)
            if time.monotonic() > deadline:
                raise OperationError(f"stack {stack} did not stop in time", where=self.where)
            time.sleep(0.3)
        while True:
            try:
                for net in self.api.networks(filters={"label": label}):
                    self.api.remove_network(net["Id"])
                if volumes:
                    for e in self.node_engines():
                        for v in e.api.volumes(filters={"label": label}).get("Volumes") or []:
                            e.api.remove_volume(v["Name"], force=True)
                return
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)  # a network or volume still held by a task being torn down

    # -- what an engine holds (drills clean up exactly what they created) ----------------

    def volumes_labelled(self, label: str) -> list[dict]:
        """Volumes carrying `label` (`key` or `key=value`), with their labels."""
        return [
            {"name": v["Name"], "labels": v.get("Labels") or {}}
            for v in self.api.volumes(filters={"label": label}).get("Volumes") or []
        ]

    def inventory(self) -> dict[str, set[str]]:
        """Names of every container, volume and network, and the ids of every image."""
        return {
            "containers": {c["Names"][0].lstrip("/") for c in self.api.containers(all=True)},
            "volumes": {v["Name"] for v in self.api.volumes().get("Volumes") or []},
            "networks": {n["Name"] for n in self.api.networks()},
            "images": {i["Id"] for i in self.api.images(all=False)},
        }

    def image_users(self, image_id: str) -> list[str]:
        """Names of the containers (any state) created from this image id."""
        return [
            c["Names"][0].lstrip("/")
            for c in self.api.containers(all=True)
            if c.get("ImageID") == image_id
        ]

    def remove_image(self, ref: str) -> bool:
        """Remove an image (or one tag of it); False when it is absent or in use."""
        try:
            self.api.remove_image(ref, noprune=False)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError:
            return False

    def tag_image(self, image_id: str, name: str) -> None:
        repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
        self.api.tag(image_id, repo, tag or "latest", force=True)

    def any_service(self) -> bool:
        try:
            return bool(self.api.services())
        except docker.errors.APIError:
            return False

    def leave_swarm(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.client.swarm.leave(force=True)

    def remove_network(self, name: str) -> bool:
        try:
            self.api.remove_network(name)
            return True
        except docker.errors.APIError:
            return False


def _sdk_errors() -> tuple[type[BaseException], ...]:
    """What the SDK raises: its own errors, and its HTTP layer's (engine unreachable)."""
    import requests.exceptions  # imported with the SDK already

    return (_sdk().errors.DockerException, requests.exceptions.RequestException)


def _translated(fn: Callable) -> Callable:
    """`fn` (a method of DockerEngine), raising OperationError for the SDK's errors."""

    def failed(engine: DockerEngine, exc: BaseException) -> OperationError:
        return OperationError(
            f"the Docker engine at {engine.url} failed ({fn.__name__.replace('_', ' ')}): "
            f"{_short(exc)}",
            where=engine.where,
        )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(self: DockerEngine, *args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(self, *args, **kwargs))
            except _sdk_errors() as exc:
                raise failed(self, exc) from exc

        return generator

    @functools.wraps(fn)
    def method(self: DockerEngine, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except _sdk_errors() as exc:
            raise failed(self, exc) from exc

    return method


def _translate_errors(cls: type) -> None:
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, _translated(member))


#: what only a manager knows (services, tasks, the stack): a node's engine asks its own
_CLUSTER_OPS = [
    "stack_deploy",
    "services",
    "secret_names",
    "config_names",
    "swarm_services",
    "published_ports",
    "service",
    "service_replicas",
    "scale",
    "scale_down_marked",
    "scale_back_marked",
    "abandoned_scale_downs",
    "containers",
    "wait_running",
    "task_status",
    "wait_stopped",
    "remove_stack",
    "any_service",
    "placement",
    "set_placement",
]


def _to_manager(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def method(self: DockerEngine, *args: Any, **kwargs: Any) -> Any:
        if self.manager is not None:
            return getattr(self.manager, fn.__name__)(*args, **kwargs)
        return fn(self, *args, **kwargs)

    return method


def _cluster_ops(cls: type) -> None:
    for name in _CLUSTER_OPS:
        setattr(cls, name, _to_manager(getattr(cls, name)))


_translate_errors(DockerEngine)
_cluster_ops(DockerEngine)


# A command fed on stdin is started as `sh -c _PID_WRAPPER sh ARGV...`: it writes its pid
# on stderr first, so a failing feed can kill it before it sees end-of-input.
_PID_MARK = b"drplan-exec-pid:"
_PID_WRAPPER = 'echo "drplan-exec-pid:$$" >&2; exec "$@"'
# how long an ended output may wait for the engine to record the exit status
EXIT_GRACE_S = 60.0


class _Liveness:
    """Watches a running exec whose stream has no read timeout.

    Every `interval` seconds it asks the engine whether the process still runs. If the
    engine stops answering for longer than the client timeout, or reports the process
    ended while its stream stays open past a grace period, the stream is shut down so
    the reader wakes up; the exit status then decides (unknown is a failure). A silent
    process that runs is never interrupted, however long it takes.
    """

    def __init__(self, engine: DockerEngine, exec_id: str, sock, *, interval: float | None = None):
        self.engine, self.exec_id, self.sock = engine, exec_id, sock
        self.interval = interval or max(1.0, min(30.0, engine.timeout / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Liveness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        unreachable_since = ended_since = None
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            try:
                running = bool(self.engine.api.exec_inspect(self.exec_id).get("Running"))
                unreachable_since = None
            except Exception:
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.engine.timeout:
                    self._cut()
                    return
                continue
            if running:
                ended_since = None
            else:
                ended_since = ended_since or now
                if now - ended_since > max(EXIT_GRACE_S, self.interval * 2):
                    self._cut()
                    return

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o400
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _frames(reader) -> Iterator[tuple[int, bytes]]:
    """The (stream, payload) frames of a non-TTY exec's output, until EOF.

    Docker multiplexes stdout and stderr in frames of an 8-byte header (stream id,
    3 zero bytes, big-endian length) and the payload.
    """
    while True:
        header = reader.read(8)
        if not header:
            return
        if len(header) < 8:
            raise OperationError(f"truncated exec output frame header ({len(header)} bytes)")
        stream, size = struct.unpack(">BxxxL", header)
        if stream not in (0, 1, 2):
            raise OperationError(f"unexpected exec output stream id {stream}")
        payload = reader.read(size) if size else b""
        if len(payload) < size:
            raise OperationError(f"truncated exec output frame ({len(payload)} of {size} bytes)")
        yield stream, payload
