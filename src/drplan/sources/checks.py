"""How a plan's checks run inside a service's container, in the same words for drplan's
recovery (:mod:`drplan.actions.service_checks` runs them through the Engine API) and for
a person (:mod:`drplan.runbook.shell` writes them into the runbook).

HTTP and TCP probes are small shell scripts that use whichever client the image has
(curl, python3 or wget; python3, nc or bash's /dev/tcp), so the service's own names
resolve (the stack's overlay networks need not be attachable). An SQL check is run by
the database's own client as the source's engine spells it (``Engine.sql_command``).
"""

from __future__ import annotations

import shlex

from drplan.plan import model as m
from drplan.sources import registry
from drplan.sources.base import Engine

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
    """A check's name, or a short text of what it does."""
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


def sql_source(svc: m.Service, check: m.SqlCheck) -> tuple[str, m.DataSource, Engine] | None:
    """The data source an SQL check queries: the one it names, else the service's first
    source whose engine runs SQL; with its name and engine (None if there is none)."""
    for name, src in svc.data.items():
        if check.source and name != check.source:
            continue
        engine = registry.find(src.engine)
        if engine is not None and engine.runs_sql:
            return name, src, engine
    return None
