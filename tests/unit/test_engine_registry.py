"""Engines are found by module name, and every consumer asks the registry.

A toy engine is written as one module in a temporary directory added to
``drplan.sources.__path__`` (the registry's discovery mechanism): no file of drplan is
touched, and validation, the schedule, the checks, `drplan init` and the runbook all use
it. The built-in engines are held to the same Protocol.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import drplan.sources
from drplan import runbook as rb
from drplan.actions import service_checks
from drplan.actions.context import check_plan, load_plan
from drplan.actions.init import detect_engine, draft_plan
from drplan.cli import app
from drplan.errors import InputError
from drplan.plan import model as m
from drplan.plan.compose import ComposeService
from drplan.schedule import build_schedule
from drplan.schedule.estimate import DEFAULT_FIXED_S
from drplan.sources import registry
from drplan.sources.base import Engine, SourceOps, missing_members, protocol_members
from drplan.store import manifest as mf
from drplan.store.restic import Repository

TOY = '''
"""A toy engine: all drplan knows of "toydb", in one module."""

from drplan.sources.base import (
    EngineDefaults, Procedure, SqlCommand, image_keyword,
)


class Toy(EngineDefaults):
    name = "toydb"
    aliases = ("toy",)
    summary = "Toy database: toydump in its own container"
    consistency = "toy snapshot"
    methods = ("dump",)
    dump_needs_server = True
    restores_into_server = True
    restore_bps = 1_000_000
    runs_sql = True

    def source_problems(self, src):
        return [] if src.databases else [(("databases",), "a toydb source names its databases")]

    def sql_command(self, src, query):
        return SqlCommand(
            ["toysql", f"--db={src.databases[0]}", f"--query={query}"], password_env="TOY_PWD"
        )

    def detect(self, svc):
        return image_keyword(svc, ("toydb",))

    def data_dirs(self, svc):
        return ("/var/lib/toy",)

    def guess_health(self, name, svc):
        return {"type": "command", "command": ["toyctl", "ping"], "retries": 30}, "toyctl ping"

    def draft_checks(self):
        return [{"type": "sql", "name": "toy answers", "query": "PING", "expect": "PONG"}]

    def backup(self, ctx):
        raise NotImplementedError

    def restore(self, ctx, snapshot, path, fingerprint):
        raise NotImplementedError

    def fingerprint(self, ctx):
        return {"rows": 0}

    def stored_fingerprint(self, repo, record, *, engine=None, labels=None):
        return {"rows": 0}

    def is_empty(self, ctx):
        return True

    def runbook_restore(self, kit, service, source, spec, record):
        return Procedure(
            f"Toy replay of {service}/{source}",
            [("Replay", kit.container(service)
              + f'{kit.dump(record.snapshot, record.path)} | docker exec -i "$C" toyload\\n')],
        )

    def runbook_verify(self, kit, service, source, spec, record):
        return kit.container(service) + kit.expect(
            'docker exec "$C" toycount', record.fingerprint["rows"], "rows"
        )


ENGINE = Toy()
'''

COMPOSE = """\
services:
  toy:
    image: example/toydb:3
    volumes: [toy-data:/var/lib/toy]
  app:
    image: example/app:1
    depends_on: [toy]
volumes:
  toy-data:
"""

PLAN = """\
version: 1
stack: {name: toys, compose: compose.yml}
sites:
  a: {role: primary, docker_host: "unix:///var/run/docker.sock"}
  b: {role: recovery, docker_host: "tcp://127.0.0.1:23750"}
repositories:
  main: {url: /srv/restic/toys, role: primary, password: {env: RESTIC_PASSWORD}}
  copy: {url: "sftp:backup@offsite:/toys", role: copy, password: {env: RESTIC_PASSWORD}}
services:
  toy:
    data:
      data:
        engine: toydb
        volume: toy-data
        databases: [shop]
        password: {env: DRPLAN_TOY_PW}
        size_hint: 50MB
    checks:
      - {type: sql, query: PING, expect: PONG, retries: 1}
  app:
    depends_on: [toy]
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy engine, importable as drplan.sources.toydb for this test only."""
    extra = tmp_path / "engines"
    extra.mkdir()
    (extra / "toydb.py").write_text(textwrap.dedent(TOY))
    monkeypatch.setattr(drplan.sources, "__path__", [*drplan.sources.__path__, str(extra)])
    monkeypatch.delitem(sys.modules, "drplan.sources.toydb", raising=False)
    yield registry.engine("toydb")
    sys.modules.pop("drplan.sources.toydb", None)
    vars(drplan.sources).pop("toydb", None)  # the attribute an import sets on the package


def write(tmp_path: Path, plan: str = PLAN) -> Path:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    path = tmp_path / "drplan.yml"
    path.write_text(plan)
    return path


def test_the_registry_finds_an_engine_by_its_module(toy):
    assert sys.modules["drplan.sources.toydb"].ENGINE is toy
    assert "toydb" in registry.engines() and "toy" in registry.names()
    assert registry.find("toy") is toy
    assert registry.operations("toydb", "dump") is toy
    assert missing_members(toy, Engine) == []


def test_the_toy_engine_is_gone_with_its_directory():
    assert registry.find("toydb") is None
    with pytest.raises(InputError, match=r"unknown engine 'toydb' \(drplan knows files, mariadb"):
        registry.engine("toydb")


def test_a_plan_of_the_toy_engine_validates(toy, tmp_path, runner):
    result = runner.invoke(app, ["validate", str(write(tmp_path))])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.startswith("OK: ")


def test_the_toy_engine_s_own_rules_and_methods_are_applied(toy, tmp_path):
    path = write(tmp_path, PLAN.replace("databases: [shop]", "method: cold"))
    assert [p.format() for p in check_plan(path).errors] == [
        f"{path}:13:9: services.toy.data.data.databases: a toydb source names its databases",
        f"{path}:15:17: services.toy.data.data.method: engine toydb has no method 'cold' "
        "(it has dump)",
    ]


def test_an_unknown_engine_is_located_with_the_known_ones(toy, tmp_path, runner):
    path = write(tmp_path, PLAN.replace("engine: toydb", "engine: toydbb"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    line = next(x for x in result.stdout.splitlines() if "unknown engine" in x)
    assert line.startswith(f"{path}:13:17: services.toy.data.data.engine: unknown engine 'toydbb'")
    assert "(did you mean 'toydb'?)" in line
    assert "drplan knows files, mariadb, mysql, postgresql, redis, sqlite, toy, toydb)" in line


def test_the_schedule_asks_the_engine(toy, tmp_path):
    plan = load_plan(write(tmp_path)).plan
    schedule = build_schedule(plan)
    restore = schedule.steps["restore:toy/data"]
    # replayed into the running server: after its health gate (readiness) ...
    assert "health:toy" in restore.after
    # ... and a dependent starts only once the data is back
    assert "restore:toy/data" in schedule.steps["start:app"].after
    # estimated at the engine's own throughput (50 MB at 1 MB/s)
    assert restore.estimate_basis == "size"
    assert restore.estimate_s == pytest.approx(DEFAULT_FIXED_S["restore"] + 50.0)


class FakeEngine:
    """The Docker engine seen by a check: records what would run in the container."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict | None]] = []

    def wait_running(self, stack, service, deadline, *, healthy=True):
        return SimpleNamespace(id="c0ffee")

    def exec_run(self, container, argv, *, what, env=None, check=True):
        self.calls.append((argv, env))
        return SimpleNamespace(exit_code=0, stdout=b"PONG\n", stderr=b"")


def test_an_sql_check_runs_the_engine_s_command_with_its_password(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("DRPLAN_TOY_PW", "toy-secret")
    pc = load_plan(write(tmp_path))
    check = pc.plan.services["toy"].checks[0]
    engine = FakeEngine()
    service_checks.run(
        engine, "toys", "toy", check, pc.plan, time.monotonic() + 30, resolve=pc.resolve
    )
    [(argv, env)] = engine.calls
    assert argv == ["toysql", "--db=shop", "--query=PING"]
    assert env == {"TOY_PWD": "toy-secret"}


def test_init_detects_the_toy_engine(toy, tmp_path):
    (tmp_path / "compose.yml").write_text(COMPOSE)
    svc = ComposeService("toy", image="registry:5000/example/toydb:3")
    assert detect_engine(svc)[:2] == ("toydb", "dump")
    draft = draft_plan(tmp_path / "compose.yml", plan_path=tmp_path / "drplan.yml")
    entry = draft.data["services"]["toy"]
    assert entry["data"]["db"] == {
        "engine": "toydb",
        "method": "dump",
        "volume": "toy-data",
        "path": "/var/lib/toy",
    }
    assert entry["health"] == {"type": "command", "command": ["toyctl", "ping"], "retries": 30}
    assert entry["checks"] == toy.draft_checks()
    assert any("toy: toydb (from image 'toydb')" in n for n in draft.notes)
    assert "data" not in draft.data["services"]["app"]


def _toy_run() -> mf.Manifest:
    return mf.Manifest(
        plan="toys",
        stack="toys",
        run_id="20260101T000000Z-abcd",
        host="h",
        drplan_version="0",
        started_at="2026-01-01T00:00:00Z",
        rpo_point="2026-01-01T00:00:00Z",
        complete=True,
        sources=[
            mf.SourceRecord(
                service="toy",
                source="data",
                engine="toydb",
                method="dump",
                consistency="toy snapshot",
                snapshot="70e0b001",
                path="/toy.data.toy",
                bytes=1000,
                seconds=1.0,
                started_at="2026-01-01T00:00:00Z",
                finished_at="2026-01-01T00:00:01Z",
                fingerprint={"databases": ["shop"], "rows": 42},
            )
        ],
        images={"example/toydb:3": "sha256:" + "1" * 64},
        images_snapshot="5a0e1a9e",
    )


def test_the_runbook_asks_the_engine(toy, tmp_path):
    pc = load_plan(write(tmp_path))
    repo = Repository(name="main", url=str(tmp_path / "repo"), password="x")
    book = rb.build(pc, repo, manifest=_toy_run(), drills=[])
    pages = {p.id: p for p in book["steps"]}
    restore = pages["restore:toy/data"]
    assert restore.purpose == "Toy replay of toy/data"
    assert "restic dump --no-lock -- 70e0b001 /toy.data.toy | " in restore.blocks[0][1]
    assert 'docker exec -i "$C" toyload' in restore.blocks[0][1]
    validate = pages["validate:toy"]
    sql = validate.blocks[0][1]
    assert "# the database password: export TOY_PWD first" in sql
    assert 'docker exec -e TOY_PWD "$C" toysql --db=shop --query=PING' in sql
    assert "toy-secret" not in sql
    assert 'got=$(docker exec "$C" toycount)' in validate.checks[0][1]


def test_every_built_in_engine_is_complete():
    found = registry.engines()
    assert sorted(found) == ["files", "mariadb", "postgresql", "redis", "sqlite"]
    assert registry.find("mysql") is found["mariadb"]
    for name, engine in found.items():
        assert missing_members(engine, Engine) == [], name
        assert engine.name == name and engine.summary and set(engine.methods) <= {"dump", "cold"}
        assert engine.runs_sql == (
            engine.sql_command(m.DataSource(engine=name), "SELECT 1") is not None
        )
    cold = registry.operations("redis", "cold")
    assert cold is not found["files"] and missing_members(cold, SourceOps) == []
    assert {"runbook_restore", "stored_fingerprint", "sql_command", "detect"} <= protocol_members(
        Engine
    )


def test_the_schema_lists_the_engines():
    from drplan.plan.schema import plan_schema

    prop = plan_schema(engines=registry.names())["$defs"]["DataSource"]["properties"]["engine"]
    assert prop["enum"] == ["files", "mariadb", "mysql", "postgresql", "redis", "sqlite"]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "plan.schema.json").read_text()
    assert yaml.safe_load(docs)["$defs"]["DataSource"]["properties"]["engine"] == prop
