"""Semantic checks of a plan: everything the model alone cannot see, each located.

The model checks shapes; here we check the plan against itself (names that must exist,
cycles, profiles, objectives against the backup schedule) and against the compose files
it names. :func:`validate_file` is the whole pipeline behind ``drplan validate`` and
returns problems rather than raising, so the CLI can list them all at once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from drplan.plan import model as m
from drplan.plan import placement
from drplan.plan.compose import ComposeProject, load_compose
from drplan.plan.graph import FULL_PROFILE, DependencyGraph
from drplan.plan.isolation import shared_storage
from drplan.plan.loader import NO_ENGINE, Document, ParsedPlan, Problem, parse_plan
from drplan.plan.stack_objects import files_outside, stack_objects
from drplan.plan.units import format_duration
from drplan.plan.unprotected import bind_problems, unprotected_state


class EngineRules(Protocol):
    """What validation asks of a data source's engine. The plan layer knows no engine:
    every engine of :mod:`drplan.sources` is one of these, and the caller above it passes
    ``drplan.sources.registry.catalog()`` (:func:`drplan.actions.context.check_plan`)."""

    name: str
    methods: tuple[str, ...]
    runs_sql: bool  # an `sql` check can query it
    restores_into_server: bool  # a dump is replayed into its running server

    def source_problems(self, src: m.DataSource) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems of one source, each located relative to it."""
        ...


#: Every name a plan may write in `engine:` (aliases included) → its engine.
EngineCatalog = Mapping[str, EngineRules]


@dataclass
class ValidationResult:
    """Outcome of validating a plan file."""

    loaded: ParsedPlan
    problems: list[Problem]
    compose: ComposeProject | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def plan(self) -> m.Plan | None:
        """The plan, when it could be parsed into the model."""
        return self.loaded.plan

    @property
    def errors(self) -> list[Problem]:
        """Problems that make the plan unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return self.plan is not None and not self.errors


def validate_file(
    path: str | Path,
    *,
    display: str | None = None,
    engines: EngineCatalog | None = None,
    compose_environ: Mapping[str, str] | None = None,
) -> ValidationResult:
    """Parse, model-validate and check a plan file and its compose files.

    `compose_environ`: the environment the compose files interpolate over their `.env`
    (default: drplan's own, as Compose does; ``{}`` for a plan read back from a
    repository, whose files must not pull the operator's variables into a service).

    `engines`: the engines drplan knows, by every name a plan may use (see
    :data:`EngineCatalog`); data sources are checked against them (name, method, what
    each engine requires, which sources an `sql` check can query). Without it, nothing
    that depends on an engine is checked: the model checks an engine name's shape only.
    """
    loaded = parse_plan(path, display=display)
    result = ValidationResult(loaded, list(loaded.problems))
    if engines is not None:
        known = f" (one of {', '.join(sorted(engines))})"
        result.problems = [
            replace(p, message=p.message + known) if p.message == NO_ENGINE else p
            for p in result.problems
        ]
    if loaded.plan is None:
        # still report graph problems (unknown dependencies, cycles, profiles) and unknown
        # engines from the raw data, so one run lists everything
        raw = _raw_view(loaded.doc.data)
        if raw is not None:
            checker = _Checker(raw, loaded.doc, engines)  # type: ignore[arg-type]
            checker.check_dependencies()
            checker.check_cycles()
            checker.check_profiles()
            checker.check_engine_names()
            result.problems.extend(checker.problems)
        result.problems.sort(key=lambda p: (p.file != loaded.doc.file, p.file, p.line, p.col))
        return result
    checker = _Checker(loaded.plan, loaded.doc, engines)
    checker.check_all()
    compose_problems, project = _check_compose(loaded, checker, compose_environ)
    result.problems.extend(checker.problems)
    result.problems.extend(compose_problems)
    result.compose = project
    result.problems.sort(key=lambda p: (p.file != loaded.doc.file, p.file, p.line, p.col))
    return result


class _Checker:
    def __init__(self, plan: m.Plan, doc: Document, engines: EngineCatalog | None) -> None:
        self.plan = plan
        self.doc = doc
        self.engines = engines
        self.problems: list[Problem] = []

    def add(self, loc: tuple[Any, ...], message: str, **kw: Any) -> None:
        self.problems.append(self.doc.problem(loc, message, **kw))

    def check_all(self) -> None:
        self.check_dependencies()
        self.check_cycles()
        self.check_profiles()
        self.check_sites()
        self.check_repositories()
        self.check_objectives()
        self.check_data_sources()
        self.check_checks()
        self.check_hooks()
        self.check_risks()
        self.check_crisis_cell()

    # -- services --------------------------------------------------------------------

    def check_dependencies(self) -> None:
        names = self.plan.services
        for name, svc in names.items():
            counts = Counter(svc.depends_on)
            for i, dep in enumerate(svc.depends_on):
                loc = ("services", name, "depends_on", i)
                if dep == name:
                    self.add(loc, f"service {name!r} depends on itself")
                elif dep not in names:
                    self.add(loc, f"unknown service {dep!r}{_suggest(dep, names)}")
                elif counts[dep] > 1 and svc.depends_on.index(dep) != i:
                    self.add(loc, f"duplicate dependency {dep!r}")

    def check_cycles(self) -> None:
        graph = DependencyGraph.from_plan(self.plan)
        for cycle in graph.cycles():
            first, second = cycle[0], cycle[1]
            idx = self.plan.services[first].depends_on.index(second)
            self.add(
                ("services", first, "depends_on", idx),
                "dependency cycle: " + "→".join(cycle),
            )

    def check_profiles(self) -> None:
        graph = DependencyGraph.from_plan(self.plan)
        for pname, prof in self.plan.profiles.items():
            if pname == FULL_PROFILE:
                self.add(
                    ("profiles", pname),
                    "profile name 'full' is reserved (every service)",
                    key=True,
                )
                continue
            listed = set(prof.services)
            seen: set[str] = set()
            for i, sname in enumerate(prof.services):
                loc = ("profiles", pname, "services", i)
                if sname in seen:
                    self.add(loc, f"service {sname!r} listed twice")
                    continue
                seen.add(sname)
                if sname not in self.plan.services:
                    self.add(loc, f"unknown service {sname!r}{_suggest(sname, self.plan.services)}")
                    continue
                for dep in graph.deps.get(sname, []):
                    if dep not in listed:
                        self.add(
                            loc,
                            f"profile {pname!r} leaves out {dep!r}, a dependency of {sname!r} "
                            f"(add it; `drplan plan --profile {pname}` shows the full closure)",
                        )

    # -- sites and repositories ----------------------------------------------------------

    def check_sites(self) -> None:
        roles = Counter(site.role for site in self.plan.sites.values())
        if roles["primary"] != 1:
            self.add(
                ("sites",), f"exactly one site must have role primary (found {roles['primary']})"
            )
        if roles["recovery"] == 0:
            self.add(("sites",), "no recovery site: add one with role: recovery")
        for sname, site in self.plan.sites.items():
            for svc in site.services:
                if svc not in self.plan.services:
                    self.add(
                        ("sites", sname, "services", svc),
                        f"unknown service {svc!r}{_suggest(svc, self.plan.services)}",
                        key=True,
                    )
            for svc, constraints in site.placement.items():
                if svc not in self.plan.services:
                    self.add(
                        ("sites", sname, "placement", svc),
                        f"unknown service {svc!r}{_suggest(svc, self.plan.services)}",
                        key=True,
                    )
                for i, text in enumerate(constraints):
                    self.check_constraint(("sites", sname, "placement", svc, i), text)
        self.check_drills()
        hosts = Counter(site.docker_host for site in self.plan.sites.values())
        for sname, site in self.plan.sites.items():
            if hosts[site.docker_host] > 1 and not site.stack_prefix and site.role == "recovery":
                self.add(
                    ("sites", sname, "docker_host"),
                    "same docker_host as another site: set a stack_prefix so a drill cannot "
                    "overwrite the production stack",
                    severity="warning",
                )
            if site.tls is None:
                plain = [
                    (loc, url)
                    for loc, url in [
                        (("sites", sname, "docker_host"), site.docker_host),
                        *((("sites", sname, "nodes", k), u) for k, u in site.nodes.items()),
                    ]
                    if url.startswith("tcp://") and not m.engine_on_this_host(url)
                ]
                for loc, url in plain:
                    self.add(
                        loc,
                        f"{url[:80]} is plain TCP: whoever reaches that port is root on the "
                        "node; set this site's `tls` (the engine's --tlsverify) or use ssh://, "
                        "unless DOCKER_TLS_VERIFY is set where drplan runs",
                        severity="warning",
                    )

    def check_drills(self) -> None:
        """The scheduled drills' site is a recovery site and their profile exists."""
        drills = self.plan.drills
        site = self.plan.sites.get(drills.site) if drills.site else None
        if drills.site and site is None:
            self.add(
                ("drills", "site"),
                f"unknown site {drills.site!r}{_suggest(drills.site, self.plan.sites)}",
            )
        elif site is not None and site.role != "recovery":
            self.add(("drills", "site"), f"site {drills.site!r} is not a recovery site")
        if drills.profile != "full" and drills.profile not in self.plan.profiles:
            self.add(
                ("drills", "profile"),
                f"unknown profile {drills.profile!r}{_suggest(drills.profile, self.plan.profiles)}",
            )

    def check_constraint(self, loc: tuple[Any, ...], text: str) -> None:
        """A site's placement constraint as Swarm would parse it; an unknown key parses
        there but then no node ever satisfies it, so it is an error here."""
        try:
            constraint = placement.parse(text)
        except ValueError as exc:
            self.add(loc, str(exc))
            return
        if not constraint.known:
            self.add(
                loc,
                f"placement constraint {text!r}: Swarm knows no key {constraint.key!r}, so no "
                "node would satisfy it (keys: node.id, node.hostname, node.ip, node.role, "
                "node.platform.os, node.platform.arch, node.labels.NAME, engine.labels.NAME)",
            )

    def check_repositories(self) -> None:
        repos = self.plan.repositories
        primaries = [n for n, r in repos.items() if r.role == "primary"]
        if len(primaries) != 1:
            self.add(
                ("repositories",),
                f"exactly one repository must have role primary (found {len(primaries)})",
            )
        target = self.plan.backup.repository
        if target is not None and target not in repos:
            self.add(
                ("backup", "repository"), f"unknown repository {target!r}{_suggest(target, repos)}"
            )
        urls = Counter(r.url for r in repos.values())
        for name, repo in repos.items():
            if urls[repo.url] > 1:
                self.add(("repositories", name, "url"), "two repositories share this url")
        clusters = [n for n, site in self.plan.sites.items() if site.nodes]
        remote = [
            n for n, site in self.plan.sites.items() if not m.engine_on_this_host(site.docker_host)
        ]
        for name, repo in repos.items():
            if (repo.type or "local") != "local" or repo.shared:
                continue
            if remote:
                self.add(
                    ("repositories", name, "url"),
                    f"a local path, and site(s) {', '.join(remote)} are reached over the "
                    "network: volume copies run restic in a helper there, which cannot see a "
                    "path of this host; use an sftp:, rest: or s3: repository, or set "
                    "`shared: true` if this path is shared storage mounted at the same path "
                    "there",
                    severity="warning",
                )
            elif clusters:
                self.add(
                    ("repositories", name, "url"),
                    f"a local path, and site(s) {', '.join(clusters)} have several nodes: "
                    "volume copies run restic on the node holding the data, so every such "
                    "node must see this path (shared storage mounted at the same path); "
                    "otherwise use an sftp:, rest: or s3: repository",
                    severity="warning",
                )
        if repos and not any(r.role == "copy" for r in repos.values()):
            self.add(
                ("repositories",),
                "no off-site copy repository: a site-wide disaster would take the backups too",
                severity="warning",
            )

    # -- objectives ------------------------------------------------------------------------

    def check_objectives(self) -> None:
        interval = self.plan.backup.schedule.interval_s
        sched = self.plan.backup.schedule
        given = (
            f"every {format_duration(sched.every)}" if sched.every else f"daily at {sched.daily_at}"
        )
        reported: set[tuple[str, ...]] = set()
        for name, svc in self.plan.services.items():
            if not svc.data:
                continue
            rpo, where = self.plan.effective_objective(name, "rpo")
            if rpo is None or rpo >= interval or where in reported:
                continue
            reported.add(where)
            self.add(
                where,
                f"RPO {format_duration(rpo)} is shorter than the backup schedule can give "
                f"({given}: up to {format_duration(interval)} of data lost)",
            )
        for pname, prof in self.plan.profiles.items():
            rpo = prof.objectives.rpo
            if rpo is not None and rpo < interval:
                self.add(
                    ("profiles", pname, "objectives", "rpo"),
                    f"RPO {format_duration(rpo)} is shorter than the backup schedule can give "
                    f"({given})",
                )

    # -- data sources ------------------------------------------------------------------------

    def engine_of(self, src: m.DataSource) -> EngineRules | None:
        """The source's engine (None when unknown, or when no catalogue was given)."""
        return self.engines.get(src.engine) if self.engines is not None else None

    def runs_sql(self, src: m.DataSource) -> bool:
        engine = self.engine_of(src)
        return engine is not None and engine.runs_sql

    def into_server(self, src: m.DataSource) -> bool:
        """A dump replayed into the service's running server (its engine says)."""
        engine = self.engine_of(src)
        return src.method == "dump" and engine is not None and engine.restores_into_server

    def unknown_engine(self, loc: tuple[Any, ...], name: str) -> None:
        assert self.engines is not None
        self.add(
            (*loc, "engine"),
            f"unknown engine {name[:40]!r}{_suggest(name, self.engines)} "
            f"(drplan knows {', '.join(sorted(self.engines))})",
        )

    def check_engine_names(self) -> None:
        """Unknown engine names, from the raw data of a plan the model rejected."""
        data = self.doc.data
        if self.engines is None or not isinstance(data, dict):
            return
        services = data.get("services")
        for name, svc in (services.items() if isinstance(services, dict) else []):
            sources = svc.get("data") if isinstance(svc, dict) else None
            for dname, src in (sources.items() if isinstance(sources, dict) else []):
                engine = src.get("engine") if isinstance(src, dict) else None
                if (
                    isinstance(engine, str)
                    and re.match(m.ENGINE_NAME_PATTERN, engine)  # else the model said so
                    and engine not in self.engines
                ):
                    self.unknown_engine(("services", name, "data", dname), engine)

    def check_data_sources(self) -> None:
        for name, svc in self.plan.services.items():
            for dname, src in svc.data.items():
                loc = ("services", name, "data", dname)
                if src.method == "cold" and not (src.volume or src.bind):
                    self.add(
                        loc,
                        "method cold copies a volume or a host directory: set `volume` or `bind`",
                    )
                engine = self.engine_of(src)
                if self.engines is None:
                    continue
                if engine is None:
                    self.unknown_engine(loc, src.engine)
                    continue
                if src.method not in engine.methods:
                    self.add(
                        (*loc, "method"),
                        f"engine {engine.name} has no method {src.method!r} "
                        f"(it has {', '.join(engine.methods)})",
                    )
                for sub, message in engine.source_problems(src):
                    self.add((*loc, *sub), message)
            volumes = Counter(s.volume for s in svc.data.values() if s.volume)
            for dname, src in svc.data.items():
                if src.volume and volumes[src.volume] > 1 and src.method == "cold":
                    self.add(
                        ("services", name, "data", dname, "volume"),
                        f"volume {src.volume!r} is backed up by two sources of this service",
                        severity="warning",
                    )

    def check_checks(self) -> None:
        for name, svc in self.plan.services.items():
            # without a catalogue every source may be an SQL database
            dbs = [
                d
                for d, s in svc.data.items()
                if self.engines is None or self.runs_sql(s)
            ]
            items: list[tuple[tuple[Any, ...], Any]] = []
            if svc.health is not None:
                items.append((("services", name, "health"), svc.health))
            items.extend((("services", name, "checks", i), c) for i, c in enumerate(svc.checks))
            for loc, check in items:
                if not isinstance(check, m.SqlCheck):
                    continue
                if check.source is not None:
                    if check.source not in svc.data:
                        self.add((*loc, "source"), f"unknown data source {check.source!r}")
                    elif check.source not in dbs:
                        self.add(
                            (*loc, "source"), f"data source {check.source!r} is not an SQL database"
                        )
                elif not dbs:
                    self.add(loc, f"an sql check needs an SQL data source on {name!r}")

    def check_hooks(self) -> None:
        """A container-side before_restore hook needs a running container: there is one
        only when all the service's data is replayed into its running server."""
        if self.engines is None:  # which data is replayed into a server is the engine's
            return
        for name, svc in self.plan.services.items():
            dumps = [s for s in svc.data.values() if self.into_server(s)]
            if svc.data and len(dumps) == len(svc.data):
                continue
            for i, hook in enumerate(svc.hooks.before_restore):
                if hook.where == "container":
                    self.add(
                        ("services", name, "hooks", "before_restore", i),
                        f"{name} has no running container before its data is restored "
                        "(files are put back before it starts): run this hook with "
                        "`where: host`, or make it an after_restore hook",
                    )

    # -- risks and crisis cell -----------------------------------------------------------------

    def check_risks(self) -> None:
        counts = Counter(r.id for r in self.plan.risks)
        seen: set[str] = set()
        for i, risk in enumerate(self.plan.risks):
            if counts[risk.id] > 1 and risk.id in seen:
                self.add(("risks", i, "id"), f"duplicate risk id {risk.id!r}")
            seen.add(risk.id)

    def check_crisis_cell(self) -> None:
        cell = self.plan.crisis_cell
        if cell is None:
            return
        for role in m.Roles.model_fields:
            members = getattr(cell.roles, role)
            if not members:
                self.add(
                    ("crisis_cell", "roles"), f"nobody holds the role {role}", severity="warning"
                )
            for i, pid in enumerate(members):
                if pid not in cell.people:
                    self.add(
                        ("crisis_cell", "roles", role, i),
                        f"unknown person {pid!r}{_suggest(pid, cell.people)}",
                    )
        for i, crit in enumerate(cell.activation):
            if isinstance(crit, m.ServiceDownCriterion):
                for j, sname in enumerate(crit.services):
                    if sname not in self.plan.services:
                        self.add(
                            ("crisis_cell", "activation", i, "services", j),
                            f"unknown service {sname!r}{_suggest(sname, self.plan.services)}",
                        )


def _check_compose(
    loaded: ParsedPlan, checker: _Checker, environ: Mapping[str, str] | None = None
) -> tuple[list[Problem], ComposeProject | None]:
    """The compose files exist, parse, and name the plan's services and volumes."""
    plan = loaded.plan
    assert plan is not None
    doc = loaded.doc
    problems: list[Problem] = []
    paths: list[Path] = []
    shown: list[str] = []
    for i, rel in enumerate(plan.stack.compose):
        p = (loaded.base_dir / rel) if not Path(rel).is_absolute() else Path(rel)
        if not p.is_file():
            what = "is a directory" if p.is_dir() else "does not exist"
            problems.append(doc.problem(("stack", "compose", i), f"compose file {rel!r} {what}"))
            continue
        paths.append(p)
        shown.append(_display(doc.file, rel))
    if len(paths) != len(plan.stack.compose):
        return problems, None
    project, cproblems = load_compose(paths, display=shown, environ=environ)
    problems.extend(cproblems)
    if cproblems and not project.services:
        return problems, project
    for name, svc in plan.services.items():
        if name not in project.services:
            problems.append(
                doc.problem(
                    ("services", name),
                    f"service {name!r} is not in the compose file(s)"
                    + _suggest(name, project.services),
                    key=True,
                )
            )
            continue
        mounted = set(project.services[name].volumes)
        for dname, src in svc.data.items():
            if not src.volume:
                continue
            loc = ("services", name, "data", dname, "volume")
            if src.volume not in project.volumes:
                problems.append(
                    doc.problem(
                        loc,
                        f"volume {src.volume!r} is not declared in the compose file(s)"
                        + _suggest(src.volume, project.volumes),
                    )
                )
            elif src.volume not in mounted:
                problems.append(
                    doc.problem(loc, f"service {name!r} does not mount volume {src.volume!r}")
                )
    for cname, csvc in project.services.items():
        # a service of a Compose profile that is not active is not deployed: nothing to order
        if cname not in plan.services and csvc.active:
            problems.append(
                doc.problem(
                    ("services",),
                    f"compose service {cname!r} is not in the plan: recovery will not start it "
                    "in order (add it, even without data)",
                    severity="warning",
                )
            )
    for sname, site in plan.sites.items():
        for vname in site.volume_options:
            if vname not in project.volumes:
                problems.append(
                    doc.problem(
                        ("sites", sname, "volume_options", vname),
                        f"volume {vname!r} is not declared in the compose file(s)"
                        + _suggest(vname, project.volumes),
                        key=True,
                    )
                )
    problems.extend(_kept_files(project, plan, loaded.base_dir))
    problems.extend(_drill_isolation(project, set(plan.services)))
    problems.extend(bind_problems(project, plan, doc))
    problems.extend(unprotected_state(project, plan, checker.engines))
    return problems, project


def _kept_files(project: ComposeProject, plan: m.Plan, plan_dir: Path) -> list[Problem]:
    """Warnings: secret and config files outside the plan's folder, which a run does not
    keep (a recovery from the repository alone could not create them)."""
    out = []
    objects = stack_objects(project, [s for s in plan.services if s in project.services])
    for obj in files_outside(objects, plan_dir):
        top = f"{obj.kind}s"
        doc = next(
            (d for d in project.documents if obj.key in ((d.data or {}).get(top) or {})),
            project.documents[0],
        )
        out.append(
            doc.problem(
                (top, obj.key, "file"),
                f"{obj.kind} {obj.key}: file {obj.file} is outside the plan's folder, not "
                "kept with the run: keep it with your recovery kit",
                severity="warning",
            )
        )
    return out


def _drill_isolation(project: ComposeProject, services: set[str]) -> list[Problem]:
    """Warnings: storage of the plan's services that a drill's copy would share with
    production (explicit names, external, driver options, bind mounts), and what a drill
    does with each. Warnings, not errors: production runs fine with them; the operator
    should know a drill remaps them (its restore would otherwise overwrite production's
    data) or refuses the service."""
    docs = project.documents
    return [
        docs[s.doc].problem(s.loc, s.message, severity="warning")
        for s in shared_storage([d.data for d in docs])
        if s.service in services
    ]


def _raw_view(data: Any) -> Any:
    """Services' ``depends_on`` and profiles' ``services`` from data the model rejected."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return None

    def names(value: Any) -> list[str]:
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    services = {
        k: SimpleNamespace(depends_on=names(v.get("depends_on")) if isinstance(v, dict) else [])
        for k, v in data["services"].items()
        if isinstance(k, str)
    }
    raw_profiles = data.get("profiles")
    profiles = {
        k: SimpleNamespace(services=names(v.get("services")))
        for k, v in (raw_profiles.items() if isinstance(raw_profiles, dict) else [])
        if isinstance(k, str) and isinstance(v, dict)
    }
    return SimpleNamespace(services=services, profiles=profiles)


def _display(plan_file: str, rel: str) -> str:
    """How to show a compose file: relative to where the plan was named from."""
    parent = Path(plan_file).parent
    return str(parent / rel) if str(parent) != "." else rel


def _suggest(name: str, choices: Any) -> str:
    import difflib

    hits = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {hits[0]!r}?)" if hits else ""
