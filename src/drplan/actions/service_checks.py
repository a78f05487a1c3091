"""Health and validation checks of a recovered service.

HTTP, TCP and command checks run inside the service's own container, where its service
names resolve (the stack's overlay networks need not be attachable) — with whichever
client the image has (curl, wget or python3). SQL checks use the database's own client.
Each check retries with its interval until its attempts run out; no fixed sleeps.
"""

from __future__ import annotations

import shlex
import time

from drplan import process
from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.platform.docker import DockerEngine

HTTP_SCRIPT = r"""
url=$1; method=$2
if command -v curl >/dev/null 2>&1; then
  curl -s -o /tmp/.drplan-body -w '%{http_code}' -X "$method" -m "$3" "$url"; echo
  cat /tmp/.drplan-body 2>/dev/null
elif command -v python3 >/dev/null 2>&1; then
  python3 - "$url" "$method" "$3" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method=sys.argv[2])
try:
    r = urllib.request.urlopen(req, timeout=float(sys.argv[3])); code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except Exception as e:
    code, body = 0, str(e).encode()
print(code); sys.stdout.write(body.decode(errors="replace"))
PY
elif command -v wget >/dev/null 2>&1; then
  if wget -q -O /tmp/.drplan-body -T "$3" "$url"; then echo 200; else echo 0; fi
  cat /tmp/.drplan-body 2>/dev/null
else
  echo "no http client (curl, python3, wget) in the container" >&2; exit 127
fi
"""

TCP_SCRIPT = r"""
if command -v python3 >/dev/null 2>&1; then
  python3 -c "import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), float(sys.argv[3]))" "$1" "$2" "$3"
elif command -v nc >/dev/null 2>&1; then nc -z -w "$3" "$1" "$2"
else (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
fi
"""


def describe(check) -> str:
    if check.name:
        return check.name
    if isinstance(check, m.HttpCheck):
        return f"http {check.url}"
    if isinstance(check, m.TcpCheck):
        return f"tcp {check.host}:{check.port}"
    if isinstance(check, m.SqlCheck):
        return f"sql {check.query[:40]}"
    if isinstance(check, m.CommandCheck):
        cmd = check.command
        return f"command {cmd if isinstance(cmd, str) else shlex.join(cmd)}"
    return check.type


def attempt(engine: DockerEngine, stack: str, service: str, check, plan: m.Plan) -> str | None:
    """One attempt; None when it passes, else why not."""
    if isinstance(check, m.DockerCheck):
        return None  # waited for by the health gate itself
    container = engine.wait_running(
        stack, service, time.monotonic() + check.timeout + 5, healthy=False
    )
    what = f"service {service}: check {describe(check)}"
    if isinstance(check, m.HttpCheck):
        res = engine.exec_run(
            container,
            ["sh", "-c", HTTP_SCRIPT, "sh", check.url, check.method, str(check.timeout)],
            what=what,
            check=False,
        )
        if res.exit_code == 127:
            return res.stderr.decode().strip()
        status, _, body = res.stdout.decode(errors="replace").partition("\n")
        if status.strip() != str(check.status):
            return f"HTTP status {status.strip() or 'none'} (expected {check.status})"
        if check.body_contains and check.body_contains not in body:
            return f"response body does not contain {check.body_contains!r}"
        return None
    if isinstance(check, m.TcpCheck):
        res = engine.exec_run(
            container,
            ["sh", "-c", TCP_SCRIPT, "sh", check.host, str(check.port), str(check.timeout)],
            what=what,
            check=False,
        )
        return None if res.exit_code == 0 else f"cannot connect to {check.host}:{check.port}"
    if isinstance(check, m.SqlCheck):
        return _sql(engine, container, check, plan.services[service], what)
    if isinstance(check, m.CommandCheck):
        argv = check.command if isinstance(check.command, list) else ["sh", "-c", check.command]
        if check.where == "host":
            proc = process.run(argv, check=False, timeout=check.timeout, what=what)
            code, out = proc.returncode, proc.stdout
        else:
            res = engine.exec_run(container, argv, what=what, check=False)
            code, out = res.exit_code, res.stdout
        if code != check.expect_exit:
            return f"exit status {code} (expected {check.expect_exit})"
        if check.expect_output and check.expect_output not in out.decode(errors="replace"):
            return f"output does not contain {check.expect_output!r}"
        return None
    return f"unknown check type {check.type}"


def conninfo_value(value: str) -> str:
    """`value` as one libpq connection-string value: in single quotes, `\\` and `'`
    escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_argv(src: m.DataSource, query: str) -> list[str]:
    """The database client's command line for an SQL check, run in the service's container.

    The check's query is the plan's own SQL and goes in whole. Names around it go in as
    nothing but names: psql reads a ``-d`` value holding ``=`` as a whole connection
    string (``host=elsewhere ...``), so the database is passed as a quoted ``dbname=``;
    a positional argument starting with ``-`` is an option to mariadb and sqlite3, so
    the database goes in ``--database=`` and a path or query starting with ``-`` is
    spelt so that it does not (``./-x``, a leading space)."""
    if src.engine == "postgresql":
        db = src.databases[0] if src.databases else "postgres"
        return [
            "psql",
            "-X",
            "-At",
            f"--username={src.user or 'postgres'}",
            f"--dbname=dbname={conninfo_value(db)}",
            f"--command={query}",
        ]
    if src.engine in ("mariadb", "mysql"):
        return [
            "mariadb",
            "-N",
            "-B",
            *([f"--database={src.databases[0]}"] if src.databases else []),
            *([f"--user={src.user}"] if src.user else []),
            f"--execute={query}",
        ]
    path = src.path or ""
    if path.startswith("-"):
        path = "./" + path
    return ["sqlite3", path, " " + query if query.startswith("-") else query]


def _sql(
    engine: DockerEngine, container, check: m.SqlCheck, svc: m.Service, what: str
) -> str | None:
    sources = [
        (n, s)
        for n, s in svc.data.items()
        if s.engine in ("postgresql", "mariadb", "mysql", "sqlite")
    ]
    if check.source:
        sources = [(n, s) for n, s in sources if n == check.source]
    if not sources:
        return "no database source to run the query on"
    _, src = sources[0]
    res = engine.exec_run(container, sql_argv(src, check.query), what=what, check=False)
    if res.exit_code != 0:
        return f"query failed: {process.tail(res.stderr)}"
    got = res.stdout.decode(errors="replace").strip()
    if check.expect is not None and got != check.expect.strip():
        return f"query returned {got!r} (expected {check.expect!r})"
    return None


def run(
    engine: DockerEngine, stack: str, service: str, check, plan: m.Plan, deadline: float
) -> None:
    """Retry the check until it passes or its attempts (or the step's deadline) run out."""
    last = "not run"
    for i in range(check.retries):
        last = attempt(engine, stack, service, check, plan) or ""
        if not last:
            return
        if i + 1 < check.retries and time.monotonic() + check.interval < deadline:
            time.sleep(check.interval)
        else:
            break
    raise OperationError(
        f"check {describe(check)} failed after {i + 1} attempt(s): {last}",
        where=f"service {service}",
    )
