"""Which node of a site's cluster each data source is processed on.

A local volume or a bind-mounted directory exists on one node only: its backup must run
on that node (native dumps exec in the task's container there, volume copies mount it in
a helper there), and its restore must write it on the node where Swarm will run the
service, which drplan decides and then pins (docs/design/nodes.md). A volume on shared
storage (`driver_opts`, NFS in production) is the same data from every node: any node
holding it will do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from drplan.errors import InputError, OperationError
from drplan.plan import model as m
from drplan.plan import placement
from drplan.plan.compose import ComposeProject
from drplan.platform.docker import DockerEngine


def backup_engine(
    engine: DockerEngine, stack: str, service: str, volume: str | None, *, shared: bool
) -> DockerEngine:
    """The engine of the node holding `service`'s data: the node of its running task,
    else (a service scaled to 0) the one node holding the volume."""
    if not engine.multi_node():
        return engine
    nodes = engine.task_nodes(stack, service)
    if nodes:
        return engine.on(nodes[0])
    if volume is None:
        return engine
    holders = engine.volume_nodes(volume)
    if len(holders) > 1 and not shared:
        names = ", ".join(sorted((engine.node(n) or placement_stub(n)).hostname for n in holders))
        raise OperationError(
            f"no task of service {stack}_{service} runs and volume {volume} exists on "
            f"nodes {names}: drplan cannot tell which copy holds the data (start the "
            "service, or remove the stale copies)",
            where=f"service {service}",
        )
    return engine.on(holders[0]) if holders else engine


def placement_stub(node_id: str) -> placement.Node:
    return placement.Node(id=node_id, hostname=node_id, role="worker")


def is_shared(project: ComposeProject, volume_key: str | None) -> bool:
    """Whether the compose file's volume is on shared storage (ComposeObject.shared)."""
    spec = project.volume_specs.get(volume_key) if volume_key else None
    return spec is not None and spec.shared


@dataclass
class Targets:
    """Where each service of a recovery runs on the target site."""

    nodes: dict[str, placement.Node] = field(default_factory=dict)
    pins: dict[str, list[str]] = field(default_factory=dict)


def recovery_targets(
    engine: DockerEngine,
    plan: m.Plan,
    project: ComposeProject,
    site_name: str,
    site: m.Site,
    services: list[str],
    stack: str,
) -> Targets:
    """The node of every service holding node-local data, refused up front (InputError
    naming each service and why every node was excluded) when the site's nodes cannot
    satisfy the constraints; services without node-local data only need one usable node."""
    nodes = engine.nodes()
    if not nodes:
        return Targets()
    constraints: dict[str, list[str]] = {}
    local: dict[str, list[str]] = {}
    for name in services:
        compose_svc = project.services.get(name)
        written = list(compose_svc.placement) if compose_svc else []
        effective = list(site.placement.get(name, written))
        constraints[name] = effective
        if any(
            src.bind or (src.volume and not is_shared(project, src.volume))
            for src in plan.services[name].data.values()
        ):
            local[name] = effective
    # a service already running on a ready node that suits it stays there (a node-loss
    # recovery moves only what the lost node ran)
    staying: dict[str, placement.Node] = {}
    for name in list(local):
        for node_id in engine.task_nodes(stack, name):
            node = engine.node(node_id)
            if node is not None and node in placement.eligible(local[name], nodes):
                staying[name] = node
                del local[name]
                break
    try:
        chosen = placement.assign(local, nodes, site=site_name)
        refusals = list(chosen.refusals)
        for name, wanted in constraints.items():
            if name not in local and not placement.eligible(wanted, nodes):
                refusals += placement.assign({name: wanted}, nodes, site=site_name).refusals
    except ValueError as exc:
        raise InputError(str(exc), where=f"site {site_name}") from None
    if refusals:
        raise InputError(
            "the site cannot run the stack as placed; nothing was changed:\n  "
            + "\n  ".join(refusals)
            + f"\nmap the placement for this site (sites.{site_name}.placement) or add nodes",
            where=f"site {site_name}",
        )
    if len(nodes) < 2:
        return Targets()  # one node: Swarm has no choice to make
    targets = Targets(nodes=dict(chosen.nodes), pins={s: chosen.pins(s) for s in chosen.nodes})
    for name, node in staying.items():
        targets.nodes[name] = node
        targets.pins[name] = [*constraints[name], f"node.hostname == {node.hostname}"]
    # a service mounting another's node-local volume (app + worker sharing uploads) must
    # run where that volume is restored
    held = {
        src.volume: name
        for name in chosen.nodes
        for src in plan.services[name].data.values()
        if src.volume
    }
    for name in services:
        if name in targets.nodes or (svc := project.services.get(name)) is None:
            continue
        for mount in svc.mounts:
            owner = held.get(mount.source or "") if mount.type == "volume" else None
            if owner is not None:
                node = targets.nodes[owner]
                targets.nodes[name] = node
                targets.pins[name] = [*constraints[name], f"node.hostname == {node.hostname}"]
                break
    return targets


def pinned(doc: dict, pins: Mapping[str, list[str]]) -> dict:
    """A compose document whose services in `pins` carry those placement constraints."""
    services = doc.get("services")
    if not isinstance(services, dict) or not pins:
        return doc
    for name, constraints in pins.items():
        svc = services.get(name)
        if not isinstance(svc, dict):
            continue
        deploy = dict(svc.get("deploy") or {})
        where = dict(deploy.get("placement") or {})
        where["constraints"] = list(constraints)
        deploy["placement"] = where
        svc["deploy"] = deploy
    return doc
