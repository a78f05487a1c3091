"""`drplan init --from-stack`: what a running container shows, mapped to an engine or a
store (pure), and how the draft uses it (the stack's observation faked: no engine).

The real engine reads are tested in tests/integration/test_init_from_stack.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drplan.actions import draft_live as live
from drplan.actions import init as init_mod
from drplan.actions.draft_live import Observed
from drplan.errors import InputError

CANDS = live.candidates()


def seen(**kw) -> Observed:
    return Observed("db", container="db.1", **kw)


@pytest.mark.parametrize(
    ("processes", "engine"),
    [
        (("tini", "postgres", "postgres", "postgres"), "postgresql"),
        (("mariadbd",), "mariadb"),
        (("mysqld_safe", "mysqld"), "mariadb"),
        (("redis-server",), "redis"),
        (("valkey-server",), "redis"),
        (("mongod",), "mongodb"),
        (("clickhouse-serv",), "clickhouse"),  # /proc/PID/comm, cut to 15 characters
        (("influxd",), "influxdb"),
    ],
)
def test_a_server_process_names_its_engine_or_store(processes, engine):
    found = live.recognise(seen(processes=processes, processes_read=True), CANDS)
    assert found is not None and found.name == engine
    assert found.seen[0].startswith("process ")


@pytest.mark.parametrize(
    "processes",
    [("node", "npm"), ("postgres_exporter",), ("psql",), ("redis-cli",), ("mysql",)],
)
def test_clients_and_exporters_are_no_server(processes):
    assert live.recognise(seen(processes=processes, processes_read=True), CANDS) is None


@pytest.mark.parametrize(
    ("present", "engine", "text"),
    [
        ({"PG_VERSION", "base/"}, "postgresql", "PG_VERSION in /srv/db"),
        ({"mysql/", "ibdata1"}, "mariadb", "mysql, ibdata1 in /srv/db"),
        ({"mysql/", "aria_log_control"}, "mariadb", "mysql, aria_log_control in /srv/db"),
        ({"dump.rdb"}, "redis", "dump.rdb in /srv/db"),
        ({"appendonlydir/"}, "redis", "appendonlydir in /srv/db"),
        ({"WiredTiger"}, "mongodb", "WiredTiger in /srv/db"),
    ],
)
def test_data_files_name_the_engine_when_processes_cannot_be_read(present, engine, text):
    obs = seen(files={"/srv/db": frozenset(present)})
    found = live.recognise(obs, CANDS)
    assert found is not None and (found.name, found.seen) == (engine, (text,))


def test_data_files_alone_do_not_count_beside_other_processes():
    """A dump.rdb in the directory of a container that runs no Redis is a copy."""
    obs = seen(
        processes=("python3",), processes_read=True, files={"/data": frozenset({"dump.rdb"})}
    )
    assert live.recognise(obs, CANDS) is None


def test_a_file_set_needs_every_member():
    assert live.recognise(seen(files={"/d": frozenset({"mysql/"})}), CANDS) is None
    assert live.recognise(seen(files={"/d": frozenset({"ibdata1"})}), CANDS) is None


def test_process_and_files_together_are_the_evidence():
    obs = seen(
        processes=("postgres",),
        processes_read=True,
        files={"/var/lib/postgresql/data": frozenset({"PG_VERSION"})},
    )
    found = live.recognise(obs, CANDS)
    assert found is not None
    assert found.text == "seen live: process postgres, PG_VERSION in /var/lib/postgresql/data"


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("POSTGRES_USER", "ledger", True),
        ("MARIADB_USER", "wiki", True),
        ("MYSQL_DATABASE", "wiki", True),
        ("PGDATA", "/srv/db", True),
        ("POSTGRES_PASSWORD_FILE", "/run/secrets/pw", True),
        ("POSTGRES_USER_FILE", "/run/secrets/user", True),
        ("POSTGRES_PASSWORD", "s3cret", False),
        ("MYSQL_ROOT_PASSWORD", "s3cret", False),
        ("API_TOKEN", "t", False),
        ("AWS_SECRET_ACCESS_KEY", "k", False),
        ("SECRET_KEY_BASE_USER", "k", False),
        ("SOME_FILE", "not a path", False),
        ("HOME", "/root", False),
    ],
)
def test_only_values_that_are_no_secret_are_read(name, value, ok):
    assert live.readable(name, value) is ok


def test_the_engine_url_defaults_to_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert live.docker_url(None) == "tcp://10.0.0.1:2375"
    assert live.docker_url("unix:///x.sock") == "unix:///x.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert live.docker_url(None) == live.DEFAULT_DOCKER_URL


# -- the draft with a faked observation -------------------------------------------------

COMPOSE = """\
services:
  ledger:
    image: ${LEDGER_IMAGE:-acme/ledger:3}
    volumes:
      - books:/srv/db
  cache:
    image: acme/cache:1
    volumes:
      - cache:/var/cache/acme
  search:
    image: acme/finder:2
    volumes:
      - index:/srv/index
  web:
    image: nginx:1.27
    depends_on: [ledger, cache, search]
  sessions:
    image: redis:7
volumes:
  books:
  cache:
  index:
"""


@pytest.fixture
def compose(tmp_path: Path) -> Path:
    path = tmp_path / "compose.yml"
    path.write_text(COMPOSE)
    return path


def fake_observe(found: dict[str, Observed], extra: list[str] | None = None):
    calls = []

    def observe(url, stack, services):
        calls.append((url, stack, sorted(services)))
        return {n: found.get(n, Observed(n, why_not="not running")) for n in services}, (
            extra or []
        )

    return observe, calls


def test_live_evidence_drafts_what_the_compose_file_cannot_tell(compose, monkeypatch, tmp_path):
    observed = {
        "ledger": Observed(
            "ledger",
            container="x",
            processes=("postgres",),
            processes_read=True,
            files={"/srv/db": frozenset({"PG_VERSION"})},
            env={"PGDATA": "/srv/db", "POSTGRES_USER": "books", "POSTGRES_PASSWORD": ""},
        ),
        "cache": Observed("cache", container="x", processes=("acme-cache",), processes_read=True),
        "search": Observed("search", container="x", processes=("mongod",), processes_read=True),
        "web": Observed("web", container="x", processes=("nginx",), processes_read=True),
        "sessions": Observed(
            "sessions", container="x", processes=("redis-server",), processes_read=True
        ),
    }
    observe, calls = fake_observe(observed, extra=["metrics"])
    monkeypatch.setattr(live, "observe", observe)
    draft = init_mod.draft_plan(
        compose, from_stack="shop", docker_host="unix:///run/x.sock", plan_path=tmp_path / "p.yml"
    )
    assert calls == [
        ("unix:///run/x.sock", "shop", ["cache", "ledger", "search", "sessions", "web"])
    ]
    data = draft.data
    assert data["stack"]["name"] == "shop"
    assert data["sites"]["primary"]["docker_host"] == "unix:///run/x.sock"
    [db] = data["services"]["ledger"]["data"].values()
    assert (db["engine"], db["method"], db["volume"], db["user"]) == (
        "postgresql", "dump", "books", "books",
    )  # fmt: skip
    assert db["password"] == {"env": "POSTGRES_PASSWORD"}
    notes = "\n".join(draft.notes)
    assert "ledger: engine postgresql: seen live: process postgres, PG_VERSION in /srv/db" in notes
    assert "metrics: a service of the running stack shop that the compose files" in notes
    # a store with no native method seen running: cold, loudly
    [idx] = data["services"]["search"]["data"].values()
    assert (idx["engine"], idx["method"]) == ("files", "cold")
    warnings = "\n".join(draft.warnings)
    assert "search: seen live: process mongod: mongodb" in warnings and "cold copy" in warnings
    # nothing seen: drafted from the compose file as before (files, live copy)
    [cache] = data["services"]["cache"]["data"].values()
    assert (cache["engine"], cache["method"]) == ("files", "dump")
    # the compose file's own word, confirmed by the running server
    assert "sessions: engine redis: seen live: process redis-server" in notes


def test_a_conflict_between_compose_and_the_running_server_is_a_warning(compose, monkeypatch):
    observed = {
        "sessions": Observed(
            "sessions", container="x", processes=("valkey-server", "mariadbd"), processes_read=True
        )
    }
    monkeypatch.setattr(live, "observe", fake_observe(observed)[0])
    draft = init_mod.draft_plan(compose, from_stack="shop")
    warnings = "\n".join(draft.warnings)
    # two servers in one container: the compose file's engine is one of them
    assert "the compose file suggests" not in warnings
    observed["sessions"] = Observed(
        "sessions", container="x", processes=("mariadbd",), processes_read=True
    )
    draft = init_mod.draft_plan(compose, from_stack="shop")
    warnings = "\n".join(draft.warnings)
    assert "sessions: the compose file suggests redis" in warnings
    assert "its running container is mariadb" in warnings


def test_services_not_running_are_drafted_from_the_compose_file(compose, monkeypatch):
    monkeypatch.setattr(live, "observe", fake_observe({})[0])
    plain = init_mod.draft_plan(compose)
    draft = init_mod.draft_plan(compose, from_stack="shop")
    assert draft.data["services"] == plain.data["services"]
    assert "ledger: not running: drafted from the compose file alone" in draft.warnings


def test_the_stack_name_must_be_a_stack_name(compose):
    with pytest.raises(InputError, match="invalid stack name"):
        init_mod.draft_plan(compose, from_stack="no such/stack")


def test_the_draft_with_live_evidence_validates(compose, monkeypatch, tmp_path):
    from drplan.actions.context import check_plan

    observed = {
        "ledger": Observed(
            "ledger",
            container="x",
            processes=("postgres",),
            processes_read=True,
            env={"PGDATA": "/srv/db", "POSTGRES_USER": "books", "POSTGRES_PASSWORD": ""},
        )
    }
    monkeypatch.setattr(live, "observe", fake_observe(observed)[0])
    out = tmp_path / "plan.yml"
    draft = init_mod.draft_plan(compose, from_stack="shop", plan_path=out)
    out.write_text(yaml.safe_dump(draft.data, sort_keys=False))
    check = check_plan(out)
    assert check.context is not None, [p.format() for p in check.problems]
