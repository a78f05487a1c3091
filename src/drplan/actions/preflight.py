"""Can each site run a recovery now? (`drplan preflight`)

A drill answers that fully, and rarely: it rebuilds the stack. What fails first on the day
of a disaster is cheaper to find every day: the recovery site's engine no longer answers
(a rotated TLS certificate, a host key that changed, a node renamed), its nodes no longer
satisfy the stack's placement, or the repository cannot be read from there (a firewall,
a moved SFTP key, a local path the nodes do not share). Each is checked here the way a
recovery would meet it, through the same functions, and nothing is changed on any site:
the only thing started is one helper container per node that reads the repository's
config with restic (the recovery's own helper image and environment), removed at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from drplan import labels as lbl
from drplan.actions import nodes
from drplan.actions.context import PlanContext, open_engine
from drplan.errors import DrplanError
from drplan.platform.docker import DockerEngine
from drplan.sources.volume import holding
from drplan.store.restic import Repository

OK, WARN, FAIL = "ok", "warning", "failed"


@dataclass
class Check:
    site: str
    what: str
    status: str  # ok | warning | failed
    detail: str


def preflight(pc: PlanContext, sites: list[str] | None = None) -> list[Check]:
    """Every check of every site named (default: all of the plan's), in order."""
    names = sites or list(pc.plan.sites)
    for name in names:
        pc.site(name)  # an unknown site is an input error, before anything is reached
    out: list[Check] = []
    repos = [pc.repository()]  # the primary's password: without it nothing can be checked
    primary = pc.plan.primary_repository()
    for rname, spec in pc.plan.repositories.items():
        if rname == primary or spec.role != "copy":
            continue
        try:
            repos.append(pc.repository(rname))
        except DrplanError as exc:  # e.g. its password is not set here: said, not fatal
            out.append(Check("-", f"repository {rname}", FAIL, exc.message))
    for name in names:
        out += _site(pc, name, repos)
    return out


def _site(pc: PlanContext, name: str, repos: list[Repository]) -> list[Check]:
    site_name, site = pc.site(name)
    checks: list[Check] = []

    def add(what: str, status: str, detail: str) -> None:
        checks.append(Check(site_name, what, status, detail))

    try:
        engine = open_engine(site_name, site)
    except DrplanError as exc:
        add("engine", FAIL, exc.message)
        return checks
    try:
        info = engine.info()
        add("engine", OK, f"{site.docker_host}: Docker {info.get('ServerVersion', '?')}")
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            add("swarm", WARN, "not in Swarm mode: a recovery initialises it (one node)")
        elif not swarm.get("ControlAvailable"):
            add("swarm", FAIL, "this engine is a worker: docker_host must name a manager")
            return checks
        else:
            add("swarm", OK, f"manager of {len(engine.nodes())} node(s)")
        reachable = _nodes(engine, add)
        if site.role == "recovery":
            _placement(pc, engine, site_name, site, {e.node_id for e in reachable}, add)
        for node in reachable:
            for repo in repos if site.role == "recovery" else repos[:1]:
                _repository_from(pc, node, repo, add)
    except DrplanError as exc:  # the engine went away mid-way: said, not raised
        add("engine", FAIL, exc.message)
    finally:
        engine.close()
    return checks


def _nodes(engine: DockerEngine, add) -> list[DockerEngine]:
    """The engines of the site's usable nodes; each node's state said."""
    reachable = [engine]
    for node in engine.nodes():
        label = f"node {node.hostname}"
        if node.id == engine.node_id:
            continue
        if node.state != "ready":
            add(label, WARN, f"{node.state}: its data and tasks are out of reach")
            continue
        if node.availability != "active":
            add(label, WARN, f"{node.availability}: Swarm places nothing there")
            continue
        try:
            reachable.append(engine.on(node.id))
        except DrplanError as exc:  # a failure only if a recovery puts data there
            add(label, WARN, exc.message)
            continue
        add(label, OK, f"reached at {reachable[-1].url}")
    return reachable


def _placement(
    pc: PlanContext, engine: DockerEngine, site_name: str, site, reachable: set[str], add
) -> None:
    """Where a recovery of the full stack would put each service holding node-local
    data (refused up front, as the recovery itself refuses, when no node suits one); a
    node chosen for data must be one drplan reaches, or the restore could not run."""
    services = list(pc.plan.services)
    try:
        targets = nodes.recovery_targets(
            engine, pc.plan, pc.compose, site_name, site, services, pc.stack_name(site)
        )
    except DrplanError as exc:
        add("placement", FAIL, exc.message)
        return
    out_of_reach = sorted(s for s, n in targets.nodes.items() if n.id not in reachable)
    if out_of_reach:
        add(
            "placement",
            FAIL,
            "; ".join(
                f"{s} would be restored on {targets.nodes[s].hostname}, which drplan does "
                f"not reach (sites.{site_name}.nodes)"
                for s in out_of_reach
            ),
        )
        return
    where = ", ".join(f"{s} on {n.hostname}" for s, n in sorted(targets.nodes.items()))
    add("placement", OK, where or "every service can run here")


def _repository_from(pc: PlanContext, engine: DockerEngine, repo: Repository, add) -> None:
    """The repository read from a helper on the node, as a restore there reads it."""
    what = f"repository {repo.name} from {engine.node_name or engine.site}"
    labels = {lbl.PLAN: pc.name, lbl.RUN: "preflight"}
    try:
        with holding(engine, None, labels=labels, repo=repo) as (helper, env):
            engine.exec_run(
                helper,
                ["restic", *repo.option_args(), "cat", "config", "--no-lock"],
                env=env,
                what=what,
            )
    except DrplanError as exc:
        add(what, FAIL, exc.message)
        return
    add(what, OK, f"{repo.url} opens with its password")


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": not any(c.status == FAIL for c in checks),
        "checks": [dataclasses.asdict(c) for c in checks],
    }
