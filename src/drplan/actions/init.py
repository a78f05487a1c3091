"""Draft a plan from an existing compose/stack file (``drplan init --from``).

Nobody writes a DR plan from a blank page. We read what compose already says
(services, images, volumes, ``depends_on``, healthchecks) and guess the rest: database
engines from image names and environment, backup methods, health checks, tiers from the
dependency graph. Every guess is reported so the author knows what to review; the draft
always validates.

What is engine-specific (which images, data directories and environments an engine
recognises, where it keeps its data, the login its dumps use, its readiness check and
validation checks) is asked of every engine of :mod:`drplan.sources` (``Engine.detect``,
``data_dirs``, ``draft_user``, ``guess_health``, ``draft_checks``); stores with no native
method are drafted cold (:mod:`drplan.sources.stores`). The roles of services (jobs,
tools, front ends: tiers and criticality) are ruled in :mod:`drplan.actions.draft_roles`,
who owns a shared volume in :mod:`drplan.actions.draft_data`, and the user and password
references of dumps in :mod:`drplan.actions.draft_users`. With ``--from-stack NAME``, the
running stack adds live evidence where the compose file is not conclusive (the processes,
data files and environment of its containers: :mod:`drplan.actions.draft_live`), and the
notes say what was seen.

Whatever holds state and gets no source is a *warning*: printed by ``init`` and kept as
comments at the top of the drafted plan, so nothing is left unprotected silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drplan.actions import draft_live
from drplan.actions.draft_data import choose_owner, is_config_bind, shares
from drplan.actions.draft_live import Observed
from drplan.actions.draft_roles import Role, is_job, is_tool, raw_services, role
from drplan.actions.draft_users import Credentials, client_user
from drplan.errors import InputError
from drplan.plan.compose import ComposeProject, ComposeService, Mount, load_compose
from drplan.plan.graph import DependencyGraph
from drplan.plan.model import host_path_ok
from drplan.sources import registry
from drplan.sources.base import Engine, image_basename
from drplan.sources.stores import STORES, find_store

__all__ = ["Draft", "detect_engine", "draft_plan", "image_basename"]


@dataclass
class Draft:
    """A drafted plan (plain data, ready for YAML) and what was guessed."""

    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _detect_strength(svc: ComposeService) -> tuple[int, Engine, str, str] | None:
    """(strength, engine, method, reason): the strongest guess of every engine (an
    image name beats a data directory, which beats an environment), ties going to the
    first engine by name."""
    best: tuple[int, Engine, str, str] | None = None
    for engine in registry.engines().values():
        found = engine.detect(svc)
        if found is not None and (best is None or found.strength > best[0]):
            best = (found.strength, engine, found.method, found.reason)
    return best


def _detect(svc: ComposeService) -> tuple[Engine, str, str] | None:
    """(engine, method, reason) of :func:`_detect_strength`."""
    best = _detect_strength(svc)
    return best[1:] if best else None


def detect_engine(svc: ComposeService) -> tuple[str, str, str] | None:
    """(engine, method, reason) for a data service, or None for an application."""
    found = _detect(svc)
    return (found[0].name, found[1], found[2]) if found else None


def _data_mount(engine: Engine, svc: ComposeService, cold: bool) -> Mount | None:
    """The mount (named, bind or anonymous) holding the engine's data directory (or
    `/data`); for a cold store, else its first named volume or host directory."""
    dirs = [*engine.data_dirs(svc), "/data"]
    if cold:
        found = find_store(svc)
        dirs += list(found[0].data_dirs) if found else []
    for mt in svc.mounts:
        target = mt.target.rstrip("/")
        if mt.type != "tmpfs" and any(target == w or w.startswith(target + "/") for w in dirs):
            return mt
    if cold:
        return next(
            (
                mt
                for mt in svc.mounts
                if mt.source and (mt.type == "volume" or not is_config_bind(mt))
            ),
            None,
        )
    return None  # a dump does not need the volume: never guess which one it is


def _health(
    name: str, svc: ComposeService, engine: Engine | None, method: str | None
) -> tuple[dict[str, Any] | None, str]:
    """A database's own readiness check first (a running task is not a server that
    accepts connections), else the compose healthcheck, else a guess."""
    guessed = engine.guess_health(name, svc) if engine is not None and method == "dump" else None
    if guessed is not None:
        return guessed
    hc = svc.healthcheck
    if hc and not hc.get("disable") and hc.get("test") not in (["NONE"], "NONE"):
        return {"type": "docker", "retries": 30}, "its compose healthcheck"
    guessed = engine.guess_health(name, svc) if engine is not None else None
    if guessed is not None:
        return guessed
    port = _target_port(svc)
    if port:
        return {"type": "tcp", "host": name, "port": port}, f"TCP {port} (its published port)"
    return None, "none (running tasks)"


def _target_port(svc: ComposeService) -> int | None:
    for p in svc.ports:
        if isinstance(p, dict) and isinstance(p.get("target"), int):
            return p["target"]
        if isinstance(p, int):
            return p
        if isinstance(p, str):
            m = re.search(r"(\d+)(?:/\w+)?$", p)
            if m and 0 < int(m.group(1)) < 65536:
                return int(m.group(1))
    return None


def _stack_name(requested: str | None, project: ComposeProject, compose: Path) -> str:
    raw = requested or project.name or compose.resolve().parent.name or "stack"
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-_")[:63] or "stack"
    if requested and name != requested:
        raise InputError(f"invalid stack name {requested!r}: letters, digits, - and _ only")
    return name


def _reaches(deps: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        cur = todo.pop()
        if cur == goal:
            return True
        if cur not in seen:
            seen.add(cur)
            todo.extend(deps.get(cur, ()))
    return False


def _key(text: str, taken: dict[str, Any]) -> str:
    key = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "data"
    while key in taken:
        key += "-1"
    return key


def _load(paths: list[Path], shown: list[str]) -> ComposeProject:
    for path, name in zip(paths, shown, strict=True):
        if not path.is_file():
            raise InputError(
                "compose file not found" if not path.exists() else "not a file", where=name
            )
    project, problems = load_compose(paths, display=shown)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputError(
            errors[0].message, where=f"{errors[0].file}:{errors[0].line}:{errors[0].col}"
        )
    if not project.services:
        raise InputError("no services in the compose file", where=shown[0])
    return project


class _Drafting:
    """The state of one draft: what each service is, who owns each piece of data, and
    the plan entries, notes and warnings being written."""

    def __init__(
        self,
        project: ComposeProject,
        plan_dir: Path,
        stack_dir: Path,
        live: dict[str, Observed] | None = None,
    ) -> None:
        self.services = dict(project.services)
        self.live = live or {}
        self.compose_env = {n: set(s.environment) for n, s in project.services.items()}
        self.order = list(self.services)
        self.raws = raw_services(project)
        self.creds = Credentials(project, plan_dir)
        self.stack_dir = stack_dir
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.graph = DependencyGraph(
            {n: [d for d in s.depends_on if d in self.services] for n, s in self.services.items()}
        )
        for n, s in self.services.items():
            for d in s.depends_on:
                if d not in self.services:
                    self.notes.append(
                        f"{n}: depends_on {d!r} is not a service of the file; ignored"
                    )
        self.deps: dict[str, set[str]] = {n: set(self.graph.deps.get(n, ())) for n in self.services}
        self.detected: dict[str, tuple[Engine, str, str]] = {}
        self.roles: dict[str, Role] = {}
        self.data_mt: dict[str, Mount | None] = {}
        self.owners: dict[tuple[str, str], str] = {}

    def classify(self) -> None:
        """What each service is: a database (engine, method, why), and its role."""
        strength: dict[str, int] = {}
        for n, svc in self.services.items():
            raw = self.raws.get(n, {})
            found = None if is_job(n, svc, raw) or is_tool(n, svc) else _detect_strength(svc)
            if n in self.live and not (is_job(n, svc, raw) or is_tool(n, svc)):
                found = self.live_detection(n, found, self.live[n])
            if found:
                strength[n], self.detected[n] = found[0], found[1:]
        # a service known only by its environment that depends on a server of the same
        # engine known by more (its image, its data directory) is that server's client
        for n in list(self.detected):
            server = next(
                (
                    d
                    for d in self.graph.closure([n]) - {n}
                    if d in self.detected
                    and self.detected[d][0] is self.detected[n][0]
                    and strength[d] > strength[n] == 1
                ),
                None,
            )
            if server:
                why = self.detected.pop(n)[2]
                self.notes.append(f"{n}: {why}, but a client of {server}: not a database")
        height = self.graph.height()
        for n, svc in self.services.items():
            self.roles[n] = role(
                n, svc, self.raws.get(n, {}), database=n in self.detected, height=height.get(n, 0)
            )
        self.data_mt = {
            n: _data_mount(eng, self.services[n], method == "cold")
            for n, (eng, method, _) in self.detected.items()
        }

    def live_detection(
        self, n: str, found: tuple[int, Engine, str, str] | None, obs: Observed
    ) -> tuple[int, Engine, str, str] | None:
        """The running container's word on what service `n` is: a server seen running
        (or its data files) beats any guess from the compose file, and is noted with its
        evidence; the variables it really has (names, and values that are not secrets)
        are added to the service, for the data directory and the dump's user."""
        if obs.why_not:
            self.warnings.append(f"{n}: {obs.why_not}: drafted from the compose file alone")
            return found
        live_svc = draft_live.with_live_env(self.services[n], obs)
        prefer = found[1].name if found is not None else None
        ev = draft_live.recognise(obs, draft_live.candidates(), prefer)
        if ev is None:
            if found is None:
                found = _detect_strength(live_svc)
                if found is not None:
                    found = (*found[:3], f"{found[3]}, seen live")
                    self.notes.append(f"{n}: engine {found[1].name}: {found[3]}")
            if found is not None:
                self.services[n] = live_svc
                self.no_server_seen(n, found, obs)
            return found
        if ev.store:
            store = next(s for s in STORES if s.name == ev.name)
            engine = registry.engine("files")
            why = f"{ev.text}: {store.name}, no native dump in drplan ({store.risk})"
            live_found = (4, engine, "cold", why)
        else:
            engine = registry.engine(ev.name)
            live_found = (4, engine, "dump", ev.text)
        self.notes.append(f"{n}: engine {ev.name}: {ev.text}")
        if found is not None and found[1] is not engine:
            self.warnings.append(
                f"{n}: the compose file suggests {found[1].name} ({found[3]}), but its "
                f"running container is {ev.name} ({ev.text}): drafted as {ev.name}, check it"
            )
        self.services[n] = live_svc
        return live_found

    def no_server_seen(self, n: str, found: tuple[int, Engine, str, str], obs: Observed) -> None:
        """Warn when the compose file's guess has no server of its engine running."""
        if found[0] >= 3 or not obs.processes_read or not obs.processes:
            return
        if found[1].live_signs.processes:
            shown = ", ".join(sorted(set(obs.processes))[:6])
            self.warnings.append(
                f"{n}: drafted as {found[1].name} from the compose file ({found[3]}), but no "
                f"{found[1].name} server runs in its container (it runs {shown}): check it"
            )

    def assign_owners(self) -> None:
        """One owner for each named volume and host directory the stack writes."""
        dependents = {
            n: sum(n in s.depends_on for s in self.services.values()) for n in self.services
        }
        for key, share in shares(self.services).items():
            if share.kind == "bind" and all(is_config_bind(mt) for mt in share.mounts.values()):
                continue
            covers = {
                n: (mt := self.data_mt.get(n)) is not None and (mt.type, mt.source) == key
                for n in share.mounts
            }
            self.owners[key] = choose_owner(share, self.roles, covers, dependents, self.order)

    def entry(self, n: str) -> dict[str, Any]:
        """The plan's entry for service `n`."""
        svc, r = self.services[n], self.roles[n]
        entry: dict[str, Any] = {"tier": r.tier}
        engine, method, _ = self.detected.get(n, (None, None, ""))
        self.notes.append(
            f"{n}: tier {r.tier}, {'critical' if r.critical else 'not critical'} ({r.why})"
        )
        data: dict[str, Any] = {}
        if engine is not None and method == "dump":
            src = self.database_source(n)
            if src is not None:
                data["db"] = src
        elif engine is not None:
            self.cold_store(n)
        for mt in svc.mounts:
            self.mount_source(n, mt, data)
        if self.deps[n]:
            entry["depends_on"] = [d for d in self.order if d in self.deps[n]]
        if data:
            entry["data"] = data
        health, hwhy = _health(n, svc, engine, method)
        if health:
            entry["health"] = health
        self.notes.append(f"{n}: health check: {hwhy}")
        checks = engine.draft_checks() if engine is not None and method == "dump" and data else []
        if checks:
            entry["checks"] = checks
        entry["critical"] = r.critical
        return entry

    def database_source(self, n: str) -> dict[str, Any] | None:
        """A database's dump source (None when nothing could restore it), with its user
        and password reference; warnings for what it leaves out."""
        svc, (engine, _, why) = self.services[n], self.detected[n]
        db_mt = self.data_mt.get(n)
        src: dict[str, Any] = {"engine": engine.name, "method": "dump"}
        where = ""
        owned = db_mt is not None and self.owners.get((db_mt.type, db_mt.source or "")) == n
        if db_mt is not None and db_mt.type == "volume" and db_mt.source and owned:
            # the data itself when the engine names it inside the mount (a file)
            inside = db_mt.target.rstrip("/") + "/"
            path = next((p for p in engine.data_dirs(svc) if p.startswith(inside)), None)
            src["volume"], src["path"] = db_mt.source, path or db_mt.target
            where = f" of volume {db_mt.source}"
        elif db_mt is not None and db_mt.type == "bind":
            src["path"] = db_mt.target
            where = f" (data directory on host path {db_mt.source}, covered by the dump)"
        src.update(self.login(n, engine))
        self.notes.append(f"{n}: {engine.name} (from {why}), live dump{where}")
        if db_mt is not None and db_mt.source:
            return src
        at = db_mt.target if db_mt else ", ".join(engine.data_dirs(svc)[:1]) or "?"
        if not engine.restores_into_server:
            self.warnings.append(
                f"{n}: {engine.name} data at {at} is on an anonymous volume (no volume "
                "declared): nothing names it, so it is not backed up; declare a named volume"
            )
            return None
        self.warnings.append(
            f"{n}: no volume declared: the {engine.name} data at {at} is in an anonymous "
            "volume, lost when the service is recreated; the dump protects it, declare a "
            "named volume"
        )
        return src

    def login(self, n: str, engine: Engine) -> dict[str, Any]:
        """The `user`, `password` (a reference) and `databases` of a dump."""
        svc = self.services[n]
        found = engine.draft_user(svc)
        if found is None:
            return {}
        obs = self.live.get(n)
        if obs is not None and found.why in obs.env and found.why not in self.compose_env[n]:
            self.notes.append(f"{n}: {found.why} seen live in its container's environment")
        if found.assumed:
            client = client_user(n, self.services)
            if client:
                found = replace(found, user=client[0], why=client[1])
        fields, user_notes = self.creds.fields(svc, self.raws.get(n, {}), found)
        self.notes += [f"{n}: {u}" for u in user_notes]
        if found.databases and fields.get("user") not in (None, "root"):
            self.warnings.append(
                f"{n}: dumps log in as {fields.get('user')}, who reads only "
                f"{', '.join(found.databases)}: any other database is not backed up "
                "(give the plan a user that reads them all if there are)"
            )
        return fields

    def cold_store(self, n: str) -> None:
        """The loud warning every store with no native dump gets."""
        why, db_mt = self.detected[n][2], self.data_mt.get(n)
        if db_mt is None or db_mt.anonymous:
            self.warnings.append(
                f"{n}: {why}; no volume declared: its data is in an anonymous volume, so "
                "there is nothing to copy, even cold; declare a named volume"
            )
        else:
            self.warnings.append(
                f"{n}: {why}: drafted as a cold copy (the service is stopped while its "
                "data is copied), never a live one"
            )

    def mount_source(self, n: str, mt: Mount, data: dict[str, Any]) -> None:
        """What one mount of service `n` becomes: its source if `n` owns it, a
        dependency on its owner otherwise, a warning if nothing can hold it."""
        key = (mt.type, mt.source or "")
        if mt.anonymous:
            if mt is not self.data_mt.get(n) and not self.roles[n].job:
                self.warnings.append(
                    f"{n}: anonymous volume at {mt.target}: state with no source "
                    "(declare a named volume, or say it may be lost)"
                )
            return
        owner = self.owners.get(key)
        if owner is None:
            if mt.type == "bind":
                self.notes.append(f"{n}: bind mount {mt.source} → {mt.target}: configuration")
            return
        if owner != n:
            if owner not in self.deps[n] and not _reaches(self.deps, owner, n):
                self.deps[n].add(owner)
                self.notes.append(
                    f"{n}: mounts {mt.source} of {owner}: depends on {owner} "
                    "(restored once, before it starts)"
                )
            return
        method = self.detected.get(n, (None, None, ""))[1]
        if mt is self.data_mt.get(n) and method == "dump":
            return  # the dump covers it
        copy = {"method": "cold" if method == "cold" else "dump"}
        how = "cold copy" if method == "cold" else "live copy"
        if mt.type == "volume":
            data[_key(mt.source or "", data)] = {
                "engine": "files",
                **copy,
                "volume": mt.source,
                "path": mt.target,
            }
            self.notes.append(f"{n}: volume {mt.source} at {mt.target} → files, {how}")
        elif mt.host_path and host_path_ok(mt.host_path):
            name = mt.host_path.rstrip("/").rsplit("/", 1)[-1] or "data"
            data[_key(name, data)] = {
                "engine": "files",
                **copy,
                "bind": mt.host_path,
                "path": mt.target,
            }
            others = [s for s in shares_of(self.services, key) if s != n]
            self.notes.append(
                f"{n}: host directory {mt.source} ({mt.host_path}) at {mt.target} → files, "
                + how
                + (f"; also mounted by {', '.join(others)}" if others else "")
            )
            if not mt.host_path.startswith(str(self.stack_dir) + "/"):
                self.warnings.append(
                    f"{n}: host directory {mt.source} at {mt.target} is outside the stack's "
                    f"directory: it is backed up from the node that runs {n} (pin {n} to "
                    "that node, or map the path per site)"
                )
        else:
            self.warnings.append(
                f"{n}: host directory {mt.source} → {mt.target} holds data but its path is "
                "not a literal absolute one: not backed up (set the variable, or add a "
                "source with `bind:`)"
            )


def draft_plan(
    compose: str | Path | Sequence[str | Path],
    *,
    stack: str | None = None,
    plan_path: str | Path | None = None,
    from_stack: str | None = None,
    docker_host: str | None = None,
) -> Draft:
    """Draft a plan for `compose` (one file, or several merged as `-f A -f B`);
    compose paths are written relative to `plan_path`. With `from_stack`, the stack of
    that name running on `docker_host` (default: DOCKER_HOST, else the local socket)
    adds its live evidence, and is the primary site."""
    files = [compose] if isinstance(compose, str | Path) else list(compose)
    paths = [Path(f) for f in files]
    project = _load(paths, [str(f) for f in files])
    cpath = paths[0]
    name = _stack_name(stack or from_stack, project, cpath)
    plan_dir = Path(plan_path).resolve().parent if plan_path else Path.cwd()
    rels = [os.path.relpath(p.resolve(), plan_dir) for p in paths]
    live, extra, url = None, [], "unix:///var/run/docker.sock"
    if from_stack:
        url = draft_live.docker_url(docker_host)
        live, extra = draft_live.observe(url, from_stack, project.services)
    drafting = _Drafting(project, plan_dir, cpath.resolve().parent, live)
    for other in extra:
        drafting.notes.append(
            f"{other}: a service of the running stack {from_stack} that the compose files "
            "do not define: not in the plan"
        )
    drafting.classify()
    drafting.assign_owners()
    entries = {n: drafting.entry(n) for n in drafting.order}
    notes, warnings = drafting.notes, drafting.warnings

    data = {
        "version": 1,
        "description": f"DR plan of stack {name}, drafted from {cpath.name}: review it.",
        "stack": {"name": name, "compose": rels},
        "sites": {
            "primary": {"role": "primary", "docker_host": url},
            "recovery": {
                "role": "recovery",
                "docker_host": "ssh://drplan@recovery.example.org",
                "description": "TODO: the recovery Docker engine",
            },
        },
        "repositories": {
            "primary": {
                "url": f"/srv/restic/{name}",
                "role": "primary",
                "password": {"env": "RESTIC_PASSWORD"},
            }
        },
        "backup": {"schedule": {"daily_at": "03:00"}, "retention": {"keep_daily": 7}},
        "objectives": {"rto": "4h", "rpo": "24h"},
        "services": entries,
    }
    notes.append(
        "sites, repository (no off-site copy yet) and objectives are placeholders: review them"
    )
    return Draft(data, notes, warnings)


def shares_of(services: dict[str, ComposeService], key: tuple[str, str]) -> list[str]:
    """The services mounting one volume or host directory."""
    return [n for n, s in services.items() if any((m.type, m.source) == key for m in s.mounts)]
