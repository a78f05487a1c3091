"""MariaDB/MySQL: a --single-transaction dump inside the database's own container (on a
Galera cluster, from the one node drplan reaches), streamed into restic. The fingerprint
(per table: rows and an order-independent checksum of the INSERT statements) is computed
from the very bytes stored.
"""

from __future__ import annotations

import contextlib
import re

from drplan.sources.base import (
    SourceContext,
    TableHasher,
)
from drplan.sources.dump import SqlDump

SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")
USE_RE = re.compile(rb"^USE `((?:[^`]|``)+)`;")
INSERT_RE = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES ?")
STRING_RE = re.compile(rb"'(?:[^'\\]|\\.)*'")


class MariaDB(SqlDump):
    consistency = "transactional: mariadb-dump --single-transaction (InnoDB snapshot)"

    def _auth(self, ctx: SourceContext) -> tuple[list[str], dict[str, str]]:
        args = ["-u", ctx.spec.user] if ctx.spec.user else []
        env = {}
        if ctx.spec.password is not None:
            from drplan.secrets import resolve

            env["MYSQL_PWD"] = resolve(ctx.spec.password, base=ctx.plan_dir, what=ctx.what)
        return args, env

    def _tool(self, ctx: SourceContext, container, names: list[str]) -> str:
        found = ctx.engine.exec_run(
            container,
            ["sh", "-c", " || ".join(f"command -v {n}" for n in names)],
            what=f"{ctx.what}: looking for {names[0]}",
            check=False,
        )
        return found.stdout.decode().strip().splitlines()[0] if found.stdout.strip() else names[0]

    def _sql(self, ctx: SourceContext, container, sql: str) -> list[str]:
        auth, env = self._auth(ctx)
        client = self._tool(ctx, container, ["mariadb", "mysql"])
        res = ctx.engine.exec_run(
            container, [client, *auth, "-N", "-B", "-e", sql], what=ctx.what, env=env
        )
        return [x for x in res.stdout.decode().splitlines() if x]

    def databases(self, ctx: SourceContext, container) -> list[str]:
        if ctx.spec.databases:
            return list(ctx.spec.databases)
        names = ", ".join(f"'{s}'" for s in SYSTEM)
        return self._sql(
            ctx,
            container,
            "SELECT schema_name FROM information_schema.schemata "
            f"WHERE schema_name NOT IN ({names}) ORDER BY 1",
        )

    def dump_stream(self, ctx: SourceContext, container, dbs: list[str]):
        if not dbs:
            yield b"-- drplan: no database\n"
            return
        auth, env = self._auth(ctx)
        tool = self._tool(ctx, container, ["mariadb-dump", "mysqldump"])
        argv = [
            tool,
            *auth,
            "--single-transaction",
            "--quick",
            "--routines",
            "--events",
            "--triggers",
            "--hex-blob",
            "--skip-dump-date",
            "--databases",
            "--",  # database names come from the workload: never an option
            *dbs,
        ]
        yield from ctx.engine.exec_out(container, argv, what=f"{ctx.what}: {tool}", env=env)

    def parser(self) -> DumpParser:
        return DumpParser()

    def is_empty(self, ctx: SourceContext) -> bool:
        container = ctx.container()
        names = ", ".join(f"'{s}'" for s in SYSTEM)
        n = self._sql(
            ctx,
            container,
            f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema NOT IN ({names})",
        )
        return not n or int(n[0]) == 0

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        """Replay the dump, stopping at the first error (the client's default). MySQL's
        DDL commits as it goes, so all-or-nothing is kept by hand: if the stream fails
        (restic dump killed), the client is killed before it sees end-of-input and the
        databases this restore created are dropped again."""
        container = ctx.container()
        dbs = list(fingerprint.get("databases", []))
        for db in dbs:
            self._sql(ctx, container, f"DROP DATABASE IF EXISTS {quote_ident(db)}")
        auth, env = self._auth(ctx)
        client = self._tool(ctx, container, ["mariadb", "mysql"])
        try:
            ctx.engine.exec_in(
                container,
                [client, *auth],
                ctx.counted(ctx.repo.dump(snapshot, path, what=ctx.what)),
                what=ctx.what,
                env=env,
            )
        except BaseException:
            for db in dbs:
                with contextlib.suppress(Exception):
                    self._sql(ctx, container, f"DROP DATABASE IF EXISTS {quote_ident(db)}")
            raise


def quote_ident(name: str) -> str:
    """A MySQL identifier, quoted (database names come from the workload)."""
    return "`" + name.replace("`", "``") + "`"


class DumpParser:
    """Follows a dump: `USE` lines, `CREATE TABLE`, and INSERT rows in both layouts
    (MariaDB >= 10.6 writes one row per line after `INSERT INTO t VALUES`; older dumps put
    every tuple of an extended insert on one line)."""

    def __init__(self) -> None:
        self.tables = TableHasher()
        self.db = ""
        self.dbs: list[str] = []
        self.rows_of: str | None = None

    def line(self, line: bytes) -> None:
        if self.rows_of is not None:
            self.tables.add(self.rows_of, line.rstrip(b",;"))
            if line.endswith(b";"):
                self.rows_of = None
            return
        if line.startswith(b"INSERT INTO "):
            m = INSERT_RE.match(line)
            if m:
                table = f"{self.db}.{m.group(1).decode()}"
                rest = line[m.end() :]
                if not rest.strip():
                    self.rows_of = table
                else:
                    body = STRING_RE.sub(b"''", rest)
                    self.tables.add(table, rest, body.count(b"),(") + 1)
        elif line.startswith(b"USE "):
            m = USE_RE.match(line)
            if m:
                self.db = m.group(1).decode()
                self.dbs.append(self.db)
        elif line.startswith(b"CREATE TABLE "):
            m = re.match(rb"^CREATE TABLE `((?:[^`]|``)+)`", line)
            if m:
                self.tables.tables.setdefault(f"{self.db}.{m.group(1).decode()}", [0, 0])


SOURCE = MariaDB()
