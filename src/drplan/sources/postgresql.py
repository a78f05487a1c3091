"""PostgreSQL: pg_dumpall --globals-only and one pg_dump per database, run inside the
database's own container with its own client tools, streamed into restic with no copy on
disk. Each pg_dump is one transaction snapshot; the fingerprint (per table: rows and an
order-independent checksum of the COPY lines) is computed from the very bytes stored.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.plan.compose import ComposeService
from drplan.process import tail as process_tail
from drplan.sources import byhand
from drplan.sources.base import (
    MB,
    Detection,
    DraftUser,
    EngineDefaults,
    LiveSigns,
    Procedure,
    ReadyProbe,
    ShellKit,
    SourceContext,
    SqlCommand,
    TableHasher,
    env_ref,
    image_keyword,
    is_client,
    mounted_dir,
    wait_until_ready,
)
from drplan.sources.dump import SqlDump

if TYPE_CHECKING:
    from drplan.store.manifest import SourceRecord

MARK = b"-- drplan: database "
COPY_RE = re.compile(rb"^COPY (\S+) \(")
SYSTEM_DBS = ("postgres", "template0", "template1")
IMAGES = ("postgres", "postgresql", "postgis", "timescaledb")
DATA_DIRS = ("/var/lib/postgresql/data", "/var/lib/postgresql", "/bitnami/postgresql")


class PostgreSQL(SqlDump, EngineDefaults):
    name = "postgresql"
    live_signs = LiveSigns(processes=("postgres", "postmaster"), files=(("PG_VERSION",),))
    summary = "PostgreSQL: pg_dumpall --globals-only and one pg_dump per database"
    consistency = "transactional: one pg_dump snapshot per database, roles from pg_dumpall -g"
    dump_needs_server = True
    restores_into_server = True
    restore_bps = 30 * MB  # a replay is bound by index rebuilds
    runs_sql = True

    def _user(self, ctx: SourceContext) -> str:
        return ctx.spec.user or "postgres"

    def _psql(self, ctx: SourceContext, container, db: str, sql: str) -> list[str]:
        res = ctx.engine.exec_run(
            container,
            ["psql", "-X", "-U", self._user(ctx), "-d", conninfo(db), "-At", "-c", sql],
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
                [
                    "pg_dump",
                    "-U",
                    self._user(ctx),
                    "--create",
                    "--no-password",
                    f"--dbname={conninfo(db)}",
                ],
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

    def wait_ready(self, ctx: SourceContext, deadline: float) -> None:
        wait_until_ready(ctx, ready_probe(ctx.spec), deadline)

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        """Replay the dump into the server, all or nothing.

        Roles first, tolerating those the image already created; then each database in
        one transaction (PostgreSQL's DDL is transactional), stopping at the first
        error. If the stream fails (restic dump killed), psql is killed before it sees
        end-of-input and the databases this restore created are dropped again: the
        server is left as it was before the step, never with a partial database.
        """
        container = ctx.container()
        dbs = [db for db in fingerprint.get("databases", []) if db not in SYSTEM_DBS]
        for db in dbs:
            self._drop(ctx, container, db)
        try:
            res = ctx.engine.exec_in(
                container,
                ["psql", "-X", "-q", "-U", self._user(ctx), "-d", "postgres"],
                replay(ctx.counted(ctx.repo.dump(snapshot, path, what=ctx.what))),
                what=ctx.what,
                check=False,
            )
            errors = [
                line
                for line in res.stderr.decode(errors="replace").splitlines()
                if "ERROR:" in line and not re.search(r'role "[^"]+" already exists', line)
            ]
            if res.exit_code != 0 or errors:
                first = errors[0][:300] if errors else process_tail(res.stderr)
                raise OperationError(
                    f"psql stopped the restore (status {res.exit_code}): {first}",
                    where=ctx.what,
                )
        except BaseException:
            for db in dbs:
                with contextlib.suppress(Exception):
                    self._drop(ctx, container, db)
            raise

    def _drop(self, ctx: SourceContext, container, db: str) -> None:
        self._psql(
            ctx, container, "postgres", f"DROP DATABASE IF EXISTS {quote_ident(db)} WITH (FORCE)"
        )

    # -- checks and drplan init -------------------------------------------------------

    def sql_command(self, src: m.DataSource, query: str) -> SqlCommand:
        """psql in the service's container. Names go in as nothing but names: psql reads
        a ``-d`` value holding ``=`` as a whole connection string (``host=elsewhere``), so
        the database is always a quoted ``dbname=`` (:func:`conninfo`); every value is one
        ``--option=value`` word."""
        db = src.databases[0] if src.databases else "postgres"
        return SqlCommand(
            [
                "psql",
                "-X",
                "-At",
                f"--username={src.user or 'postgres'}",
                f"--dbname={conninfo(db)}",
                f"--command={query}",
            ],
            password_env="PGPASSWORD",
        )

    def detect(self, svc: ComposeService) -> Detection | None:
        """The image's name, else its data directory mounted (PGDATA's or the
        images'), else the server's own variables (a service that also names a `*_HOST`
        is a client)."""
        found = image_keyword(svc, IMAGES)
        if found is None and not is_client(svc):
            path = mounted_dir(svc, self.data_dirs(svc))
            if path:
                found = Detection("dump", f"data directory {path} mounted", strength=2)
            elif "PGDATA" in svc.environment or any(
                k.startswith("POSTGRES_") for k in svc.environment
            ):
                found = Detection("dump", "POSTGRES_*/PGDATA environment", strength=1)
        return found

    def data_dirs(self, svc: ComposeService) -> tuple[str, ...]:
        pgdata = svc.environment.get("PGDATA", "").rstrip("/")
        return ((pgdata,) if pgdata else ()) + DATA_DIRS

    def guess_health(self, name: str, svc: ComposeService) -> tuple[dict[str, Any], str]:
        """The engine's own readiness (see :func:`ready_probe`)."""
        found = self.draft_user(svc)
        probe = ready_probe(m.DataSource(engine=self.name, user=found.user))
        return {"type": "command", "command": probe.argv, "retries": 30}, probe.label

    def draft_user(self, svc: ComposeService) -> DraftUser:
        """POSTGRES_USER (or POSTGRES_USER_FILE), the superuser the official images
        create, else theirs: postgres. The password is named, never read."""
        env = svc.environment
        user_file = env.get("POSTGRES_USER_FILE")
        # the official images' names first, then a derived image's own
        # (POSTGRES_DB_PASSWORD_FILE...)
        pw = env_ref(svc, "POSTGRES_PASSWORD") or next(
            (k for k in env if k.startswith("POSTGRES_") and k.endswith("PASSWORD")), None
        )
        pw_file = env.get("POSTGRES_PASSWORD_FILE") or next(
            (v for k, v in env.items() if k.startswith("POSTGRES_") and k.endswith("_FILE")
             and "PASSWORD" in k),
            None,
        )
        if user_file:
            return DraftUser(
                user_file=user_file,
                password_env=pw,
                password_file=pw_file,
                why="POSTGRES_USER_FILE",
            )
        user = env.get("POSTGRES_USER") or ""
        return DraftUser(
            user=user or "postgres",
            password_env=pw,
            password_file=pw_file,
            why="POSTGRES_USER" if user else "the image's default (postgres)",
            assumed=not user,
        )

    def draft_checks(self) -> list[dict[str, Any]]:
        return [{"type": "sql", "name": "answers queries", "query": "SELECT 1", "expect": "1"}]

    # -- runbook ------------------------------------------------------------------------

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        user = kit.sh("--username=" + (spec.user or "postgres"))
        drops = "".join(
            f'docker exec "$C" psql -X {user} --dbname=postgres '
            f"{kit.sh(f'--command=DROP DATABASE IF EXISTS {quote_ident(db)} WITH (FORCE)')}\n"
            for db in record.fingerprint.get("databases", [])
            if db not in SYSTEM_DBS
        )
        replay = (
            "err=$(mktemp)\n"
            f'{kit.dump(record.snapshot, record.path)} | docker exec -i "$C" psql -X -q {user} '
            '--dbname=postgres -v ON_ERROR_STOP=0 >/dev/null 2>"$err"\n'
            "if grep 'ERROR:' \"$err\" | grep -v 'role \".*\" already exists'; then\n"
            "  printf 'psql reported errors (see %s)\\n' \"$err\" >&2; exit 1\n"
            "fi\n"
        )
        return Procedure(
            f"Replay the dump of {byhand.what(service, source, record)} into the running "
            f"server of {service} (its own image, configuration and network): drop the "
            "databases the image created, then feed the dump (roles first, then each "
            "database) to psql. 'role already exists' errors are expected; any other error "
            "fails the step.",
            [
                (
                    "Drop the databases the image created, replay the dump",
                    kit.container(service) + drops + replay,
                )
            ],
        )

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        user = kit.sh("--username=" + (spec.user or "postgres"))
        lines = [kit.container(service)]
        for key, t in sorted(record.fingerprint.get("tables", {}).items()):
            db, _, table = key.partition(".")
            sql = "SELECT count(*) FROM " + quote_table(table)
            lines.append(
                kit.expect(
                    f'docker exec "$C" psql -X -At {user} '
                    f"{kit.sh('--dbname=' + dbname_arg(db))} {kit.sh('--command=' + sql)}",
                    t.get("rows") if isinstance(t, dict) else t,
                    f"rows of {key}",
                )
            )
        return "".join(lines)


# pg_isready over TCP on localhost: the temporary server the official image runs while
# initdb's scripts run listens on no TCP address (`listen_addresses=''`), so it does not
# count as ready. The port is the container's PGPORT, else 5432.
_READY = (
    "command -v pg_isready >/dev/null || exit 127; "
    'exec pg_isready -q -h localhost -p "${PGPORT:-5432}" -U "$1"'
)


def ready_probe(spec: m.DataSource) -> ReadyProbe:
    """pg_isready in the service's container; the user only names the connection
    attempt in the server's log (pg_isready does not authenticate)."""
    return ReadyProbe(
        ["sh", "-c", _READY, "sh", spec.user or "postgres"], "pg_isready on localhost"
    )


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted (database names come from the workload)."""
    return '"' + name.replace('"', '""') + '"'


# A qualified name as pg_dump writes it on its COPY lines: plain lower-case identifiers
# or double-quoted ones (inner quotes doubled), joined by dots. Such a name is balanced:
# used as it is, it can only name a table.
_PART = r'(?:[a-z_][a-z0-9_$]*|"(?:[^"\x00]|"")+")'
_QUALIFIED = re.compile(rf"{_PART}(?:\.{_PART})*")


def quote_table(name: str) -> str:
    """A table name read from a manifest's fingerprint (``schema.table`` as pg_dump wrote
    it): kept when it is a well-formed qualified name, else quoted as one identifier
    (which then names no table and fails the check, harmlessly)."""
    return name if _QUALIFIED.fullmatch(name) else quote_ident(name)


def dbname_arg(name: str) -> str:
    """The value of psql's ``--dbname``: libpq reads a value holding ``=`` or starting
    with a URI prefix as a connection string (``host=elsewhere ...``); such a name is
    passed as a quoted ``dbname='...'`` so it stays a database name."""
    if "=" not in name and not name.startswith(("postgresql://", "postgres://")):
        return name
    return conninfo(name)


def conninfo(db: str) -> str:
    """`dbname='...'`: psql and pg_dump read a database name holding `=` or a URI prefix as
    connection parameters (another host); as a quoted conninfo value it is only a name."""
    return "dbname='" + db.replace("\\", "\\\\").replace("'", "\\'") + "'"


def replay(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stored dump as psql must replay it: the roles section with errors tolerated
    (an image creates its own user), then every database in one transaction with
    ON_ERROR_STOP, committed only once its whole section has arrived."""
    yield b"\\set ON_ERROR_STOP off\n"
    state = {"open": False, "copy": False}

    def lines() -> Iterator[bytes]:
        rest = b""
        for chunk in chunks:
            data = rest + chunk
            *whole, rest = data.split(b"\n")
            yield from whole
        if rest:
            yield rest

    out = bytearray()
    for line in lines():
        if state["copy"]:
            if line == b"\\.":
                state["copy"] = False
        elif line.startswith(MARK):
            if state["open"]:
                out += b"COMMIT;\n"
                state["open"] = False
            out += b"\\set ON_ERROR_STOP on\n"
        elif line.startswith(b"\\connect "):
            if state["open"]:
                out += b"COMMIT;\n"
            out += line + b"\nBEGIN;\n"
            state["open"] = True
            continue
        elif line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
            state["copy"] = True
        out += line + b"\n"
        if len(out) >= 1 << 20:
            yield bytes(out)
            out.clear()
    if state["open"]:
        out += b"COMMIT;\n"
    yield bytes(out)


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


ENGINE = SOURCE = PostgreSQL()
