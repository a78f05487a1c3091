"""A plan as loaded from its files: the model, its compose project, where it lives.

What the plan says needs nothing else to answer (sites, the stack's name on a site,
volumes and who mounts them, the dependency graph); the actions' context
(drplan.actions.context.PlanContext) adds engines, repositories and secrets. The
runbook, reports and crisis cell work from this alone, so they need no engine.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from drplan.errors import InputError
from drplan.plan import model as m
from drplan.plan.compose import ComposeProject
from drplan.plan.graph import DependencyGraph


@dataclass
class LoadedPlan:
    path: Path
    plan: m.Plan
    compose: ComposeProject
    # False for a plan read back from a repository (see drplan.actions.context)
    trusted: bool = True

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

    def stack_name(self, site: m.Site) -> str:
        return f"{site.stack_prefix}{self.name}"

    def graph(self) -> DependencyGraph:
        return DependencyGraph.from_plan(self.plan)

    def volume_name(self, stack: str, volume: str) -> str:
        """The engine's name of the stack's top-level volume `volume`: its ``name:`` or
        external name when the compose file gives one (the stack prefix does not apply),
        else ``<stack>_<volume>`` as ``docker stack deploy`` creates it."""
        return self.compose.volume_real_name(stack, volume)

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
