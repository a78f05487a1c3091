"""Restores that go quiet for a long time, and restores whose source dies (threat model,
classes 5 and 6).

- A replay that prints nothing for several times the Engine API client's timeout (made
  short here with DRPLAN_ENGINE_TIMEOUT) is working, not stuck: the recovery succeeds.
- The `restic dump` feeding a database replay is SIGKILLed mid-stream: the step fails,
  the replay is killed before it sees end-of-input, and the target database is left
  with no partial data.

The campus database gets two extra tables: `aaa_slow`, whose CHECK constraint sleeps
while its row is replayed (the replay is silent meanwhile), and `zzz_big`, several
megabytes replayed after it, so restic's dump is still streaming during the sleep.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from testbed import generator, plans, sites, stacks, verifier

pytestmark = pytest.mark.integration
SLEEP_S = 30
CLIENT_TIMEOUT_S = 8

EXTRA_SQL = f"""
CREATE FUNCTION drplan_test_slow(x int) RETURNS boolean LANGUAGE sql AS
  'SELECT pg_sleep({SLEEP_S}) IS NOT NULL';
CREATE TABLE aaa_slow (x int CHECK (drplan_test_slow(x)));
INSERT INTO aaa_slow VALUES (1);
CREATE TABLE zzz_big (id int, pad text);
INSERT INTO zzz_big SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, 40000) g;
"""


@pytest.fixture(scope="module")
def slow_campus(testbed, tmp_path_factory):
    url = testbed["primary"]
    tp = plans.adapt(
        "campus", tmp_path_factory.mktemp("faults"), name=f"faults{uuid.uuid4().hex[:6]}"
    )
    plans.deploy(url, tp)
    try:
        client = sites.client(url)
        generator.populate(client, "campus", tp.name, generator.Size.small(), seed=5)
        db = stacks.container(client, tp.name, "db")
        code, out = stacks.exec_text(
            db, ["psql", "-U", "campus", "-d", "campus", "-v", "ON_ERROR_STOP=1", "-c", EXTRA_SQL]
        )
        assert code == 0, out
        plans.ok("repo", "init", tp.path)
        run = plans.ok_json("backup", tp.path)
        assert run["complete"], run
        yield tp, verifier.fingerprint(client, "campus", tp.name)
    finally:
        stacks.remove(url, tp.name)


def test_a_restore_silent_for_several_client_timeouts_succeeds(slow_campus, testbed, tmp_path):
    tp, expected = slow_campus
    stack = f"qt{tp.name}"
    t0 = time.monotonic()
    try:
        report = plans.ok_json(
            "recover",
            tp.path,
            "--prefix",
            "qt",
            "--report-dir",
            tmp_path,
            env={"DRPLAN_ENGINE_TIMEOUT": str(CLIENT_TIMEOUT_S)},
        )
        assert report["ok"], report
        # the replay really was silent for longer than several client timeouts
        assert time.monotonic() - t0 > SLEEP_S > 3 * CLIENT_TIMEOUT_S
        got = verifier.fingerprint(sites.client(testbed["recovery"]), "campus", stack)
        assert verifier.differences(expected, got) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, tp.name)


def _restic_dumps(repo: str) -> list[int]:
    """pids of `restic dump` processes reading `repo` (other tests run their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"restic")
            and b"dump" in argv
            and b"/db.pg.sql" in argv
            and f"RESTIC_REPOSITORY={repo}".encode() in environ
        ):
            found.append(int(entry.name))
    return found


def test_a_restic_dump_killed_mid_restore_fails_the_step_and_leaves_no_partial_data(
    slow_campus, testbed, tmp_path
):
    tp, _ = slow_campus
    stack = f"kd{tp.name}"
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        """Kill the replay's `restic dump` once it has streamed for a while (it is then
        blocked behind the slow row, mid-stream)."""
        seen: dict[int, float] = {}
        while not stop.is_set() and not killed:
            for pid in _restic_dumps(tp.repo):
                first = seen.setdefault(pid, time.monotonic())
                if time.monotonic() - first > SLEEP_S / 4:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.1)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        proc = plans.drplan("recover", tp.path, "--prefix", "kd", "--report-dir", tmp_path)
        stop.set()
        t.join()
        out = proc.stdout + proc.stderr
        assert killed, f"no restic dump was seen to kill: {out[-2000:]}"
        assert proc.returncode == 1, out
        assert "Traceback" not in out, out
        assert "restore:db/pg" in out or "source pg" in out, out
        client = sites.client(testbed["recovery"])
        db = stacks.container(client, stack, "db")
        code, text = stacks.exec_text(
            db,
            [
                "psql",
                "-U",
                "campus",
                "-d",
                "postgres",
                "-At",
                "-c",
                "SELECT count(*) FROM pg_database WHERE datname = 'campus'",
            ],
        )
        assert code == 0, text
        if text.strip() == "1":  # the image's own empty database may be there: no table
            code, tables = stacks.exec_text(
                db,
                [
                    "psql",
                    "-U",
                    "campus",
                    "-d",
                    "campus",
                    "-At",
                    "-c",
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                ],
            )
            assert code == 0 and tables.strip() == "0", tables
    finally:
        stop.set()
        stacks.remove_recovered(testbed["recovery"], stack, tp.name)
