"""The SQL check's command line as each engine spells it: the client the image has, the
password in the exec's environment and never in argv."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from drplan.actions import service_checks
from drplan.plan import model as m
from drplan.sources import mariadb, registry

STUB = '#!/bin/sh\nprintf "%s|%s|%s\\n" "${0##*/}" "${MYSQL_PWD:-no password}" "$*"\n'


def _client(tmp_path: Path, names: list[str], args: list[str], env: dict[str, str]):
    """Run the engine's client choice (`sh -c CLIENT sh ARGS`) with only `names` on PATH,
    by Debian's /bin/sh (dash: POSIX sh, as in the images)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("mariadb", "mysql"):
        (bin_dir / name).unlink(missing_ok=True)
    for name in names:
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        ["/bin/sh", "-c", mariadb.CLIENT, "sh", *args],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), **env},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("names", "called"),
    [(["mariadb", "mysql"], "mariadb"), (["mysql"], "mysql"), (["mariadb"], "mariadb")],
)
def test_the_image_s_own_client_is_called(tmp_path, names, called):
    src = m.DataSource(engine="mysql", user="root", databases=["shop"], password={"env": "X"})
    cmd = registry.engine("mysql").sql_command(src, "SELECT 1")
    assert cmd.argv[:4] == ["sh", "-c", mariadb.CLIENT, "sh"]
    done = _client(tmp_path, names, cmd.argv[4:], {cmd.password_env: "s3cret"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{called}|s3cret|--user=root -N -B --database=shop --execute=SELECT 1\n"


def test_no_client_at_all_is_said(tmp_path):
    done = _client(tmp_path, [], ["-e", "SELECT 1"], {})
    assert done.returncode == 127
    assert done.stderr.strip() == "no mariadb or mysql client in the container"


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict | None]] = []

    def wait_running(self, stack, service, deadline, *, healthy=True):
        return SimpleNamespace(id="c0ffee")

    def exec_run(self, container, argv, *, what, env=None, check=True):
        self.calls.append((argv, env))
        return SimpleNamespace(exit_code=0, stdout=b"1\n", stderr=b"")


def _plan(engine: str, password: dict | None) -> m.Plan:
    return m.Plan.model_validate(
        {
            "version": 1,
            "stack": {"name": "s", "compose": "compose.yml"},
            "sites": {"a": {"role": "primary", "docker_host": "unix:///x.sock"}},
            "repositories": {"r": {"url": "/r", "role": "primary", "password": {"env": "R"}}},
            "services": {
                "db": {
                    "data": {"d": {"engine": engine, "user": "root", "password": password}},
                    "checks": [{"type": "sql", "query": "SELECT 1", "expect": "1"}],
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("engine", "variable"), [("mysql", "MYSQL_PWD"), ("postgresql", "PGPASSWORD")]
)
def test_the_password_goes_in_the_environment_only(engine, variable):
    plan = _plan(engine, {"env": "DB_PW"})
    asked: list[tuple[m.Secret, str]] = []

    def resolve(secret, what):
        asked.append((secret, what))
        return "pw-9f3e"

    fake = FakeEngine()
    check = plan.services["db"].checks[0]
    service_checks.run(fake, "s", "db", check, plan, time.monotonic() + 10, resolve=resolve)
    [(argv, env)] = fake.calls
    assert env == {variable: "pw-9f3e"}
    assert not any("pw-9f3e" in a for a in argv)
    assert asked == [(m.Secret(env="DB_PW"), "services.db.data.d.password")]


def test_no_password_no_environment():
    fake = FakeEngine()
    plan = _plan("mariadb", None)
    check = plan.services["db"].checks[0]
    service_checks.run(fake, "s", "db", check, plan, time.monotonic() + 10)
    assert fake.calls[0][1] is None
