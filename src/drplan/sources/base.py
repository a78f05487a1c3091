"""What every engine is, what it gets to work with, and what it gives back.

An *engine* (``postgresql``, ``mariadb``, ``redis``, ``sqlite``, ``files``...) is one
module of this package holding one object, ``ENGINE``, that satisfies :class:`Engine`:
everything drplan knows about that kind of data is there and nowhere else: how to back
it up, restore it, fingerprint it (live, and as stored), whether a target is empty, how
to run an SQL check, what `drplan init` recognises, what the schedule must know of its
restore, what `drplan validate` requires of a source, and the by-hand commands of the
runbook. The registry (:mod:`drplan.sources.registry`) finds engines by module name and
every consumer asks it; adding an engine is adding one module (see docs/design/engines.md).

:class:`EngineDefaults` gives the optional members a neutral default, so a new engine
writes only what differs. The `cold` method is not an engine: it wraps the `files` copy
of any engine's volume (:mod:`drplan.sources.cold`) and provides :class:`SourceOps` only.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.plan.compose import ComposeService

if TYPE_CHECKING:  # types only: the registry stays cheap to import (see engines.md)
    from drplan.platform.docker import DockerEngine
    from drplan.store.manifest import SourceRecord
    from drplan.store.restic import Repository

MB = 10**6
# A location inside a data source, relative to it: () is the source itself, ("path",)
# its `path` key; `drplan validate` prefixes it with services.<name>.data.<source>.
SourceLoc = tuple[str | int, ...]


@dataclass
class SourceContext:
    """One data source of one service, on one engine, for one run."""

    engine: DockerEngine
    repo: Repository
    stack: str  # the stack's name on this engine (prefix included)
    plan_name: str
    service: str
    name: str
    spec: m.DataSource
    run_id: str = ""
    plan_dir: Path = Path(".")
    # what the stack's .env sets: `{env:}` passwords the environment lacks are read there
    dotenv: dict[str, str] = field(default_factory=dict)
    force: bool = False
    host: str = "drplan"
    helper_image: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600)
    progress: Callable[[int], None] = lambda n: None
    # set by the caller for the volume's full name on the engine (stack prefix applied)
    volume: str | None = None
    # a `bind` source: its host directory on this engine's node (the site's mapping applied)
    bind: str | None = None
    # the same source's snapshot in the previous complete run (incremental parent)
    parent: str | None = None
    # where the volume is mounted in the service (from the compose file)
    mount_target: str | None = None
    # cold method: services to scale to 0, dependents first
    quiesce: list[str] = field(default_factory=list)
    # restore: what the backup recorded about the source (the manifest record's stats)
    backup_stats: dict = field(default_factory=dict)

    def mount_relative(self, path: str) -> str:
        """`path` (inside the service) relative to the volume's mount point."""
        if self.mount_target and path.startswith(self.mount_target.rstrip("/") + "/"):
            return posixpath.relpath(path, self.mount_target)
        return posixpath.basename(path)

    @property
    def what(self) -> str:
        return f"service {self.service}, source {self.name} ({self.spec.engine})"

    @property
    def filename(self) -> str:
        return f"{self.service}/{self.name}"

    def tags(self, kind: str) -> list[str]:
        return [
            "drplan",
            f"plan:{self.plan_name}",
            f"run:{self.run_id}",
            f"kind:{kind}",
            f"service:{self.service}",
            f"source:{self.name}",
        ]

    def container(self):
        """The running container of this source's service."""
        return self.engine.wait_running(self.stack, self.service, self.deadline)

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.progress(len(chunk))
            yield chunk


@dataclass
class BackupResult:
    snapshot: str
    bytes: int
    fingerprint: dict
    path: str  # file or directory inside the snapshot
    consistency: str
    downtime_s: dict[str, float] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SqlCommand:
    """One SQL query run by the database's own client in its service's container.

    `argv` holds the query whole. The password never goes in argv (it would show in
    `ps` and `docker inspect` of the exec): the caller puts it in the exec's environment
    as `password_env` when the source names one, and the runbook tells the operator to
    export that variable."""

    argv: list[str]
    password_env: str | None = None


@dataclass(frozen=True)
class Detection:
    """What `drplan init` recognised in a compose service. `strength` orders rival
    guesses: 2 from the image's name, 1 from the environment."""

    method: str  # dump | cold
    reason: str  # shown to the author, e.g. "image 'postgres'"
    strength: int = 2


@dataclass(frozen=True)
class LiveSigns:
    """What shows, in a running container, that it runs an engine or a store (`drplan
    init --from-stack`, :mod:`drplan.actions.draft_live`): the names of its server
    programs, and sets of names found together at the top of a mounted data directory
    (a name ending in `/` is a directory), e.g. ``("mysql/", "ibdata1")``."""

    processes: tuple[str, ...] = ()
    files: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class DraftUser:
    """Who a drafted plan's dumps log in as, read from the service's environment.

    A password is only ever *named*: the variable holding it (`password_env`) or the
    file in the container a `*_FILE` variable points at (`password_file`, a secret);
    `drplan init` turns that into a `{env: VAR}` / `{file: PATH}` reference. A user name
    may also come from a file (`user_file`, e.g. `POSTGRES_USER_FILE`)."""

    user: str | None = None
    user_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    why: str = ""
    databases: tuple[str, ...] = ()  # what the user can read, when not everything
    assumed: bool = False  # the image's default user: nothing in the service names one


@dataclass
class Procedure:
    """The by-hand commands of one runbook step: `sh` blocks that run on their own."""

    purpose: str
    blocks: list[tuple[str, str]]  # (caption, sh text)
    checks: list[tuple[str, str]] = field(default_factory=list)
    # what to run instead of `blocks` in another situation: (when, caption, one line)
    alternatives: list[tuple[str, str, str]] = field(default_factory=list)


class ShellKit(Protocol):
    """What the runbook gives an engine to write its by-hand commands with
    (:class:`drplan.runbook.shell.Generator` is one). Every value written into a block
    goes through :meth:`sh`; engines quote SQL identifiers themselves."""

    local: bool  # the target engine runs on this host: its volumes' directories are here

    def sh(self, value: object) -> str:
        """`value` as exactly one shell word."""
        ...

    def sh_join(self, argv: list[str]) -> str: ...

    def dump(self, snapshot: str, path: str) -> str:
        """restic writing one file of a snapshot to stdout."""
        ...

    def container(self, service: str) -> str:
        """Lines that set `$C` to a running container of the service (or stop)."""
        ...

    def mountpoint(self, volume: str) -> str:
        """Lines that set `$MP` to the volume's directory on this host (or stop)."""
        ...

    def volume(self, name: str) -> str:
        """The compose volume's full name on the target (stack prefix applied)."""
        ...

    def volume_file(self, service: str, source: str, rel: object) -> str:
        """A file name from the manifest, refused unless it stays inside its volume."""
        ...

    def image(self, service: str) -> str | None:
        """The service's image, from the compose file."""
        ...

    def expect(self, cmd: str, value: object, label: str) -> str:
        """Lines that run `cmd` and stop unless it prints `value`."""
        ...


class SourceOps(Protocol):
    """What a run does with one data source: an engine, or the cold method wrapping the
    files copy of one (:func:`drplan.sources.registry.operations` picks)."""

    consistency: str

    def backup(self, ctx: SourceContext) -> BackupResult:
        """Store the source in the repository; the fingerprint of what was stored."""
        ...

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        """Put a stored backup back, all or nothing."""
        ...

    def fingerprint(self, ctx: SourceContext) -> dict:
        """The live data's fingerprint, comparable with the backup's (:meth:`compare`)."""
        ...

    def stored_fingerprint(
        self,
        repo: Repository,
        record: SourceRecord,
        *,
        engine: DockerEngine | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        """The fingerprint of what a backup stored, read back from the repository
        (`drplan check`). With an `engine`, a stored file the workload made is opened
        in a helper container there (labelled `labels`), not by this host's tools."""
        ...

    def is_empty(self, ctx: SourceContext) -> bool:
        """Whether the target holds no data of this source (a recovery's precondition)."""
        ...

    def compare(self, expected: dict, actual: dict) -> list[str]:
        """Readable differences between two fingerprints (empty when they agree)."""
        ...

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        """The runbook's by-hand restore of this source from the run's `record`."""
        ...

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        """Shell lines comparing the recovered data with the backup ("" if none)."""
        ...


class Engine(SourceOps, Protocol):
    """Everything drplan knows of one kind of data; one module, ``ENGINE = ...``.

    Its `name` is its module's name (``drplan.sources.<name>``): the registry finds it
    there, and a plan names it in `engine:` (or one of its `aliases`)."""

    name: str
    aliases: tuple[str, ...]
    summary: str  # one line: what it is and how it is copied (docs, `drplan validate`)
    methods: tuple[str, ...]  # of the plan's Method: "dump", "cold"

    # -- what the run and the schedule must know --------------------------------------
    dump_needs_server: bool  # a dump reads the running service (its server must be up)
    restores_into_server: bool  # a dump is replayed into the running server, after its
    # health gate; otherwise files are written into the fresh volume before it starts
    restore_bps: float  # default restore throughput (bytes/s) for estimates
    runs_sql: bool  # `type: sql` checks can query it (see sql_command)

    def source_problems(self, src: m.DataSource) -> list[tuple[SourceLoc, str]]:
        """What `drplan validate` reports about a source of this engine, each located
        relative to the source (``()``: the source itself)."""
        ...

    def sql_command(self, src: m.DataSource, query: str) -> SqlCommand | None:
        """The client's command line for an SQL check (None unless `runs_sql`)."""
        ...

    # -- drplan init -----------------------------------------------------------------
    def detect(self, svc: ComposeService) -> Detection | None:
        """Whether a compose service runs this engine (from its image or environment)."""
        ...

    def data_dirs(self, svc: ComposeService) -> tuple[str, ...]:
        """Where the service keeps this engine's data, most likely first."""
        ...

    def guess_health(self, name: str, svc: ComposeService) -> tuple[dict[str, Any], str] | None:
        """A health check for the drafted plan (as plan data) and why, or None."""
        ...

    def draft_checks(self) -> list[dict[str, Any]]:
        """Validation checks a drafted plan gives a service of this engine."""
        ...

    def draft_user(self, svc: ComposeService) -> DraftUser | None:
        """The login (and the name of its password) a dump of this service must use."""
        ...

    live_signs: LiveSigns  # what a running container of this engine shows (--from-stack)

    # -- readiness -------------------------------------------------------------------
    def wait_ready(self, ctx: SourceContext, deadline: float) -> None:
        """Wait until the service's server answers by its own tool (``pg_isready``...),
        whatever the plan's health check says: a running task is not a ready server.
        Raises a located OperationError at `deadline`. A no-op for file engines."""
        ...


class EngineDefaults:
    """Neutral defaults of the optional members of :class:`Engine`: an engine class
    derives from it and writes what differs. No detection, no SQL, no by-hand
    procedure, both methods, restored as files before the service starts."""

    aliases: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("dump", "cold")
    dump_needs_server = False
    restores_into_server = False
    restore_bps: float = 100 * MB
    runs_sql = False
    live_signs = LiveSigns()

    def source_problems(self, src: m.DataSource) -> list[tuple[SourceLoc, str]]:
        return []

    def sql_command(self, src: m.DataSource, query: str) -> SqlCommand | None:
        return None

    def detect(self, svc: ComposeService) -> Detection | None:
        return None

    def data_dirs(self, svc: ComposeService) -> tuple[str, ...]:
        return ()

    def guess_health(self, name: str, svc: ComposeService) -> tuple[dict[str, Any], str] | None:
        return None

    def draft_checks(self) -> list[dict[str, Any]]:
        return []

    def draft_user(self, svc: ComposeService) -> DraftUser | None:
        return None

    def wait_ready(self, ctx: SourceContext, deadline: float) -> None:
        return None

    def compare(self, expected: dict, actual: dict) -> list[str]:
        return compare_dicts(expected, actual)

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        return Procedure(
            f"No by-hand procedure for {service}/{source} ({record.engine}, {record.method}).",
            [],
        )

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        return ""


# How long a native restore waits at most for its server to become ready (an initdb on
# an empty volume, a big RDB loading), on top of the task running.
READY_TIMEOUT_S = 600.0
# A probe's exit status meaning "the tool is not in this container": no point waiting.
NO_TOOL = 127


@dataclass(frozen=True)
class ReadyProbe:
    """An engine's readiness probe, run in its service's container: `argv` exits 0 when
    the server accepts connections (on TCP: the temporary server an image's entrypoint
    runs while initialising an empty volume listens on no TCP address, and is stopped
    again), 127 when the tool is missing; `expect`, if set, is what stdout must say."""

    argv: list[str]
    label: str  # what the operator reads: "pg_isready on localhost:5432"
    expect: str = ""  # stdout must start with it ("" when the status says it all)

    def ready(self, exit_code: int, stdout: bytes) -> bool:
        if exit_code != 0:
            return False
        return stdout.decode(errors="replace").strip().startswith(self.expect)


def wait_until_ready(
    ctx: SourceContext,
    probe: ReadyProbe,
    deadline: float,
    *,
    settle: int = 2,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run `probe` in the service's running container until it succeeds `settle` times in
    a row on the same container (a server restarted by its entrypoint, or a task
    replaced, starts the count again); raise at `deadline` naming the service, the
    source and the last answer."""
    streak, last, seen = 0, "no running container yet", ""
    while True:
        try:
            container = ctx.engine.wait_running(ctx.stack, ctx.service, deadline, healthy=False)
            res = ctx.engine.exec_run(
                container, probe.argv, what=f"{ctx.what}: {probe.label}", check=False
            )
        except OperationError as exc:
            streak, last = 0, str(exc)
        else:
            if res.exit_code == NO_TOOL:
                raise OperationError(
                    f"cannot tell whether the server is ready: {probe.label} is not in the "
                    "container of the service's image",
                    where=f"{ctx.what}, waiting for its server",
                )
            if probe.ready(res.exit_code, res.stdout):
                streak = streak + 1 if container.id == seen else 1
                seen = container.id
                if streak >= settle:
                    return
                last = "answered, waiting for it to stay up"
            else:
                streak = 0
                out = (res.stdout + b" " + res.stderr).decode(errors="replace").strip()
                last = f"exit status {res.exit_code}" + (f": {out[:200]}" if out else "")
        if clock() > deadline:
            raise OperationError(
                f"the server is not ready in time ({probe.label}: {last})",
                where=f"{ctx.what}, waiting for its server",
            )
        sleep(interval)


def protocol_members(proto: type) -> set[str]:
    """The attribute and method names a Protocol class (and its Protocol bases) declares."""
    names: set[str] = set()
    for klass in proto.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False) or klass is Protocol:
            continue
        names.update(getattr(klass, "__annotations__", {}))
        names.update(k for k, v in vars(klass).items() if callable(v) and not k.startswith("_"))
    return names


def missing_members(obj: object, proto: type) -> list[str]:
    """What `obj` lacks of `proto` (a complete engine lacks nothing)."""
    return sorted(name for name in protocol_members(proto) if not hasattr(obj, name))


def image_basename(image: str | None) -> str:
    """``registry:5000/drplan-tb/postgres:15@sha256:…`` → ``postgres``."""
    if not image:
        return ""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0].lower()


# Words of an image name that make it a tool around a store, not the store itself
# (`postgres-exporter`, `mongo-express`, `redis-commander`, `opensearch-dashboards`...).
NOT_A_STORE = frozenset(
    {
        "exporter", "express", "commander", "insight", "dashboards", "dashboard", "admin",
        "adminer", "meta", "ui", "web", "operator", "proxy", "bouncer", "pgbouncer", "pool",
        "client", "cli", "backup", "backups", "console", "studio", "gui", "manager", "browser",
        "agent", "sidecar", "init", "migrate", "migrations",
    }
)


def image_components(image: str | None) -> list[str]:
    """The words of an image's base name: ``percona/mongodb_exporter:0.4`` →
    ``["mongodb", "exporter"]``. Matching whole words, not substrings, is what keeps
    `postgrest`, `redisinsight` and `postgres-exporter` from passing for databases."""
    return [w for w in re.split(r"[-_.]+", image_basename(image)) if w]


def image_names(image: str | None, names: Iterable[str]) -> str | None:
    """The first of `names` that is a whole word of the image's base name (a trailing
    version counts: ``postgres15``, ``pgadmin4`` does not match ``pg``), unless another
    word marks a tool around the store (:data:`NOT_A_STORE`)."""
    words = image_components(image)
    if not words or any(w in NOT_A_STORE for w in words):
        return None
    for name in names:
        if any(w == name or (w.startswith(name) and w[len(name) :].isdigit()) for w in words):
            return name
    return None


def image_keyword(svc: ComposeService, keywords: Iterable[str]) -> Detection | None:
    """A detection when one of `keywords` is a whole word of the image's base name."""
    if image_names(svc.image, keywords):
        return Detection("dump", f"image {image_basename(svc.image)!r}", strength=3)
    return None


def mounted_dir(svc: ComposeService, dirs: Iterable[str]) -> str | None:
    """The first of `dirs` the service mounts something on (a volume, a bind mount, an
    anonymous volume): where an engine keeps its data says what the service runs."""
    targets = {mt.target.rstrip("/") for mt in svc.mounts if mt.type != "tmpfs"}
    return next((d for d in dirs if d.rstrip("/") in targets), None)


def env_ref(svc: ComposeService, *names: str) -> str | None:
    """The first of `names` the service's environment sets (even empty)."""
    return next((n for n in names if n in svc.environment), None)


_CLIENT_SUFFIXES = ("_HOST", "_URL", "_URI", "_ADDR", "_SERVER")


def is_client(svc: ComposeService) -> bool:
    """The environment names a server elsewhere (`POSTGRES_HOST`, `DB_URL`...): the
    service is a client of a database, not the database."""
    return any(k.endswith(_CLIENT_SUFFIXES) for k in svc.environment)


def compare_dicts(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """Readable differences between two fingerprints (empty when equal)."""
    diffs = []
    for key in sorted(set(expected) | set(actual), key=str):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += compare_dicts(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: backed up {a!r}, found {b!r}")
    return diffs


class TableHasher:
    """Per-table row counts and an order-independent checksum of rows, from a dump stream.

    Order-independent (a sum of per-row hashes modulo 2**64), so the same rows hash the
    same whatever their physical order after a restore.
    """

    def __init__(self) -> None:
        self.tables: dict[str, list[int]] = {}

    def add(self, table: str, row: bytes, count: int = 1) -> None:
        entry = self.tables.setdefault(table, [0, 0])
        entry[0] += count
        h = int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "big")
        entry[1] = (entry[1] + h) % (1 << 64)

    def result(self) -> dict:
        return {
            t: {"rows": n, "checksum": f"{h:016x}"} for t, (n, h) in sorted(self.tables.items())
        }


def tee_lines(chunks: Iterable[bytes], on_line: Callable[[bytes], None]) -> Iterator[bytes]:
    """Pass a byte stream through while `on_line` sees each line (fingerprint in flight)."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        parts = data.split(b"\n")
        rest = parts.pop()
        for line in parts:
            on_line(line)
        yield chunk
    if rest:
        on_line(rest)


def drain(chunks: Iterable[bytes]) -> None:
    for _ in chunks:
        pass
