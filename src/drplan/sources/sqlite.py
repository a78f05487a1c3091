"""SQLite: an online backup with SQLite's own backup API (`sqlite3 DB .backup`), taken in a
helper container on the volume's engine — never a copy of a file being written. The
fingerprint is SQLite's content hash (`.sha3sum`, independent of page layout) and the row
count of every table.

The database file, its schema and its table names belong to the workload, which may be
hostile. So table names are read hex-encoded (any byte, even a newline, survives) and
put back into SQL only through :func:`quote_identifier`; every read runs in sqlite3's
safe mode with ``trusted_schema`` off (see :func:`sqlite3`); and a stored database read
back for ``drplan check`` is opened in a helper container without network or mounts
when an engine is at hand, rather than by this host's sqlite3.
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from drplan import process
from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.plan.compose import ComposeService
from drplan.platform import helper as helper_image
from drplan.sources import byhand
from drplan.sources import volume as vol
from drplan.sources.base import (
    MB,
    BackupResult,
    Detection,
    EngineDefaults,
    Procedure,
    ShellKit,
    SourceContext,
    SourceLoc,
    SqlCommand,
    compare_dicts,
)

if TYPE_CHECKING:
    from drplan.platform.docker import DockerEngine
    from drplan.store.manifest import SourceRecord

TMP = "/tmp/drplan-backup.sqlite"
CHECK_TMP = "/tmp/drplan-check.sqlite"
# How long a sqlite3 call waits on a lock held by the service (a WAL checkpoint, a write
# transaction) before failing with "database is locked"; SQLite's default is not to wait.
BUSY_TIMEOUT_MS = 60_000
TABLES = "SELECT hex(name) FROM sqlite_master WHERE type='table' ORDER BY name"
# Row counts are asked for many tables per sqlite3 call, in one argument; Linux refuses
# a single argument over 128 KiB (MAX_ARG_STRLEN), so a batch stays well under it.
BATCH_BYTES = 64 * 1024


def quote_identifier(name: str) -> str:
    """`name` as an SQL identifier, whatever it holds: in double quotes, each `"` doubled.

    Table names come from the workload's database. Pasted into SQL as they are, a table
    named ``x";SELECT writefile('/etc/cron.d/x', ...);--`` would end the name and run
    its own statements wherever drplan's sqlite3 runs. Inside double quotes with inner
    quotes doubled, SQLite (and PostgreSQL) read every character as part of the name —
    `]`, `;`, `--`, newlines included. NUL cannot be passed in an SQL text at all."""
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """`text` as an SQL string literal: in single quotes, each `'` doubled.

    Right for SQLite, and for PostgreSQL with ``standard_conforming_strings`` on (its
    default); not for MySQL/MariaDB, where a backslash escapes too."""
    if "\x00" in text:
        raise ValueError("an SQL string literal cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def sqlite3(db: str, *args: str, readonly: bool = True) -> list[str]:
    """The sqlite3 command line for `db`, waiting on locks instead of failing at once.

    Read-only calls (all but ``.backup``, which must write its copy) also run in safe mode
    (``-safe``: no ATTACH, writefile(), readfile(), load_extension(), .shell, .output…)
    with ``trusted_schema`` off (no function with side effects in the database's own
    views, triggers or generated columns): whatever SQL reaches sqlite3 or hides in the
    workload's schema, reading a fingerprint cannot write a file."""
    ro = ["-readonly", "-safe", "-cmd", "PRAGMA trusted_schema=OFF"] if readonly else []
    return ["sqlite3", *ro, "-batch", "-noheader", "-cmd", f".timeout {BUSY_TIMEOUT_MS}", db, *args]


def _table_name(hexed: bytes) -> str:
    try:
        return bytes.fromhex(hexed.decode("ascii")).decode("utf-8")
    except (UnicodeDecodeError, ValueError):
        raise OperationError(f"a table name is not UTF-8 text (hex {hexed[:80]!r})") from None


def _count_batches(names: list[str]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    size = 0
    for name in names:
        cost = len(quote_identifier(name).encode()) + 30
        if batches[-1] and size + cost > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(name)
        size += cost
    return [b for b in batches if b]


def fingerprint_db(run: Callable[[list[str]], bytes], db: str) -> dict:
    """Row count of every table and ``.sha3sum`` of the database `db`.

    `run` runs a sqlite3 command line (from :func:`sqlite3`) where the file is — in a
    container or here — and returns its standard output."""
    names = [_table_name(h) for h in run(sqlite3(db, TABLES)).split()]
    counts: dict[str, int] = {}
    for batch in _count_batches(names):
        try:
            sql = ";".join(f"SELECT count(*) FROM {quote_identifier(t)}" for t in batch)
        except ValueError as exc:
            raise OperationError(f"a table name cannot be queried: {exc}") from None
        out = run(sqlite3(db, sql)).split()
        if len(out) != len(batch) or not all(n.isdigit() for n in out):
            raise OperationError(
                f"sqlite3 did not give one row count for each of {len(batch)} tables"
            )
        counts.update(zip(batch, (int(n) for n in out), strict=True))
    sha = run(sqlite3(db, ".sha3sum")).decode().strip()
    return {"tables": counts, "sha3": sha}


SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


class SQLite(EngineDefaults):
    name = "sqlite"
    summary = "SQLite: the online backup API (sqlite3 .backup) in a helper on the volume"
    consistency = "transactional: SQLite online backup API"
    restore_bps = 100 * MB  # a file copy
    runs_sql = True

    def source_problems(self, src: m.DataSource) -> list[tuple[SourceLoc, str]]:
        return [] if src.path else [((), "a sqlite source needs `path` (the database file)")]

    # -- drplan init -------------------------------------------------------------------

    def _db_file(self, svc: ComposeService) -> tuple[str, str] | None:
        """(variable, file): an environment value naming a SQLite file inside a named
        volume the service mounts (`TASKBROKER_DB_PATH=/opt/sqlite/x.sqlite`)."""
        targets = [mt.target.rstrip("/") + "/" for mt in svc.mounts if mt.type == "volume"]
        for key, value in svc.environment.items():
            if value.endswith(SQLITE_SUFFIXES) and any(value.startswith(t) for t in targets):
                return key, value
        return None

    def detect(self, svc: ComposeService) -> Detection | None:
        """A variable naming a SQLite file kept in one of the service's volumes (an
        image's name says nothing: SQLite lives inside the application)."""
        found = self._db_file(svc)
        if found is None:
            return None
        return Detection("dump", f"{found[0]}={found[1]}", strength=1)

    def data_dirs(self, svc: ComposeService) -> tuple[str, ...]:
        """The database file itself: a source's `path`."""
        found = self._db_file(svc)
        return (found[1],) if found else ()

    def sql_command(self, src: m.DataSource, query: str) -> SqlCommand:
        """sqlite3 on the database file, in the service's container. A positional
        argument starting with `-` would be an option: such a path is spelt ``./-x``
        and such a query gets a leading space."""
        path = src.path or ""
        if path.startswith("-"):
            path = "./" + path
        return SqlCommand(["sqlite3", path, " " + query if query.startswith("-") else query])

    def _rel(self, ctx: SourceContext) -> str:
        if not ctx.spec.path or not ctx.volume:
            raise OperationError(
                "a SQLite source needs `volume` and `path` (the database file)", where=ctx.what
            )
        return ctx.mount_relative(ctx.spec.path)

    def _fingerprint_file(self, ctx: SourceContext, c, db: str) -> dict:
        return fingerprint_db(
            lambda argv: ctx.engine.exec_run(c, argv, what=f"{ctx.what}: sqlite3").stdout, db
        )

    def backup(self, ctx: SourceContext) -> BackupResult:
        rel = self._rel(ctx)
        src = posixpath.join(vol.MOUNT, rel)
        filename = f"{ctx.service}.{ctx.name}.sqlite"
        # read-write: a WAL database needs its -shm file even to be read
        with vol.holding(ctx.engine, ctx.volume, labels=vol.labels_of(ctx), read_only=False) as (
            c,
            _,
        ):
            ctx.engine.exec_run(
                c,
                sqlite3(src, f".backup {TMP}", readonly=False),
                what=f"{ctx.what}: sqlite3 .backup",
            )
            fp = self._fingerprint_file(ctx, c, TMP)
            owner = ctx.engine.exec_run(c, ["stat", "-c", "%u:%g", src], what=ctx.what).stdout
            summary = ctx.repo.backup_stream(
                ctx.counted(ctx.engine.exec_out(c, ["cat", TMP], what=f"{ctx.what}: cat")),
                filename=filename,
                tags=ctx.tags("sqlite"),
                host=ctx.host,
                what=ctx.what,
            )
        fp["file"] = rel
        fp["owner"] = owner.decode().strip()
        return BackupResult(
            snapshot=summary["snapshot_id"],
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint=fp,
            path=f"/{filename}",
            consistency=self.consistency,
        )

    def fingerprint(self, ctx: SourceContext) -> dict:
        src = posixpath.join(vol.MOUNT, self._rel(ctx))
        with vol.holding(ctx.engine, ctx.volume, labels=vol.labels_of(ctx), read_only=False) as (
            c,
            _,
        ):
            return self._fingerprint_file(ctx, c, src)

    def compare(self, expected: dict, actual: dict) -> list[str]:
        keep = ("tables", "sha3")
        return compare_dicts({k: expected.get(k) for k in keep}, {k: actual.get(k) for k in keep})

    def stored_fingerprint(
        self,
        repo,
        record,
        *,
        engine: DockerEngine | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        """The fingerprint of the database file stored by a backup (``drplan check``).

        The file is whatever the workload made of it. With an `engine`, it is read in a
        helper container with no network and no mounts, so even a flaw in SQLite's own
        parsing stays there; without one, this host's sqlite3 reads a private temporary
        copy, read-only and in safe mode (:func:`sqlite3`), as the user drplan runs as."""
        what = f"check of {record.service}/{record.source}"
        chunks = repo.dump(record.snapshot, record.path, what=what)
        if engine is not None:
            return self._stored_in_helper(engine, chunks, labels or {}, what)
        with tempfile.TemporaryDirectory(prefix="drplan-check-") as tmp:
            db = posixpath.join(tmp, "stored.sqlite")
            with open(db, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)

            def run(argv: list[str]) -> bytes:
                return process.run(argv, what=f"{what}: sqlite3").stdout

            return fingerprint_db(run, db)

    def _stored_in_helper(
        self, engine: DockerEngine, chunks, labels: dict[str, str], what: str
    ) -> dict:
        image = helper_image.ensure(engine)
        c = engine.start_helper(image, mounts=[], labels=labels, network="none")
        try:
            engine.exec_in(c, ["sh", "-c", 'exec cat > "$1"', "sh", CHECK_TMP], chunks, what=what)
            return fingerprint_db(
                lambda argv: engine.exec_run(c, argv, what=f"{what}: sqlite3").stdout, CHECK_TMP
            )
        finally:
            with contextlib.suppress(Exception):
                engine.remove_container(c)

    def is_empty(self, ctx: SourceContext) -> bool:
        return vol.is_empty(ctx.engine, ctx.volume or "", vol.labels_of(ctx))

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        vol.put_file(
            ctx,
            self._rel(ctx),
            ctx.counted(ctx.repo.dump(snapshot, path, what=ctx.what)),
            owner=fingerprint.get("owner", ""),
            drop=("-wal", "-shm"),
        )

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        return byhand.put_file(
            kit,
            service,
            source,
            spec,
            record,
            kind="the database file",
            default_file="data.db",
            drop=("-wal", "-shm"),
        )

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        """Row counts read from the volume's directory: only with an engine on this host."""
        if not kit.local:
            return ""
        fp = record.fingerprint
        rel = kit.volume_file(
            service, source, fp.get("file") or posixpath.basename(spec.path or "") or "data.db"
        )
        db = f'"$MP"/{kit.sh(rel)}'
        lines = [kit.mountpoint(kit.volume(spec.volume or ""))]
        for table, n in sorted(fp.get("tables", {}).items()):
            # quoted as an identifier; a NUL (which no SQL can hold) is refused by kit.sh
            sql = 'SELECT count(*) FROM "' + str(table).replace('"', '""') + '"'
            lines.append(kit.expect(f"sqlite3 -readonly {db} {kit.sh(sql)}", n, f"rows of {table}"))
        return "".join(lines)


ENGINE = SOURCE = SQLite()
