"""The secrets and configs a stack's services use, and what a site must hold for them.

`docker stack deploy` creates a secret or config from its `file:` (or `environment:`)
but never an `external: true` one: that one must already exist on the engine, under
its `name:` or its key, or the deploy fails half-way. A recovery checks them before it
writes anything (drplan.actions.recover), `validate` lists them per site and the
runbook in "Before you start". Only names are handled here, never contents.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from drplan.plan.compose import ComposeObject, ComposeProject

KINDS = ("secret", "config")


@dataclass(frozen=True)
class StackObject:
    """One secret or config of the stack, as the services of a recovery need it."""

    kind: str  # secret | config
    key: str  # its key in the compose file's top-level `secrets:`/`configs:`
    name: str | None  # the engine's name when fixed (external or `name:`), else None
    services: tuple[str, ...]
    must_exist: bool  # external (or named with nothing to create it from)
    file: str | None = None  # resolved host file it is created from

    def engine_name(self, stack: str) -> str:
        """The name on the engine: fixed, or ``<stack>_<key>`` as the deploy creates it."""
        return self.name or f"{stack}_{self.key}"

    def describe(self) -> str:
        used = ", ".join(self.services)
        if self.must_exist:
            how = "must exist before recovering"
        elif self.file:
            how = "created by the deploy from a file"
        else:
            how = "created by the deploy from the environment"
        return f"{self.kind} {self.name or self.key} ({how}; used by {used})"


def _must_exist(spec: ComposeObject) -> bool:
    return spec.external or (spec.name is not None and not spec.file and not spec.environment)


def stack_objects(project: ComposeProject, services: list[str] | None = None) -> list[StackObject]:
    """The secrets and configs that `services` (default: every active one) use."""
    wanted = services if services is not None else list(project.services)
    out = []
    for kind, tops in (("secret", project.secrets), ("config", project.configs)):
        users: dict[str, list[str]] = {}
        for sname in wanted:
            svc = project.services.get(sname)
            if svc is None or not svc.active:
                continue
            for key in svc.secrets if kind == "secret" else svc.configs:
                users.setdefault(key, []).append(sname)
        for key, names in users.items():
            spec = tops.get(key) or ComposeObject(key)
            out.append(
                StackObject(kind, key, spec.real_name, tuple(names), _must_exist(spec), spec.file)
            )
    return out


def missing(
    objects: list[StackObject], secret_names: set[str], config_names: set[str]
) -> list[StackObject]:
    """The objects that must exist and are not on the engine."""
    have = {"secret": secret_names, "config": config_names}
    return [o for o in objects if o.must_exist and (o.name or o.key) not in have[o.kind]]


def missing_message(absent: list[StackObject], site: str) -> str:
    """One refusal naming every missing object and the services that need it."""
    parts = [f"{o.kind} {o.name or o.key} (needed by {', '.join(o.services)})" for o in absent]
    return (
        f"site {site} lacks the external {', '.join(parts)}; nothing was changed. "
        "Create them first (`docker secret create NAME FILE`, `docker config create NAME FILE`)"
    )


def files_outside(objects: list[StackObject], plan_dir: Path) -> list[StackObject]:
    """Objects created from a host file outside the plan's folder: a run does not keep
    that file, so the recovery kit must."""
    return [o for o in objects if o.file and _relative(o.file, plan_dir) is None]


def files_inside(project: ComposeProject, plan_dir: Path) -> list[tuple[Path, str]]:
    """(file, path relative to the plan's folder) of the stack's secret and config files
    inside that folder: a run's config tar keeps them, so a recovery from the repository
    alone can create them. The folder is judged by the path as written (a link in it is
    kept, its target's content read)."""
    out: list[tuple[Path, str]] = []
    for tops in (project.secrets, project.configs):
        for spec in tops.values():
            rel = _relative(spec.file, plan_dir) if spec.file and not spec.external else None
            if rel and Path(spec.file or "").is_file() and rel not in [r for _, r in out]:
                out.append((Path(spec.file or ""), rel))
    return out


def _relative(path: str, base: Path) -> str | None:
    """`path` (absolute) relative to the folder `base`, None if outside it."""
    rel = posixpath.relpath(posixpath.normpath(path), posixpath.normpath(str(base.resolve())))
    return None if rel == ".." or rel.startswith("../") or rel == "." else rel


def site_needs(objects: list[StackObject]) -> list[str]:
    """One line per object a site needs (names only, never contents)."""
    return [o.describe() for o in sorted(objects, key=lambda o: (not o.must_exist, o.kind, o.key))]


def needs_note(project: ComposeProject, services: list[str], sites: list[str]) -> list[str]:
    """The lines `drplan validate` prints: what each site needs before a recovery."""
    objects = stack_objects(project, [s for s in services if s in project.services])
    if not objects:
        return []
    head = f"note: each site ({', '.join(sites)}) needs these secrets and configs:"
    return [head, *(f"note:   {line}" for line in site_needs(objects))]
