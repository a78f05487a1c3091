"""The tests' oracle: fingerprints of every service's data, independent of drplan.

It shares no code with the product's own verification, so it can catch the product
verifying wrongly. It reads each data source with that engine's own tools:
  postgresql - per database and table: row count and an order-independent sum of row md5s
  mariadb    - per table: row count and an order-independent sum of row md5s
  redis      - one Lua script: key count and a sha1 over every sorted key, type and value
  files      - a helper container: file count, bytes and a hash over (path, size, sha256)
  sqlite     - a helper container: per table row count and a hash over the ordered rows
"""

from __future__ import annotations

import json

from testbed import nodes, stacks

# What each testbed stack keeps, and where: service -> [(engine, volume, detail)].
LAYOUT: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "campus": {
        "db": [("postgresql", "db-data", "")],
        "redis": [("redis", "redis-data", "")],
        "web": [("files", "files", "")],
        "exam": [("files", "exam-files", "")],
    },
    "helpdesk": {
        "mariadb": [("mariadb", "mariadb-data", "")],
        "glpi": [("files", "attachments", "")],
        "metrics": [("sqlite", "metrics-state", "metrics.db")],
    },
}
HELPER_IMAGE = "drplan-tb/app:latest"


def _exec(container, cmd: list[str]) -> str:
    code, text = stacks.exec_text(container, cmd)
    if code != 0:
        raise RuntimeError(f"{cmd[0]} in {container.name} exited {code}: {text[-1000:]}")
    return text


def postgresql(container, user: str = "postgres") -> dict:
    """`user`: a superuser of the server (images that create only POSTGRES_USER have no
    `postgres` role)."""

    def psql(db: str, sql: str) -> list[list[str]]:
        out = _exec(container, ["psql", "-U", user, "-d", db, "-At", "-F", "\t", "-c", sql])
        return [line.split("\t") for line in out.splitlines() if line]

    result = {}
    dbs = psql(
        "postgres",
        "SELECT datname FROM pg_database "
        "WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
    )
    for (db,) in dbs:
        tables = psql(
            db,
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2",
        )
        for schema, table in tables:
            count, total = psql(
                db,
                (
                    f"SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))"
                    f'::bit(60)::bigint), 0) FROM "{schema}"."{table}" t'
                ),
            )[0]
            result[f"{db}.{schema}.{table}"] = {"rows": int(count), "sum": total}
    return result


def mariadb(container) -> dict:
    def sql(query: str) -> list[list[str]]:
        out = _exec(container, ["mariadb", "-N", "-B", "-e", query])
        return [line.split("\t") for line in out.splitlines() if line]

    result = {}
    tables = sql(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE "
        "table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', "
        "'sys') ORDER BY 1, 2"
    )
    for schema, table in tables:
        cols = [
            c
            for (c,) in sql(
                f"SELECT column_name FROM information_schema.columns WHERE table_schema='{schema}' "
                f"AND table_name='{table}' ORDER BY ordinal_position"
            )
        ]
        row = "CONCAT_WS('|', " + ", ".join(f"COALESCE(`{c}`, '\\\\N')" for c in cols) + ")"
        count, total = sql(
            f"SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(MD5({row}), 1, 15), 16, 10) "
            f"AS UNSIGNED)), 0) FROM `{schema}`.`{table}`"
        )[0]
        result[f"{schema}.{table}"] = {"rows": int(count), "sum": total}
    return result


REDIS_LUA = """
local keys = redis.call('KEYS', '*')
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  local v
  if t == 'string' then v = redis.call('GET', k)
  elseif t == 'hash' then
    local h = redis.call('HGETALL', k); local pairs_ = {}
    for i = 1, #h, 2 do pairs_[#pairs_ + 1] = h[i] .. '=' .. h[i + 1] end
    table.sort(pairs_); v = table.concat(pairs_, '\\2')
  elseif t == 'list' then v = table.concat(redis.call('LRANGE', k, 0, -1), '\\2')
  elseif t == 'set' then
    local s = redis.call('SMEMBERS', k); table.sort(s); v = table.concat(s, '\\2')
  elseif t == 'zset' then v = table.concat(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES'), '\\2')
  else v = '?' end
  parts[#parts + 1] = k .. '\\1' .. t .. '\\1' .. v
end
return {#keys, redis.sha1hex(table.concat(parts, '\\0'))}
"""


def redis(container) -> dict:
    out = _exec(container, ["redis-cli", "--raw", "EVAL", REDIS_LUA, "0"]).split()
    return {"keys": int(out[0]), "sha1": out[1]}


FILES_PY = """
import hashlib, json, os
root = '/v'
h = hashlib.sha256(); n = size = 0
for d, dirs, files in os.walk(root):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(d, f)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        fh = hashlib.sha256()
        with open(p, 'rb') as fd:
            for chunk in iter(lambda: fd.read(1 << 20), b''):
                fh.update(chunk)
        st = os.stat(p)
        n += 1; size += st.st_size
        h.update(f"{os.path.relpath(p, root)}\\0{st.st_size}\\0{fh.hexdigest()}\\n".encode())
print(json.dumps({"files": n, "bytes": size, "tree": h.hexdigest()}))
"""

SQLITE_PY = """
import hashlib, json, sqlite3, sys
conn = sqlite3.connect('file:/v/' + sys.argv[1] + '?mode=ro', uri=True)
out = {}
for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1"):
    h = hashlib.sha256(); n = 0
    for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY 1'):
        n += 1; h.update(repr(row).encode())
    out[t] = {"rows": n, "sha256": h.hexdigest()}
print(json.dumps(out))
"""


def _helper(client, volume: str, script: str, *args: str, read_only: bool = True) -> dict:
    client = nodes.holding_volume(client, volume)  # a worker's, in a multi-node cluster
    out = client.containers.run(
        HELPER_IMAGE,
        ["python3", "-c", script, *args],
        remove=True,
        network_mode="none",
        volumes={volume: {"bind": "/v", "mode": "ro" if read_only else "rw"}},
        labels={"org.drplan.test": "verifier"},
    )
    return json.loads(out)


def files(client, volume: str) -> dict:
    return _helper(client, volume, FILES_PY)


def sqlite(client, volume: str, path: str) -> dict:
    # read-write mount: a WAL database needs its -shm file even to be read
    return _helper(client, volume, SQLITE_PY, path, read_only=False)


def fingerprint(client, kind: str, name: str, services: list[str] | None = None) -> dict:
    """Fingerprint every data source of stack `name` (of kind `kind`) on this engine.

    Returns {"service/engine:volume": fingerprint}. Database engines are read through the
    service's running container; volumes through a throwaway helper container.
    """
    result = {}
    for service, sources in LAYOUT[kind].items():
        if services is not None and service not in services:
            continue
        for engine, volume, detail in sources:
            key = f"{service}/{engine}:{volume}"
            vol = f"{name}_{volume}"
            if engine == "postgresql":
                result[key] = postgresql(stacks.container(client, name, service))
            elif engine == "mariadb":
                result[key] = mariadb(stacks.container(client, name, service))
            elif engine == "redis":
                result[key] = redis(stacks.container(client, name, service))
            elif engine == "files":
                result[key] = files(client, vol)
            elif engine == "sqlite":
                result[key] = sqlite(client, vol, detail)
    return result


def differences(expected: dict, actual: dict) -> list[str]:
    """Human-readable list of what differs between two fingerprints (empty when equal)."""
    diffs = []
    for key in sorted(set(expected) | set(actual)):
        a, b = expected.get(key), actual.get(key)
        if a != b:
            diffs.append(f"{key}: expected {a!r}, got {b!r}")
    return diffs
