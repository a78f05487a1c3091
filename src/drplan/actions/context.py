"""What every action starts from: a validated plan, its sites and its repositories.

A plan is trusted when the operator gave it (a file of theirs). A plan read back from a
repository (`recover --repo` with no local plan) is not: whoever could write to the
repository wrote it, and its `{command:}` secrets, host-side checks and hooks would run
as the operator on the operator's host. Such a plan is loaded with ``trusted=False``;
:meth:`PlanContext.host_actions` lists what it would run or read on this host, and the
recovery refuses to start while that list is not empty (unless the operator passed
--trust-stored-plan). The refusal is up front because the data sources resolve their
own passwords (drplan.secrets.resolve, in the source modules); the secrets resolved
through this context (:meth:`PlanContext.resolve`, :meth:`PlanContext.repository`) also
refuse an untrusted `{command:}` where they are asked for. `{env:}` and `{file:}`
references keep working: they name what the operator's own environment holds, and run
nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from drplan.errors import InputError, OperationError
from drplan.plan import model as m
from drplan.plan.loaded import LoadedPlan
from drplan.plan.loader import Problem, gc_paused
from drplan.plan.validate import validate_file
from drplan.secrets import resolve
from drplan.sources import registry
from drplan.store.restic import Repository

if TYPE_CHECKING:
    from drplan.platform.docker import DockerEngine

TRUST_FLAG = "--trust-stored-plan"


def open_engine(site_name: str, site: m.Site) -> DockerEngine:
    """The site's engine, reached as the plan says: its URL, its nodes' endpoints, the ssh
    configuration of its ssh:// ones and the TLS files of its tcp:// ones."""
    # the Docker SDK is imported by the commands that reach an engine, not by every
    # command that loads a plan (`drplan plan`, `validate`, `crisis`: start-up time)
    from drplan.platform.docker import DockerEngine

    return DockerEngine(
        site_name,
        site.docker_host,
        node_url=site.node_url,
        ssh_config=site.ssh_config,
        tls=site.tls,
    )


@dataclass
class PlanContext(LoadedPlan):
    """A loaded plan with what the actions reach through it: its sites' engines, its
    repositories and its secrets."""

    def engine(self, name: str | None = None, role: str = "primary") -> DockerEngine:
        """The site's engine. Every command that reaches it first brings back the
        services a killed cold backup left at 0 there (threat model, class 7)."""
        from drplan.sources.cold import restore_abandoned

        site_name, site = self.site(name, role)
        engine = open_engine(site_name, site)
        stack = self.stack_name(site)
        try:
            back = restore_abandoned(engine, stack)
        except OperationError:
            raise
        except Exception:  # not a swarm manager, no such stack: nothing was left there
            back = []
        if back:
            sys.stderr.write(
                f"drplan: scaled back {', '.join(back)} of stack {stack} on site {site_name}:"
                " a cold backup that was killed had left them at 0 replicas\n"
            )
        return engine

    def repository(self, name: str | None = None) -> Repository:
        name = name or self.plan.primary_repository()
        if name is None or name not in self.plan.repositories:
            raise InputError(f"unknown repository {name!r}", where=str(self.path))
        return open_repository(name, self.plan.repositories[name], self.dir, trusted=self.trusted)

    def resolve(self, secret: m.Secret, what: str) -> str:
        """A secret of this plan (a `{command:}` one refused if the plan is not trusted;
        an `{env:}` one the environment does not set read from the stack's `.env`)."""
        return resolve_secret(
            secret,
            base=self.dir,
            what=what,
            trusted=self.trusted,
            dotenv=self.compose.dotenv_variables(),
        )

    def host_actions(self, services: list[str] | None = None) -> list[str]:
        """What recovering `services` (default: all) with this plan would run or read on
        this host, each as its location in the plan: `{command:}` secrets of their data
        sources, host-side checks and restore hooks, and compose files
        (`secrets`/`configs` `file:`, `env_file`) outside the plan's folder, which
        `docker stack deploy` reads here and hands to the stack's containers.

        Checks and hooks that run in the service's own containers are not listed: those
        run the backup's images on the target engine anyway. Nor are the repositories'
        secrets: a recovery from the repository alone reads it with the operator's own
        --repo and password; should anything ask for them, :meth:`repository` refuses a
        `{command:}` one."""
        found: list[str] = []
        for sname in services if services is not None else list(self.plan.services):
            svc = self.plan.services[sname]
            where = f"services.{sname}"
            for dname, spec in svc.data.items():
                if spec.password is not None and spec.password.command:
                    found.append(
                        f"{where}.data.{dname}.password: {{command: {spec.password.command}}}"
                    )
            checks = [("health", svc.health)] if svc.health is not None else []
            checks += [(f"checks[{i}]", c) for i, c in enumerate(svc.checks)]
            for label, check in checks:
                if isinstance(check, m.CommandCheck) and check.where == "host":
                    found.append(f"{where}.{label}: host-side command {check.command!r}")
            for kind in ("before_restore", "after_restore"):
                for i, hook in enumerate(getattr(svc.hooks, kind)):
                    if hook.where == "host":
                        found.append(f"{where}.hooks.{kind}[{i}]: host-side hook {hook.run!r}")
        for rel in self.plan.stack.compose:
            found += [
                f"{rel}: {what}" for what in _outside_files(self.dir / rel, self.dir, services)
            ]
        return found

    def untrusted_refusal(self, found: list[str]) -> str:
        """The message refusing an untrusted plan's host actions (what, where, the flag)."""
        return (
            "the plan read from the repository would run or read on this host:\n  "
            + "\n  ".join(found)
            + f"\nnothing was run. Read the plan (drplan recover --repo ... --dry-run "
            f"prints where it is), then pass {TRUST_FLAG} to allow it"
        )

    def copies(self) -> list[Repository]:
        primary = self.plan.primary_repository()
        return [
            self.repository(n)
            for n, r in self.plan.repositories.items()
            if n != primary and r.role == "copy"
        ]


def resolve_secret(
    secret: m.Secret,
    *,
    base: Path,
    what: str,
    trusted: bool = True,
    dotenv: dict[str, str] | None = None,
) -> str:
    """drplan.secrets.resolve, except that an untrusted plan's `{command:}` is refused."""
    if secret.command and not trusted:
        raise InputError(
            f"the plan read from the repository names a {{command:}} secret "
            f"({secret.command!r}); drplan does not run commands of a stored plan unless "
            f"you pass {TRUST_FLAG}",
            where=what,
        )
    return resolve(secret, base=base, what=what, dotenv=dotenv)


def _outside_files(compose: Path, base: Path, services: list[str] | None) -> list[str]:
    """Host files a compose file makes `docker stack deploy` read that are not in `base`
    (the folder a stored plan was unpacked into): secrets/configs `file:` and env_file."""
    try:
        doc = yaml.safe_load(compose.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []  # validation already said so
    if not isinstance(doc, dict):
        return []
    root = base.resolve()
    refs: list[tuple[str, str]] = []
    for key in ("secrets", "configs"):
        for name, spec in (doc.get(key) or {}).items():
            if isinstance(spec, dict) and isinstance(spec.get("file"), str):
                refs.append((f"{key}.{name}.file", spec["file"]))
    for name, spec in (doc.get("services") or {}).items():
        if (services is not None and name not in services) or not isinstance(spec, dict):
            continue
        env_file = spec.get("env_file")
        files = [env_file] if isinstance(env_file, str) else env_file or []
        for i, f in enumerate(files):
            path = f.get("path") if isinstance(f, dict) else f
            if isinstance(path, str):
                refs.append((f"services.{name}.env_file[{i}]", path))
    out = []
    for where, ref in refs:
        full = (compose.parent / Path(ref).expanduser()).resolve()
        if not full.is_relative_to(root):
            out.append(f"{where}: host file {ref} (outside the plan's folder)")
    return out


def open_repository(
    name: str, spec: m.Repository, base: Path, *, trusted: bool = True
) -> Repository:
    where = f"repositories.{name}"
    return Repository(
        name=name,
        url=spec.url
        if spec.type != "local"
        else str((base / spec.url).resolve())
        if not spec.url.startswith("/")
        else spec.url,
        password=resolve_secret(
            spec.password, base=base, what=f"{where}.password", trusted=trusted
        ),
        type=spec.type or "local",
        append_only=spec.append_only,
        shared=spec.shared,
        env={
            k: resolve_secret(v, base=base, what=f"{where}.env.{k}", trusted=trusted)
            for k, v in spec.env.items()
        },
        options=dict(spec.options),
    )


class InvalidPlan(InputError):
    """A plan that does not validate. ``problems`` holds each error as one
    ``FILE:LINE:COL: path: message`` line; the CLI prints them, then this error, and exits
    2 (drplan.cli.app.report_error)."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        n = len(problems)
        super().__init__(
            f"the plan does not validate ({n} problem{'s' if n != 1 else ''})", where=str(path)
        )
        self.problems = problems


@dataclass
class PlanCheck:
    """What validating a plan file found: every problem (errors and warnings, in file
    order) and, when there is no error, the loaded plan."""

    file: str
    problems: list[Problem]
    context: PlanContext | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


def check_plan(path: str | Path, *, trusted: bool = True) -> PlanCheck:
    """Validate a plan file (model, semantics, compose files) once, and load it if it is
    valid. Never raises on any input: an unexpected failure of the validation itself is
    one more located problem (`drplan validate` must not end in a traceback)."""
    file = str(path)
    # one pause of the garbage collector for the whole validation, ended once the plan's
    # YAML nodes are freed: the one pass that follows sees only what the context keeps
    with gc_paused():
        try:
            # a plan read back from a repository interpolates none of the operator's
            # variables into its compose files (its own .env still applies)
            environ = None if trusted else {}
            result = validate_file(
                path, display=file, engines=registry.catalog(), compose_environ=environ
            )
        except Exception as exc:
            message = f"internal error while validating: {exc!r}"[:300]
            return PlanCheck(file, [Problem(file, 1, 1, "(plan)", message)], None)
        context = None
        if result.ok and result.plan is not None and result.compose is not None:
            context = PlanContext(
                Path(path).resolve(), result.plan, result.compose, trusted=trusted
            )
        elif not result.errors:  # no plan and no error: say so rather than load nothing
            result.problems.append(Problem(file, 1, 1, "(plan)", "the plan could not be loaded"))
        problems = result.problems
        del result
    return PlanCheck(file, problems, context)


def load_plan(path: str | Path, *, trusted: bool = True) -> PlanContext:
    """The plan every command starts from: validated once, or :class:`InvalidPlan` with
    every error located. `trusted=False` for a plan read back from a repository (see the
    module docstring)."""
    check = check_plan(path, trusted=trusted)
    if check.context is None:
        raise InvalidPlan(path, [p.format() for p in check.errors])
    return check.context
