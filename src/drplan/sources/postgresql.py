"""PostgreSQL: pg_dumpall --globals-only and one pg_dump per database, run inside the
database's own container with its own client tools, streamed into restic with no copy on
disk. Each pg_dump is one transaction snapshot; the fingerprint (per table: rows and an
order-independent checksum of the COPY lines) is computed from the very bytes stored.
"""

from __future__ import annotations

import re

from drplan.errors import OperationError
from drplan.sources.base import (
    SourceContext,
    TableHasher,
)
from drplan.sources.dump import SqlDump

MARK = b"-- drplan: database "
COPY_RE = re.compile(rb"^COPY (\S+) \(")
SYSTEM_DBS = ("postgres", "template0", "template1")


class PostgreSQL(SqlDump):
    consistency = "transactional: one pg_dump snapshot per database, roles from pg_dumpall -g"

    def _user(self, ctx: SourceContext) -> str:
        return ctx.spec.user or "postgres"

    def _psql(self, ctx: SourceContext, container, db: str, sql: str) -> list[str]:
        res = ctx.engine.exec_run(
            container,
            ["psql", "-X", "-U", self._user(ctx), "-d", db, "-At", "-c", sql],
            what=ctx.what,
        )
        return [x for x in res.stdout.decode().splitlines() if x]

    def databases(self, ctx: SourceContext, container) -> list[str]:
        if ctx.spec.databases:
            return list(ctx.spec.databases)
        return self._psql(
            ctx,
            container,
            "postgres",
            "SELECT datname FROM pg_database WHERE datallowconn AND datname NOT IN "
            "('postgres', 'template0', 'template1') ORDER BY 1",
        )

    def dump_stream(self, ctx: SourceContext, container, dbs: list[str]):
        yield b"-- drplan: globals\n"
        yield from ctx.engine.exec_out(
            container,
            ["pg_dumpall", "-U", self._user(ctx), "--globals-only"],
            what=f"{ctx.what}: pg_dumpall --globals-only",
        )
        for db in dbs:
            yield b"\n" + MARK + db.encode() + b"\n"
            yield from ctx.engine.exec_out(
                container,
                ["pg_dump", "-U", self._user(ctx), "--create", "--no-password", db],
                what=f"{ctx.what}: pg_dump {db}",
            )

    def parser(self) -> DumpParser:
        return DumpParser()

    def is_empty(self, ctx: SourceContext) -> bool:
        container = ctx.container()
        for db in self.databases(ctx, container):
            n = self._psql(
                ctx,
                container,
                db,
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                "('pg_catalog', 'information_schema')",
            )
            if n and int(n[0]) > 0:
                return False
        return True

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        container = ctx.container()
        for db in fingerprint.get("databases", []):
            if db in SYSTEM_DBS:
                continue
            self._psql(ctx, container, "postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        # ON_ERROR_STOP is off only so that roles which the image already created are
        # accepted; every other error fails the restore below.
        res = ctx.engine.exec_in(
            container,
            ["psql", "-X", "-q", "-U", self._user(ctx), "-d", "postgres", "-v", "ON_ERROR_STOP=0"],
            ctx.counted(ctx.repo.dump(snapshot, path, what=ctx.what)),
            what=ctx.what,
        )
        errors = [
            line
            for line in res.stderr.decode(errors="replace").splitlines()
            if "ERROR:" in line and not re.search(r'role "[^"]+" already exists', line)
        ]
        if errors:
            raise OperationError(
                f"psql reported {len(errors)} error(s) while restoring: {errors[0][:300]}",
                where=ctx.what,
            )


class DumpParser:
    """Follows a pg_dump stream: `-- drplan: database X` marks, COPY blocks and rows."""

    def __init__(self) -> None:
        self.tables = TableHasher()
        self.db = ""
        self.dbs: list[str] = []
        self.table: str | None = None

    def line(self, line: bytes) -> None:
        if self.table is not None:
            if line == b"\\.":
                self.table = None
            else:
                self.tables.add(self.table, line)
            return
        if line.startswith(MARK):
            self.db = line[len(MARK) :].decode()
            self.dbs.append(self.db)
        elif line.startswith(b"COPY "):
            m = COPY_RE.match(line)
            if m:
                self.table = f"{self.db}.{m.group(1).decode()}"
                self.tables.tables.setdefault(self.table, [0, 0])


SOURCE = PostgreSQL()
