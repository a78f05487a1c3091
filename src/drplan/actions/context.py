"""What every action starts from: a validated plan, its sites and its repositories."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from drplan.errors import InputError
from drplan.plan import model as m
from drplan.plan.compose import ComposeProject
from drplan.plan.graph import DependencyGraph
from drplan.plan.validate import validate_file
from drplan.platform.docker import Engine
from drplan.repository.restic import Repository
from drplan.secrets import resolve


@dataclass
class PlanContext:
    path: Path
    plan: m.Plan
    compose: ComposeProject

    @property
    def name(self) -> str:
        return self.plan.stack.name

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def host(self) -> str:
        """restic --host of this plan's snapshots: stable, so parents are found."""
        return f"drplan-{self.name}"

    def site(self, name: str | None, role: str = "primary") -> tuple[str, m.Site]:
        if name is None:
            found = [(n, s) for n, s in self.plan.sites.items() if s.role == role]
            if not found:
                raise InputError(f"the plan has no {role} site", where=str(self.path))
            return found[0]
        if name not in self.plan.sites:
            raise InputError(
                f"unknown site {name!r} (the plan has: {', '.join(self.plan.sites)})",
                where=str(self.path),
            )
        return name, self.plan.sites[name]

    def engine(self, name: str | None = None, role: str = "primary") -> Engine:
        site_name, site = self.site(name, role)
        return Engine(site_name, site.docker_host)

    def stack_name(self, site: m.Site) -> str:
        return f"{site.stack_prefix}{self.name}"

    def repository(self, name: str | None = None) -> Repository:
        name = name or self.plan.primary_repository()
        if name is None or name not in self.plan.repositories:
            raise InputError(f"unknown repository {name!r}", where=str(self.path))
        return open_repository(name, self.plan.repositories[name], self.dir)

    def copies(self) -> list[Repository]:
        primary = self.plan.primary_repository()
        return [
            self.repository(n)
            for n, r in self.plan.repositories.items()
            if n != primary and r.role == "copy"
        ]

    def graph(self) -> DependencyGraph:
        return DependencyGraph.from_plan(self.plan)

    def volume_name(self, stack: str, volume: str) -> str:
        return f"{stack}_{volume}"

    def mount_target(self, service: str, volume: str | None) -> str | None:
        svc = self.compose.services.get(service)
        if svc is None or volume is None:
            return None
        for mount in svc.mounts:
            if mount.type == "volume" and mount.source == volume:
                return posixpath.normpath(mount.target)
        return None

    def writers_of(self, volume: str) -> list[str]:
        """Services mounting `volume`, dependents first (the order to quiesce them)."""
        users = [
            n
            for n, s in self.compose.services.items()
            if any(mt.type == "volume" and mt.source == volume for mt in s.mounts)
        ]
        height = self.graph().height()
        return sorted(users, key=lambda n: -height.get(n, 0))

    def images(self) -> list[str]:
        return sorted({s.image for s in self.compose.services.values() if s.image})


def open_repository(name: str, spec: m.Repository, base: Path) -> Repository:
    where = f"repositories.{name}"
    return Repository(
        name=name,
        url=spec.url
        if spec.type != "local"
        else str((base / spec.url).resolve())
        if not spec.url.startswith("/")
        else spec.url,
        password=resolve(spec.password, base=base, what=f"{where}.password"),
        type=spec.type or "local",
        append_only=spec.append_only,
        env={k: resolve(v, base=base, what=f"{where}.env.{k}") for k, v in spec.env.items()},
        options=dict(spec.options),
    )


def load_plan(path: str | Path) -> PlanContext:
    """Validate the plan; any error is an InputError listing the located problems."""
    result = validate_file(path)
    if not result.ok or result.compose is None:
        lines = [p.format() for p in result.errors][:20]
        raise InputError(
            "the plan is not valid:\n" + "\n".join(lines) if lines else "the plan is not valid",
            where=str(path),
        )
    return PlanContext(Path(path).resolve(), result.plan, result.compose)
