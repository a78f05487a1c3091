"""The daemon's bookkeeping, in one SQLite file: what it started, when, how it ended.

SQLite because it is embedded (no server to run next to a DR tool), survives a SIGKILL
(WAL journal, one short transaction per change) and is readable with the `sqlite3` tool
when someone wants to look. It is *not* the truth about backups: a run is "ok" here only
when the child `drplan backup` exited 0, and the repository's manifest says whether the
run is complete. After a crash, runs still marked `running` whose process is gone are
marked `dead` on the next start (:meth:`State.reap`).

Every connection is used by one thread (SQLite's default); the daemon's threads each
open their own through :meth:`State.connect`, sharing the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    plan TEXT NOT NULL,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    pid INTEGER,
    daemon_pid INTEGER,
    ref TEXT,
    bytes INTEGER,
    message TEXT,
    details TEXT
);
CREATE INDEX IF NOT EXISTS runs_plan_job ON runs (plan, job, started_at);
CREATE TABLE IF NOT EXISTS facts (
    plan TEXT NOT NULL,
    kind TEXT NOT NULL,
    updated_at REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (plan, kind)
);
CREATE TABLE IF NOT EXISTS alerts (
    plan TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (plan, subject)
);
CREATE TABLE IF NOT EXISTS paused (
    plan TEXT PRIMARY KEY,
    since REAL NOT NULL
);
"""

# how a run ended; `running` until it does
RUNNING, OK, FAILED, INTERRUPTED, DEAD = "running", "ok", "failed", "interrupted", "dead"
ENDED = (OK, FAILED, INTERRUPTED, DEAD)


@dataclass(frozen=True)
class Run:
    """One job the daemon started (a row of `runs`)."""

    id: int
    plan: str
    job: str
    trigger: str
    attempt: int
    started_at: float
    ended_at: float | None
    status: str
    exit_code: int | None
    pid: int | None
    daemon_pid: int | None
    ref: str | None
    bytes: int | None
    message: str | None
    details: str | None

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def as_json(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "details"}
        doc["seconds"] = self.seconds
        return doc


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class State:
    """The SQLite file and the few questions the daemon asks it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.connect() as db:
            db.executescript(SCHEMA)
        os.chmod(self.path, 0o600)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, in a transaction committed on exit."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        with db:
            yield db

    # -- runs --------------------------------------------------------------------------

    def start(self, plan: str, job: str, trigger: str, attempt: int = 1) -> int:
        with self.connect() as db:
            cur = db.execute(
                "INSERT INTO runs (plan, job, trigger, attempt, started_at, status, daemon_pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (plan, job, trigger, attempt, time.time(), RUNNING, os.getpid()),
            )
            return int(cur.lastrowid or 0)

    def set_pid(self, run: int, pid: int) -> None:
        with self.connect() as db:
            db.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run))

    def finish(
        self,
        run: int,
        status: str,
        *,
        exit_code: int | None = None,
        ref: str | None = None,
        nbytes: int | None = None,
        message: str | None = None,
        details: Any = None,
    ) -> None:
        assert status in ENDED, status
        with self.connect() as db:
            db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, exit_code = ?, ref = ?, bytes = ?,"
                " message = ?, details = ? WHERE id = ? AND status = ?",
                (
                    status,
                    time.time(),
                    exit_code,
                    ref,
                    nbytes,
                    message,
                    None if details is None else json.dumps(details)[:200_000],
                    run,
                    RUNNING,
                ),
            )

    def reap(self) -> list[Run]:
        """Runs left `running` by a daemon that is gone (SIGKILL, crash, power cut): marked
        `dead`, with their child's fate in the message. Called once at start, under the
        lock that makes this daemon the only one on this file (:func:`lock`), so every
        such row is another, dead, daemon's."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status = ?", (RUNNING,)).fetchall()
        reaped = []
        for row in rows:
            run = Run(**dict(row))
            child = "still running" if _alive(run.pid) else "gone"
            self.finish(
                run.id,
                DEAD,
                message=f"the daemon stopped during this run (its process, pid {run.pid}, "
                f"is {child}): it counts as done only if the repository holds it complete",
            )
            reaped.append(self.run(run.id))
        return reaped

    def run(self, run_id: int) -> Run:
        with self.connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return Run(**dict(row))

    def runs(self, plan: str | None = None, limit: int = 200) -> list[Run]:
        """Newest first."""
        query, args = "SELECT * FROM runs", ()
        if plan is not None:
            query, args = query + " WHERE plan = ?", (plan,)
        with self.connect() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Run(**dict(r)) for r in rows]

    def last(self, plan: str, job: str, status: str | None = None) -> Run | None:
        query = "SELECT * FROM runs WHERE plan = ? AND job = ?"
        args: tuple = (plan, job)
        if status is not None:
            query, args = query + " AND status = ?", (*args, status)
        with self.connect() as db:
            row = db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return Run(**dict(row)) if row else None

    def failures_since_ok(self, plan: str, job: str) -> int:
        """Consecutive failed attempts of `job` since its last success (for the backoff)."""
        with self.connect() as db:
            ok = db.execute(
                "SELECT COALESCE(MAX(id), 0) FROM runs WHERE plan = ? AND job = ? AND status = ?",
                (plan, job, OK),
            ).fetchone()[0]
            return int(
                db.execute(
                    "SELECT COUNT(*) FROM runs WHERE plan = ? AND job = ? AND id > ?"
                    " AND status IN (?, ?, ?)",
                    (plan, job, ok, FAILED, INTERRUPTED, DEAD),
                ).fetchone()[0]
            )

    def last_success_times(self, plan: str) -> dict[str, float]:
        """End of each job's newest successful run."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT job, MAX(ended_at) FROM runs WHERE plan = ? AND status = ? GROUP BY job",
                (plan, OK),
            ).fetchall()
        return {r[0]: r[1] for r in rows if r[1] is not None}

    def last_details(self, plan: str, job: str) -> Any:
        """The JSON document of the job's newest successful run (e.g. the backup's
        sources and bytes), or None."""
        with self.connect() as db:
            row = db.execute(
                "SELECT details FROM runs WHERE plan = ? AND job = ? AND status = ?"
                " AND details IS NOT NULL ORDER BY id DESC LIMIT 1",
                (plan, job, OK),
            ).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def run_counts(self) -> dict[tuple[str, str, str], int]:
        """Ended runs by (plan, job, status)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT plan, job, status, COUNT(*) FROM runs WHERE status != ?"
                " GROUP BY plan, job, status",
                (RUNNING,),
            ).fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    # -- facts read back from the repository ----------------------------------------------

    def put_fact(self, plan: str, kind: str, body: Any) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO facts (plan, kind, updated_at, body) VALUES (?, ?, ?, ?)",
                (plan, kind, time.time(), json.dumps(body)),
            )

    def fact(self, plan: str, kind: str) -> tuple[float, Any] | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT updated_at, body FROM facts WHERE plan = ? AND kind = ?", (plan, kind)
            ).fetchone()
        return (row["updated_at"], json.loads(row["body"])) if row else None

    # -- alert states (so a notification is sent once per transition) ---------------------

    def alert_state(self, plan: str, subject: str) -> str | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT state FROM alerts WHERE plan = ? AND subject = ?", (plan, subject)
            ).fetchone()
        return row["state"] if row else None

    def set_alert_state(self, plan: str, subject: str, state: str) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO alerts (plan, subject, state, since) VALUES (?, ?, ?, ?)",
                (plan, subject, state, time.time()),
            )

    # -- pause (an action of the dashboard) -------------------------------------------------

    def paused(self, plan: str) -> float | None:
        with self.connect() as db:
            row = db.execute("SELECT since FROM paused WHERE plan = ?", (plan,)).fetchone()
        return row["since"] if row else None

    def set_paused(self, plan: str, paused: bool) -> None:
        with self.connect() as db:
            if paused:
                db.execute(
                    "INSERT OR IGNORE INTO paused (plan, since) VALUES (?, ?)", (plan, time.time())
                )
            else:
                db.execute("DELETE FROM paused WHERE plan = ?", (plan,))


def lock(path: str | Path) -> int:
    """Take the daemon's exclusive lock beside the state file (a second `drplan serve` on
    the same state would run every job twice); the descriptor is held for the process's
    life. Returns it, or raises BlockingIOError when another daemon holds it."""
    import fcntl

    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
