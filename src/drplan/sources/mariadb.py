"""MariaDB/MySQL: a --single-transaction dump inside the database's own container (on a
Galera cluster, from the one node drplan reaches), streamed into restic. The fingerprint
(per table: rows and an order-independent checksum of the INSERT statements) is computed
from the very bytes stored.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from drplan.plan import model as m
from drplan.plan.compose import ComposeService
from drplan.secrets import resolve
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

SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")
USE_RE = re.compile(rb"^USE `((?:[^`]|``)+)`;")
INSERT_RE = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES ?")
STRING_RE = re.compile(rb"'(?:[^'\\]|\\.)*'")
IMAGES = ("mariadb", "mysql", "galera", "percona")
DATA_DIRS = ("/var/lib/mysql", "/bitnami/mariadb", "/bitnami/mysql")
PORT = 3306
# The image's own client, whichever name it has: MariaDB images call it `mariadb` (with
# `mysql` as a link, or not at all in recent ones), MySQL images only `mysql`. Chosen in
# the container, as `sh -c CLIENT sh ARGS...`: the arguments stay words, never shell text.
CLIENT = (
    "c=$(command -v mariadb || command -v mysql) || "
    '{ echo "no mariadb or mysql client in the container" >&2; exit 127; }; exec "$c" "$@"'
)
# `ping` over TCP (the temporary server the official images run while initialising an
# empty volume has --skip-networking, so it does not count), with whichever admin tool
# the image has. It exits 0 as soon as the server answers, even "access denied": no
# password is needed.
READY = (
    "c=$(command -v mariadb-admin || command -v mysqladmin) || exit 127; "
    'exec "$c" ping --protocol=tcp -h 127.0.0.1 -P "${MYSQL_TCP_PORT:-3306}" '
    '--connect-timeout=3 -u "$1"'
)
# The client reads the password from this variable: never in argv, where `ps` and
# `docker inspect` of the exec would show it.
PASSWORD_ENV = "MYSQL_PWD"


class MariaDB(SqlDump, EngineDefaults):
    name = "mariadb"
    aliases = ("mysql",)
    live_signs = LiveSigns(
        processes=("mariadbd", "mysqld"),
        files=(("mysql/", "ibdata1"), ("mysql/", "aria_log_control")),
    )
    summary = "MariaDB and MySQL: mariadb-dump (or mysqldump) --single-transaction"
    consistency = "transactional: mariadb-dump --single-transaction (InnoDB snapshot)"
    dump_needs_server = True
    restores_into_server = True
    restore_bps = 30 * MB  # a replay is bound by index rebuilds
    runs_sql = True

    def _auth(self, ctx: SourceContext) -> tuple[list[str], dict[str, str]]:
        args = ["-u", ctx.spec.user] if ctx.spec.user else []
        env = {}
        if ctx.spec.password is not None:
            env[PASSWORD_ENV] = resolve(
                ctx.spec.password, base=ctx.plan_dir, what=ctx.what, dotenv=ctx.dotenv
            )
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

    def wait_ready(self, ctx: SourceContext, deadline: float) -> None:
        wait_until_ready(ctx, ready_probe(ctx.spec), deadline)

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

    # -- checks and drplan init -------------------------------------------------------

    def sql_command(self, src: m.DataSource, query: str) -> SqlCommand:
        """The image's client (:data:`CLIENT`: mariadb, else mysql) with the source's user
        and first database, each one ``--option=value`` word; the password, if the plan
        gives one, in MYSQL_PWD."""
        return SqlCommand(
            [
                *client_argv(src),
                "-N",
                "-B",
                *([f"--database={src.databases[0]}"] if src.databases else []),
                f"--execute={query}",
            ],
            password_env=PASSWORD_ENV,
        )

    def detect(self, svc: ComposeService) -> Detection | None:
        """The image's name, else its data directory mounted, else the server's own
        variables (a service that also names a `*_HOST` is a client)."""
        found = image_keyword(svc, IMAGES)
        if found is None and not is_client(svc):
            path = mounted_dir(svc, DATA_DIRS)
            server_env = any(k.startswith(("MYSQL_", "MARIADB_")) for k in svc.environment)
            if path:
                found = Detection("dump", f"data directory {path} mounted", strength=2)
            elif server_env:
                found = Detection("dump", "MYSQL_*/MARIADB_* environment", strength=1)
        return found

    def data_dirs(self, svc: ComposeService) -> tuple[str, ...]:
        return DATA_DIRS

    def guess_health(self, name: str, svc: ComposeService) -> tuple[dict[str, Any], str]:
        """The engine's own readiness (see :func:`ready_probe`), as the user dumps log in."""
        found = self.draft_user(svc)
        probe = ready_probe(m.DataSource(engine=self.name, user=found.user if found else None))
        return {"type": "command", "command": probe.argv, "retries": 30}, probe.label

    def draft_user(self, svc: ComposeService) -> DraftUser:
        """MARIADB_USER/MYSQL_USER (the official images create it, with rights on
        MARIADB_DATABASE/MYSQL_DATABASE only), else root with the root password."""
        env = svc.environment
        user_var = env_ref(svc, "MARIADB_USER", "MYSQL_USER")
        user_file = env_ref(svc, "MARIADB_USER_FILE", "MYSQL_USER_FILE")
        if (user_var and env[user_var]) or user_file:
            db = env.get("MARIADB_DATABASE") or env.get("MYSQL_DATABASE")
            pw = env_ref(svc, "MARIADB_PASSWORD", "MYSQL_PASSWORD")
            pw_file = env_ref(svc, "MARIADB_PASSWORD_FILE", "MYSQL_PASSWORD_FILE")
            return DraftUser(
                user=env[user_var] if user_var and env[user_var] else None,
                user_file=env[user_file] if user_file else None,
                password_env=pw,
                password_file=env[pw_file] if pw_file else None,
                why=user_var or user_file or "",
                databases=(db,) if db else (),
            )
        pw = env_ref(svc, "MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
        pw_file = env_ref(svc, "MARIADB_ROOT_PASSWORD_FILE", "MYSQL_ROOT_PASSWORD_FILE")
        return DraftUser(
            user="root",
            password_env=pw,
            password_file=env[pw_file] if pw_file else None,
            why="the image's default (root)",
            assumed=True,
        )

    def draft_checks(self) -> list[dict[str, Any]]:
        return [{"type": "sql", "name": "answers queries", "query": "SELECT 1", "expect": "1"}]

    # -- runbook ------------------------------------------------------------------------

    def _runbook_client(self, kit: ShellKit, spec: m.DataSource, stdin: bool = True) -> str:
        """The server's own client in its container, with the source's user; the
        password, if any, from MYSQL_PWD of the operator's shell."""
        pw = f" -e {PASSWORD_ENV}" if spec.password is not None else ""
        return f'docker exec{pw}{" -i" if stdin else ""} "$C" ' + kit.sh_join(client_argv(spec))

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        client = self._runbook_client(kit, spec)
        drops = "".join(
            f"{client} {kit.sh(f'--execute=DROP DATABASE IF EXISTS {quote_ident(db)}')}\n"
            for db in record.fingerprint.get("databases", [])
        )
        note = (
            f"# the database password: export {PASSWORD_ENV} first (from your secret store)\n"
            if spec.password is not None
            else ""
        )
        replay = f"{kit.dump(record.snapshot, record.path)} | {client}\n"
        return Procedure(
            f"Replay the dump of {byhand.what(service, source, record)} into the running "
            f"server of {service}: drop the databases the image created, then feed the dump "
            "to the client.",
            [
                (
                    "Drop the databases, replay the dump",
                    note + kit.container(service) + drops + replay,
                )
            ],
        )

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        client = self._runbook_client(kit, spec, stdin=False)
        lines = [kit.container(service)]
        for key, t in sorted(record.fingerprint.get("tables", {}).items()):
            db, _, table = key.partition(".")
            sql = f"SELECT COUNT(*) FROM {quote_dumped(db)}.{quote_dumped(table)}"
            lines.append(
                kit.expect(
                    f"{client} -N -B {kit.sh('--execute=' + sql)}",
                    t.get("rows") if isinstance(t, dict) else t,
                    f"rows of {key}",
                )
            )
        return "".join(lines)


def client_argv(src: m.DataSource) -> list[str]:
    """The image's client (mariadb or mysql, see :data:`CLIENT`) and the source's user."""
    return ["sh", "-c", CLIENT, "sh", *([f"--user={src.user}"] if src.user else [])]


def quote_ident(name: str) -> str:
    """A MySQL identifier, quoted (database names come from the workload)."""
    return "`" + name.replace("`", "``") + "`"


# A name as mariadb-dump writes it between backticks (inner backticks doubled)
_DUMPED = re.compile(r"(?:[^`\x00]|``)+")


def quote_dumped(escaped: str) -> str:
    """A name read from a manifest's fingerprint as mariadb-dump wrote it between
    backticks (inner ones already doubled): backquoted as it is when well-formed, else
    quoted as a raw name. Either way the result is one balanced identifier."""
    return "`" + escaped + "`" if _DUMPED.fullmatch(escaped) else quote_ident(escaped)


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


ENGINE = SOURCE = MariaDB()


def ready_probe(spec: m.DataSource) -> ReadyProbe:
    """mariadb-admin (or mysqladmin) ping in the service's container."""
    return ReadyProbe(
        ["sh", "-c", READY, "sh", spec.user or "root"], "mariadb-admin ping on 127.0.0.1"
    )
