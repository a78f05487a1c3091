"""The testbed's web application: the shape of Moodle, GLPI or Grafana, small enough to read.

One image, three roles chosen by APP_ROLE:
  campus   - records in PostgreSQL, sessions/cache in Redis, uploads in FILES_DIR
  helpdesk - tickets in MariaDB, attachments in FILES_DIR
  metrics  - dashboards and samples in SQLite at SQLITE_PATH (the role Grafana plays)
Endpoints: /health (200 when every backend answers, 503 otherwise), / (an HTML page that
shows the data) and /api/summary (the same as JSON), so a recovery is checked from outside.
"""

from __future__ import annotations

import html
import json
import os
import signal
import sqlite3
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ROLE = os.environ.get("APP_ROLE", "campus")
INSTANCE = os.environ.get("APP_INSTANCE", ROLE)
TABLES = {
    "campus": ["users", "courses", "submissions"],
    "helpdesk": ["tickets", "followups"],
    "metrics": ["dashboards", "samples"],
}[ROLE]


def connect():
    """A DB-API connection to this role's database (and its placeholder style)."""
    if ROLE == "metrics":
        path = os.environ.get("SQLITE_PATH", "/state/metrics.db")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn, "?"
    url = urlparse(os.environ["DB_URL"])
    if url.scheme.startswith("postgres"):
        import psycopg2

        conn = psycopg2.connect(
            host=url.hostname,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.path.lstrip("/"),
            connect_timeout=5,
        )
        return conn, "%s"
    import pymysql

    conn = pymysql.connect(
        host=url.hostname,
        port=url.port or 3306,
        user=url.username,
        password=url.password,
        database=url.path.lstrip("/"),
        connect_timeout=5,
    )
    return conn, "%s"


def redis_client():
    host = os.environ.get("REDIS_HOST")
    if not host:
        return None
    import redis

    return redis.Redis(host=host, port=6379, socket_timeout=5, decode_responses=True)


def create_schema(conn) -> None:
    cur = conn.cursor()
    for table in TABLES:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, owner INT NOT NULL, "
            "title VARCHAR(200) NOT NULL, body TEXT NOT NULL, score NUMERIC(10,2) NOT NULL, "
            "created VARCHAR(32) NOT NULL)"
        )
    conn.commit()


def wait_for_schema() -> None:
    """Create the tables once the database answers (the app may start before it)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            conn, _ = connect()
            create_schema(conn)
            conn.close()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            print(f"waiting for the database: {exc}", file=sys.stderr)
            time.sleep(1)


def files_dir() -> str | None:
    return os.environ.get("FILES_DIR")


def summary() -> dict:
    conn, _ = connect()
    try:
        cur = conn.cursor()
        counts, latest = {}, []
        for table in TABLES:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = int(cur.fetchone()[0])
        cur.execute(f"SELECT id, title FROM {TABLES[-1]} ORDER BY id DESC LIMIT 5")
        latest = [{"id": int(r[0]), "title": r[1]} for r in cur.fetchall()]
    finally:
        conn.close()
    out = {"role": ROLE, "instance": INSTANCE, "rows": counts, "latest": latest}
    r = redis_client()
    if r is not None:
        out["redis_keys"] = int(r.dbsize())
    d = files_dir()
    if d:
        n = sum(len(f) for _, _, f in os.walk(d))
        out["files"] = n
    return out


def healthy() -> tuple[bool, str]:
    try:
        conn, _ = connect()
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchone()
        conn.close()
        r = redis_client()
        if r is not None:
            r.ping()
        d = files_dir()
        if d and not os.path.isdir(d):
            return False, f"{d} is missing"
        return True, "ok"
    except Exception as exc:
        return False, str(exc)


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: str, ctype: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path == "/health":
            ok, why = healthy()
            self._send(
                200 if ok else 503, json.dumps({"ok": ok, "detail": why}), "application/json"
            )
        elif path == "/api/summary":
            self._send(200, json.dumps(summary()), "application/json")
        elif path == "/":
            s = summary()
            rows = "".join(
                f"<tr><td>{html.escape(t)}</td><td>{n}</td></tr>" for t, n in s["rows"].items()
            )
            latest = "".join(f"<li>#{x['id']} {html.escape(x['title'])}</li>" for x in s["latest"])
            extra = "".join(f"<p>{k}: {s[k]}</p>" for k in ("redis_keys", "files") if k in s)
            self._send(
                200,
                f"<html><head><title>{html.escape(INSTANCE)}</title></head><body>"
                f"<h1>{html.escape(INSTANCE)} ({ROLE})</h1><table>{rows}</table>"
                f"<ul>{latest}</ul>{extra}</body></html>",
                "text/html; charset=utf-8",
            )
        else:
            self._send(404, "not found", "text/plain")

    def log_message(self, fmt: str, *args) -> None:  # keep the service logs quiet
        pass


if __name__ == "__main__":
    # PID 1 in its container: exit on SIGTERM instead of waiting for Docker's SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait_for_schema()
    if files_dir():
        os.makedirs(files_dir(), exist_ok=True)
    port = int(os.environ.get("PORT", "8080"))
    print(f"{INSTANCE} ({ROLE}) listening on :{port}", file=sys.stderr)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
