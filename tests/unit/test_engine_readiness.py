"""Readiness before a native restore: the probes each engine runs in its container
(run here by `sh` against stand-in tools, to check what they accept and refuse) and the
waiting loop (a scripted engine and clock: the loop is pure logic)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.platform.docker import ExecResult
from drplan.sources import mariadb, postgresql, redis, registry
from drplan.sources.base import ReadyProbe, SourceContext, wait_until_ready


def _tool(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run(probe: ReadyProbe, bin_dir: Path, env: dict[str, str] | None = None):
    """The probe's argv run here with only `bin_dir` on PATH (and the shell tools the
    stand-ins use linked there): this host's own database tools are never found."""
    for name in ("sh", "dirname"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(shutil.which(name) or f"/bin/{name}")
    path = str(bin_dir)
    res = subprocess.run(
        probe.argv, env={"PATH": path, **(env or {})}, capture_output=True, check=False
    )
    return res.returncode, res.stdout


def test_pg_probe_asks_tcp_on_localhost_as_the_sources_user(tmp_path: Path) -> None:
    _tool(tmp_path, "pg_isready", 'echo "$@" > "$(dirname "$0")/args"\n')
    probe = postgresql.ready_probe(m.DataSource(engine="postgresql", user="wiki"))
    code, _ = _run(probe, tmp_path, {"PGPORT": "6543"})
    assert code == 0
    assert (tmp_path / "args").read_text().split() == [
        "-q", "-h", "localhost", "-p", "6543", "-U", "wiki",
    ]  # fmt: skip


def test_pg_probe_not_ready_and_missing_tool(tmp_path: Path) -> None:
    probe = postgresql.ready_probe(m.DataSource(engine="postgresql"))
    assert _run(probe, tmp_path)[0] == 127  # no pg_isready: cannot tell
    _tool(tmp_path, "pg_isready", "exit 2\n")  # no response
    code, out = _run(probe, tmp_path)
    assert not probe.ready(code, out)


def test_mariadb_probe_prefers_mariadb_admin_and_falls_back(tmp_path: Path) -> None:
    probe = mariadb.ready_probe(m.DataSource(engine="mariadb", user="app"))
    assert _run(probe, tmp_path)[0] == 127
    _tool(tmp_path, "mysqladmin", 'echo "mysqladmin $*"\n')
    code, out = _run(probe, tmp_path)
    assert code == 0 and out.split()[:6] == [
        b"mysqladmin", b"ping", b"--protocol=tcp", b"-h", b"127.0.0.1", b"-P",
    ]  # fmt: skip
    assert out.split()[-2:] == [b"-u", b"app"]
    _tool(tmp_path, "mariadb-admin", "echo mariadb-admin; exit 1\n")
    code, out = _run(probe, tmp_path)
    assert out.strip() == b"mariadb-admin" and not probe.ready(code, out)


@pytest.mark.parametrize(
    ("answer", "ready"),
    [("PONG", True), ("NOAUTH Authentication required.", True),
     ("LOADING Redis is loading the dataset in memory", False),
     ("Could not connect to Redis at 127.0.0.1:6379: Connection refused", False)],
)  # fmt: skip
def test_redis_probe_reads_the_answer(tmp_path: Path, answer: str, ready: bool) -> None:
    _tool(tmp_path, "redis-cli", f"echo '{answer}'\n")
    code, out = _run(redis.READY_PROBE, tmp_path)
    assert redis.READY_PROBE.ready(code, out) is ready


def test_every_native_restore_engine_has_a_probe() -> None:
    """Engines replaying into a server, and Redis (loads its RDB), wait; files do not."""
    for name in registry.names():
        engine = registry.engine(name)
        if engine.restores_into_server or name == "redis":
            assert type(engine).wait_ready is not type(registry.engine("files")).wait_ready


# -- the waiting loop -------------------------------------------------------------------


@dataclass
class _C:
    id: str


@dataclass
class _Engine:
    """Answers scripted per probe: (container id, exit status, stdout)."""

    answers: list[tuple[str, int, bytes]]
    probes: list[list[str]] = field(default_factory=list)

    def wait_running(self, stack, name, deadline, *, healthy=True):
        cid = self.answers[0][0]
        if cid == "-":
            self.answers.pop(0)
            raise OperationError("service s_db is not running in time", where="e")
        return _C(cid)

    def exec_run(self, container, argv, *, what, env=None, check=True):
        self.probes.append(argv)
        _, code, out = self.answers.pop(0)
        return ExecResult(code, out, b"")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def _ctx(engine: _Engine) -> SourceContext:
    return SourceContext(
        engine=engine,  # type: ignore[arg-type]
        repo=None,  # type: ignore[arg-type]
        stack="s",
        plan_name="p",
        service="db",
        name="main",
        spec=m.DataSource(engine="postgresql"),
    )


PROBE = ReadyProbe(["probe"], "probe on localhost")


def test_waits_until_ready_twice_on_the_same_container() -> None:
    # not running, refused, ready once then the entrypoint restarts it (new container
    # counts again), then ready twice on c2
    eng = _Engine([("-", 0, b""), ("c1", 2, b""), ("c1", 0, b""), ("c2", 0, b""), ("c2", 0, b"")])
    clock = _Clock()
    wait_until_ready(_ctx(eng), PROBE, 100, clock=clock, sleep=clock.sleep)
    assert eng.answers == [] and len(eng.probes) == 4


def test_a_failure_between_successes_starts_the_count_again() -> None:
    eng = _Engine([("c", 0, b""), ("c", 1, b""), ("c", 0, b""), ("c", 0, b"")])
    clock = _Clock()
    wait_until_ready(_ctx(eng), PROBE, 100, clock=clock, sleep=clock.sleep)
    assert eng.answers == []


def test_times_out_naming_service_source_and_last_answer() -> None:
    eng = _Engine([("c", 2, b"no response")] * 10)
    clock = _Clock()
    with pytest.raises(OperationError) as err:
        wait_until_ready(_ctx(eng), PROBE, 3.5, clock=clock, sleep=clock.sleep)
    text = str(err.value) + str(err.value.where)
    assert "service db, source main" in text
    assert "probe on localhost" in text and "no response" in text


def test_missing_tool_fails_at_once() -> None:
    eng = _Engine([("c", 127, b"")] * 5)
    clock = _Clock()
    with pytest.raises(OperationError, match="not in the container"):
        wait_until_ready(_ctx(eng), PROBE, 100, clock=clock, sleep=clock.sleep)
    assert len(eng.probes) == 1


def test_tool_environment_is_not_this_hosts() -> None:
    """The probes run `sh -c` with arguments as words: no value is shell text."""
    probe = postgresql.ready_probe(m.DataSource(engine="postgresql", user="x'; rm -rf /"))
    assert probe.argv[:2] == ["sh", "-c"] and probe.argv[-1] == "x'; rm -rf /"
    assert "rm -rf" not in probe.argv[2]
