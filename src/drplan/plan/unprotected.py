"""State the plan leaves unprotected: warnings of `drplan validate`.

A plan that backs up nothing of a database validated OK, and a recovery then brought back
an empty service. Every compose service that holds state must be covered by a data source
of the plan (its own, or the owner's of a volume it shares): anonymous volumes (which no
recovery can find by name), named volumes and writable host directories no source copies,
and services an engine recognises as its database with no source at all. Warnings, not
errors: the author may know the data is disposable (a cache, a scratch directory), and
says so by leaving it; the warning makes that a decision instead of an accident.

The plan layer knows no engine: recognising a database is asked of the engines the caller
passes (``detect`` of :class:`drplan.sources.base.Engine`), as for every engine rule.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drplan.plan import model as m
from drplan.plan.compose import ComposeProject, ComposeService, Mount
from drplan.plan.loader import Problem

# Host paths that are the system's, never a stack's data (docker socket, clocks, kernel).
SYSTEM_PATHS = ("/var/run", "/run", "/proc", "/sys", "/dev", "/etc", "/lib/modules", "/boot")


def norm(path: str) -> str:
    """A host path compared as a directory: normalised, no trailing slash."""
    return posixpath.normpath(path) if path.startswith("/") else path


def covered(plan: m.Plan) -> tuple[set[str], set[str]]:
    """(compose volumes, host directories) some data source of the plan copies."""
    volumes: set[str] = set()
    binds: set[str] = set()
    for svc in plan.services.values():
        for src in svc.data.values():
            if src.volume:
                volumes.add(src.volume)
            if src.bind:
                binds.add(norm(src.bind))
    return volumes, binds


def _system(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in SYSTEM_PATHS)


def holds_data(mount: Mount) -> bool:
    """A writable bind mount of a host directory that is not the system's (a file bound
    in is configuration; a read-only bind is read, not kept)."""
    path = mount.host_path
    if mount.type != "bind" or mount.read_only or not path:
        return False
    if _system(norm(path)):
        return False
    p = Path(path)
    return p.is_dir() or not p.exists()  # a missing one is created as a directory


def _target(entry: Any) -> str | None:
    """The container path of a raw `volumes:` entry (short or long syntax)."""
    if isinstance(entry, dict):
        return entry.get("target") if isinstance(entry.get("target"), str) else None
    if isinstance(entry, str):
        parts = entry.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return None


def _where(
    project: ComposeProject, service: str, target: str | None = None
) -> tuple[int, tuple[Any, ...]]:
    """(document index, location) of the service (of its mount at `target`) in the last
    compose file defining it."""
    for i in range(len(project.documents) - 1, -1, -1):
        data = project.documents[i].data
        services = data.get("services") if isinstance(data, dict) else None
        if isinstance(services, dict) and service in services:
            raw = services[service]
            mounts = raw.get("volumes") if isinstance(raw, dict) else None
            for j, entry in enumerate(mounts if isinstance(mounts, list) else []):
                if target is not None and _target(entry) == target:
                    return i, ("services", service, "volumes", j)
            return i, ("services", service)
    return 0, ("services",)


def _detected(engines: Mapping[str, Any] | None, svc: ComposeService) -> tuple[str, str] | None:
    """(engine name, why) of the strongest engine recognising the service, if any."""
    best: tuple[int, str, str] | None = None
    seen: set[int] = set()
    for engine in (engines or {}).values():
        if id(engine) in seen:
            continue  # aliases name the same engine
        seen.add(id(engine))
        detect = getattr(engine, "detect", None)
        found = detect(svc) if detect else None
        if found is not None and (best is None or found.strength > best[0]):
            best = (found.strength, engine.name, found.reason)
    return (best[1], best[2]) if best else None


def unprotected_state(
    project: ComposeProject, plan: m.Plan, engines: Mapping[str, Any] | None
) -> list[Problem]:
    """Warnings, located in the compose files, for every service holding state that no
    data source of the plan covers."""
    volumes, binds = covered(plan)
    out: list[Problem] = []
    warned_volumes: set[str] = set()

    def warn(service: str, target: str | None, message: str) -> None:
        i, loc = _where(project, service, target)
        if target is None and service in project.services:
            loc = (*loc, "image") if project.services[service].image else loc
        if project.documents:
            out.append(project.documents[i].problem(loc, message, severity="warning"))

    for name, svc in project.services.items():
        if not getattr(svc, "active", True):
            continue  # only in a profile that is not active
        sources = plan.services[name].data if name in plan.services else {}
        for mt in svc.mounts:
            if mt.anonymous:
                warn(
                    name,
                    mt.target,
                    f"service {name!r} keeps data on an anonymous volume at {mt.target}: no "
                    "recovery can find it by name, and it is not backed up. Give it a named "
                    "volume and a data source, or ignore this if it is scratch space",
                )
            elif mt.type == "volume" and mt.source and mt.source not in volumes:
                if mt.source in warned_volumes:
                    continue
                warned_volumes.add(mt.source)
                warn(
                    name,
                    mt.target,
                    f"volume {mt.source!r} (service {name!r}, at {mt.target}) is in no data "
                    "source of the plan: it is not backed up. Add a source to the service "
                    "that owns it (its database engine, or `engine: files`)",
                )
            elif holds_data(mt) and norm(mt.host_path or "") not in binds:
                warn(
                    name,
                    mt.target,
                    f"host directory {mt.host_path} (service {name!r}, at {mt.target}) is in "
                    "no data source of the plan: it is not backed up. Add a source "
                    f"`engine: files` with `bind: {mt.host_path}`",
                )
        if not sources:
            found = _detected(engines, svc)
            if found is not None:
                warn(
                    name,
                    None,
                    f"service {name!r} runs {found[0]} ({found[1]}) and the plan has no data "
                    "source for it: its data is not backed up",
                )
    return out


def bind_problems(project: ComposeProject, plan: m.Plan, doc: Any) -> list[Problem]:
    """A `bind` source the service does not bind-mount (a recovery would restore a
    directory nothing uses), or one host directory copied by two sources."""
    out: list[Problem] = []
    owners: dict[str, str] = {}
    for name, svc in plan.services.items():
        csvc = project.services.get(name)
        for dname, src in svc.data.items():
            if not src.bind:
                continue
            loc = ("services", name, "data", dname, "bind")
            path = norm(src.bind)
            if path in owners:
                out.append(
                    doc.problem(
                        loc,
                        f"host directory {src.bind} is already copied by {owners[path]}: "
                        "one directory, one source (the other services depend on its owner)",
                    )
                )
            owners.setdefault(path, f"services.{name}.data.{dname}")
            if csvc is None:
                continue
            known = [mt.host_path for mt in csvc.mounts if mt.type == "bind"]
            if all(known) and path not in {norm(p or "") for p in known}:
                out.append(
                    doc.problem(
                        loc,
                        f"service {name!r} does not bind-mount host directory {src.bind}"
                        + (
                            f" (it binds {', '.join(sorted(set(map(str, known))))})"
                            if known
                            else ""
                        )
                        + ": a recovery would restore a directory the service does not use",
                        severity="warning",
                    )
                )
    return out
