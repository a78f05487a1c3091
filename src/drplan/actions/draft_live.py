"""Live evidence for `drplan init --from COMPOSE --from-stack NAME`: what the running
stack shows that its compose file does not say.

A compose file is not always conclusive: a database under a custom image name
(`acme/ledger:3`), an image from a variable, a data directory at a path no rule knows, a
volume that would be drafted as plain files. The stack's running containers are: the
programs they run (``postgres``, ``mariadbd``, ``redis-server``, ``mongod``...), the
files at the top of their mounted data directories (``PG_VERSION``, ``mysql/`` with
``ibdata1``, ``dump.rdb``...) and the variables their environment really has (the
image's own included). This module reads that through the one owner of the Engine API
(:class:`drplan.platform.docker.DockerEngine`: ``docker top``, ``docker inspect`` and
the stat of an archive path, so no tool is needed inside the containers) and turns it
into :class:`Evidence` that :mod:`drplan.actions.init` uses where the compose file is
not conclusive, and writes in the draft's notes so that a reviewer sees it.

What each engine or store shows is its own (``Engine.live_signs``, ``Store.live_signs``);
the matching here is pure (:func:`recognise`), tested without an engine.

Secrets: a process is reduced to its program's name (a command line may carry a
password); of the environment, every variable's *name* is read, and a value only when it
is not a secret (:func:`readable`: a user or database name, a ``*_FILE`` path, PGDATA).
Passwords stay references (``{env: NAME}``), as drafted from a compose file.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from drplan.errors import InputError, OperationError
from drplan.plan.compose import ComposeService
from drplan.platform.docker import Container, DockerEngine
from drplan.sources import registry
from drplan.sources.base import LiveSigns
from drplan.sources.stores import STORES

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
# /proc/PID/comm (what `ps` may show) is cut to 15 characters: `clickhouse-serv`
COMM_LEN = 15
# words of a variable's name that mark a secret: its value is never read
SECRET_WORDS = ("PASSWORD", "PASSWD", "PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE")
# variables whose value is a name a dump needs (a login, a database), never a secret
NAME_SUFFIXES = ("_USER", "_USERNAME", "_DB", "_DATABASE")
PATH_VARIABLES = ("PGDATA",)


@dataclass(frozen=True)
class Candidate:
    """An engine or a store, and what its running container shows."""

    name: str
    signs: LiveSigns
    store: bool = False


@dataclass(frozen=True)
class Observed:
    """What one service's running container showed (or why nothing was read)."""

    service: str
    container: str = ""
    why_not: str = ""  # set when no container of the service could be read
    processes: tuple[str, ...] = ()
    processes_read: bool = False
    files: Mapping[str, frozenset[str]] = field(default_factory=dict)  # dir -> names there
    env: Mapping[str, str] = field(default_factory=dict)  # every name; readable values only


@dataclass(frozen=True)
class Evidence:
    """An engine (or a store, drafted cold) recognised in a running container."""

    name: str
    store: bool
    seen: tuple[str, ...]  # "process postgres", "PG_VERSION in /srv/db"

    @property
    def text(self) -> str:
        return "seen live: " + ", ".join(self.seen)


def docker_url(site: str | None) -> str:
    """The engine `--from-stack` reads: `--site`, else DOCKER_HOST, else the local socket."""
    return site or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def candidates() -> list[Candidate]:
    """Every engine of the registry, then every store with no native method."""
    engines = [Candidate(n, e.live_signs) for n, e in registry.engines().items()]
    return engines + [Candidate(s.name, s.live_signs, store=True) for s in STORES]


def readable(name: str, value: str) -> bool:
    """Whether the value of an environment variable may be read: a `*_FILE` path (the
    secret is in the file, not in the variable), a user or database name, PGDATA; never a
    variable whose name speaks of a password, a secret, a token or a key."""
    up = name.upper()
    if up.endswith("_FILE"):
        return value.startswith("/") and "\n" not in value
    if any(word in up for word in SECRET_WORDS):
        return False
    return up in PATH_VARIABLES or up.endswith(NAME_SUFFIXES)


def runs(process: str, program: str) -> bool:
    """Whether a process name is `program` (a name cut to 15 characters counts)."""
    return process == program or (len(process) == COMM_LEN and program.startswith(process))


def recognise(
    obs: Observed, cands: Iterable[Candidate], prefer: str | None = None
) -> Evidence | None:
    """The engine or store a container runs: by its processes and data files together,
    else its processes, else its data files alone, but only when its processes could not
    be read (a server's files in the directory of a container running something else
    are a copy, not a server). A tie goes to `prefer` (the compose file's guess), else
    to the first candidate."""
    best: tuple[tuple[bool, bool, bool], Evidence] | None = None
    for cand in cands:
        procs = [p for p in cand.signs.processes if any(runs(q, p) for q in obs.processes)]
        files = [
            f"{', '.join(name.rstrip('/') for name in group)} in {where}"
            for where, present in obs.files.items()
            for group in cand.signs.files
            if set(group) <= present
        ]
        if not procs and (not files or obs.processes_read):
            continue
        score = (bool(procs), bool(files), cand.name == prefer)
        seen = tuple([f"process {p}" for p in procs[:1]] + files[:1])
        if best is None or score > best[0]:
            best = (score, Evidence(cand.name, cand.store, seen))
    return best[1] if best else None


def with_live_env(svc: ComposeService, obs: Observed) -> ComposeService:
    """The service with the variables its container really has added (the image's own):
    every name, a value only where it was readable; what the compose file sets wins."""
    if not obs.env:
        return svc
    return replace(svc, environment={**obs.env, **svc.environment})


def marker_names(cands: Iterable[Candidate]) -> list[str]:
    """Every name a candidate looks for in a data directory."""
    return sorted({name for c in cands for group in c.signs.files for name in group})


# -- reading the running stack (Engine API) ---------------------------------------------


def open_stack(url: str, stack: str) -> DockerEngine:
    """The engine holding the running stack `stack`; a clear error (exit 2) when the
    engine cannot be reached or has no such stack."""
    try:
        engine = DockerEngine("primary", url)
    except OperationError as exc:
        raise InputError(
            f"--from-stack {stack}: {exc.message} (give the engine with --site DOCKER_URL)",
            where="--site",
        ) from exc
    try:
        services = engine.services(stack)
    except OperationError as exc:
        engine.close()
        raise InputError(
            f"cannot list the services of stack {stack} on the Docker engine at {url} "
            f"(is it a Swarm manager?): {exc.message}",
            where="--from-stack",
        ) from exc
    if not services:
        engine.close()
        raise InputError(
            f"no stack {stack!r} runs on the Docker engine at {url} (`docker stack ls` "
            "there lists its stacks)",
            where="--from-stack",
        )
    return engine


def observe(
    url: str, stack: str, services: Mapping[str, ComposeService]
) -> tuple[dict[str, Observed], list[str]]:
    """What each compose service's running container shows, and the names of the
    stack's services the compose files do not define."""
    engine = open_stack(url, stack)
    try:
        names = {s.name[len(stack) + 1 :] for s in engine.services(stack)}
        cands = candidates()
        found = {
            n: observe_service(engine, stack, svc, cands) if n in names else not_in_stack(n)
            for n, svc in services.items()
        }
    finally:
        engine.close()
    return found, sorted(names - set(services))


def not_in_stack(name: str) -> Observed:
    return Observed(name, why_not="no such service in the running stack")


def observe_service(
    engine: DockerEngine, stack: str, svc: ComposeService, cands: list[Candidate]
) -> Observed:
    """One service: its first running container's processes, environment and the
    data files at the top of its mounts (and of the data directories engines name
    inside them)."""
    try:
        running = engine.containers(stack, svc.name)
    except OperationError as exc:
        return Observed(svc.name, why_not=f"its container cannot be reached ({exc.message})")
    if not running:
        status = engine.task_status(stack, svc.name)
        return Observed(svc.name, why_not="not running" + (f" ({status})" if status else ""))
    container = running[0]
    config = engine.container_config(container, readable=readable)
    try:
        processes, read = tuple(engine.process_names(container)), True
    except OperationError:
        processes, read = (), False
    targets = [mt.target.rstrip("/") or "/" for mt in config.mounts]
    live_svc = with_live_env(svc, Observed(svc.name, env=config.env))
    inside = {
        d.rstrip("/")
        for e in registry.engines().values()
        for d in e.data_dirs(live_svc)
        if any(d.startswith(t + "/") for t in targets)
    }
    files = {}
    for where in [*targets, *sorted(inside - set(targets))]:
        present = _present(engine, container, where, marker_names(cands))
        if present:
            files[where] = present
    return Observed(
        svc.name,
        container=container.name,
        processes=processes,
        processes_read=read,
        files=files,
        env=dict(config.env),
    )


def _present(
    engine: DockerEngine, container: Container, where: str, names: list[str]
) -> frozenset[str]:
    """Which of `names` are at the top of directory `where` (a trailing `/`: a directory)."""
    if engine.path_kind(container, where) != "dir":
        return frozenset()
    out = set()
    for name in names:
        kind = engine.path_kind(container, posixpath.join(where, name.rstrip("/")))
        if kind is not None and (kind == "dir") == name.endswith("/"):
            out.add(name)
    return frozenset(out)
