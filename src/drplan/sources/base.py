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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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
    force: bool = False
    host: str = "drplan"
    helper_image: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600)
    progress: Callable[[int], None] = lambda n: None
    # set by the caller for the volume's full name on the engine (stack prefix applied)
    volume: str | None = None
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


def image_keyword(svc: ComposeService, keywords: Iterable[str]) -> Detection | None:
    """A detection when the image's base name holds one of `keywords`."""
    base = image_basename(svc.image)
    if base and any(kw in base for kw in keywords):
        return Detection("dump", f"image {base!r}")
    return None


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
