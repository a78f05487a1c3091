"""Draft a plan from an existing compose/stack file (``drplan init --from``).

Nobody writes a DR plan from a blank page. We read what compose already says
(services, images, volumes, ``depends_on``, healthchecks) and guess the rest: database
engines from image names and environment, backup methods, health checks, tiers from the
dependency graph. Every guess is reported so the author knows what to review; the draft
always validates.

What is engine-specific (which images and environments an engine recognises, where it
keeps its data, its health check and validation checks) is asked of every engine of
:mod:`drplan.sources` (``Engine.detect``, ``data_dirs``, ``guess_health``,
``draft_checks``); this module writes the plan around the answers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.errors import InputError
from drplan.plan.compose import ComposeProject, ComposeService, load_compose
from drplan.plan.graph import DependencyGraph
from drplan.sources import registry
from drplan.sources.base import Engine, image_basename

__all__ = ["Draft", "detect_engine", "draft_plan", "image_basename"]


@dataclass
class Draft:
    """A drafted plan (plain data, ready for YAML) and what was guessed."""

    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _detect(svc: ComposeService) -> tuple[Engine, str, str] | None:
    """(engine, method, reason): the strongest guess of every engine (an image name
    beats an environment), ties going to the first engine by name."""
    best: tuple[int, Engine, str, str] | None = None
    for engine in registry.engines().values():
        found = engine.detect(svc)
        if found is not None and (best is None or found.strength > best[0]):
            best = (found.strength, engine, found.method, found.reason)
    return best[1:] if best else None


def detect_engine(svc: ComposeService) -> tuple[str, str, str] | None:
    """(engine, method, reason) for a data service, or None for an application."""
    found = _detect(svc)
    return (found[0].name, found[1], found[2]) if found else None


def _data_mount(engine: Engine, svc: ComposeService) -> str | None:
    """The named volume holding the engine's data directory."""
    volumes = [mt for mt in svc.mounts if mt.type == "volume" and mt.source]
    if not volumes:
        return None
    wanted = [*engine.data_dirs(svc), "/data"]
    for mt in volumes:
        target = mt.target.rstrip("/")
        if any(target == w or w.startswith(target + "/") for w in wanted):
            return mt.source
    return volumes[0].source


def _health(
    name: str, svc: ComposeService, engine: Engine | None
) -> tuple[dict[str, Any] | None, str]:
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


def draft_plan(
    compose: str | Path,
    *,
    stack: str | None = None,
    plan_path: str | Path | None = None,
) -> Draft:
    """Draft a plan for ``compose``; compose paths are written relative to ``plan_path``."""
    cpath = Path(compose)
    if not cpath.is_file():
        raise InputError(
            "compose file not found" if not cpath.exists() else "not a file", where=str(compose)
        )
    project, problems = load_compose([cpath], display=[str(compose)])
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputError(
            errors[0].message, where=f"{errors[0].file}:{errors[0].line}:{errors[0].col}"
        )
    if not project.services:
        raise InputError("no services in the compose file", where=str(compose))
    name = _stack_name(stack, project, cpath)
    plan_dir = Path(plan_path).resolve().parent if plan_path else Path.cwd()
    rel = os.path.relpath(cpath.resolve(), plan_dir)
    notes: list[str] = []

    names = list(project.services)
    graph = DependencyGraph(
        {n: [d for d in s.depends_on if d in project.services] for n, s in project.services.items()}
    )
    for n, s in project.services.items():
        for d in s.depends_on:
            if d not in project.services:
                notes.append(f"{n}: depends_on {d!r} is not a service of the file; ignored")
    height = graph.height()
    services: dict[str, Any] = {}
    for n in names:
        svc = project.services[n]
        detected = _detect(svc)
        entry: dict[str, Any] = {}
        data: dict[str, Any] = {}
        data_vol = None
        if detected:
            engine, method, why = detected
            entry["tier"] = "P1"
            if method == "dump":
                data_vol = _data_mount(engine, svc)
                src: dict[str, Any] = {"engine": engine.name, "method": "dump"}
                if data_vol:
                    src["volume"] = data_vol
                    src["path"] = next(mt.target for mt in svc.mounts if mt.source == data_vol)
                data["db"] = src
                notes.append(
                    f"{n}: {engine.name} (from {why}), live dump"
                    + (f" of volume {data_vol}" if data_vol else "")
                )
            else:
                notes.append(
                    f"{n}: data store without a safe live dump (from {why}): volumes copied cold"
                )
        else:
            h = height.get(n, 0)
            entry["tier"] = "P2" if h <= 1 else "P3"
            notes.append(f"{n}: application, tier {entry['tier']} (dependency depth {h})")
        for mt in svc.mounts:
            if mt.type == "volume" and mt.source and mt.source != data_vol:
                key = re.sub(r"[^A-Za-z0-9_.-]+", "-", mt.source).strip("-.") or "data"
                while key in data:
                    key += "-1"
                method = "cold" if detected and detected[1] == "cold" else "dump"
                data[key] = {
                    "engine": "files",
                    "method": method,
                    "volume": mt.source,
                    "path": mt.target,
                }
                if not (detected and detected[1] == "cold"):
                    notes.append(f"{n}: volume {mt.source} at {mt.target} → files, live copy")
            elif mt.type == "bind":
                notes.append(
                    f"{n}: bind mount {mt.source} → {mt.target} not backed up "
                    "(only named volumes are)"
                )
            elif mt.type == "volume" and not mt.source:
                notes.append(f"{n}: anonymous volume at {mt.target} not backed up")
        if svc.depends_on:
            entry["depends_on"] = [d for d in svc.depends_on if d in project.services]
        if data:
            entry["data"] = data
        health, why = _health(n, svc, detected[0] if detected else None)
        if health:
            entry["health"] = health
        notes.append(f"{n}: health check: {why}")
        checks = detected[0].draft_checks() if detected and detected[1] == "dump" else []
        if checks:
            entry["checks"] = checks
        entry["critical"] = True
        services[n] = entry

    data = {
        "version": 1,
        "description": f"DR plan of stack {name}, drafted from {cpath.name}: review it.",
        "stack": {"name": name, "compose": [rel]},
        "sites": {
            "primary": {"role": "primary", "docker_host": "unix:///var/run/docker.sock"},
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
        "services": services,
    }
    notes.append(
        "sites, repository (no off-site copy yet) and objectives are placeholders: review them"
    )
    return Draft(data, notes)
