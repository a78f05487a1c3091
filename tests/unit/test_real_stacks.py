"""`drplan init` on real public compose files: every expectation of their expect.yml.

Each fixture of tests/fixtures/real-stacks/ (see its README.md for the schema) is drafted
through the real command line (`drplan init --from ... -o draft.yml`), then the draft is
validated (`drplan validate`) and held to what expect.yml says a safe plan of that stack
contains: the engines and the users dumps log in as, password references (never values),
one source per volume or host directory owned by the expected service, no database
source or database health check for exporters and admin tools, cold copies (or a loud
warning) for stores with no native dump, warnings for state left unprotected, not
critical jobs and tools, and front ends in the first tiers.

An expectation the draft does not meet yet is listed in PENDING with its reason and
marked `xfail(strict=True)`: it fails the suite as soon as it starts passing. An
expectation changed after the code was written carries an `amended` record in its
expect.yml (when, what it was, why), held to erring on the safe side below.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from drplan.cli import app

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "real-stacks"
FIXTURES = sorted(p.parent.name for p in ROOT.glob("*/expect.yml"))
NATIVE = {"postgresql": "postgresql", "mariadb": "mariadb", "mysql": "mariadb"}
NATIVE |= {"redis": "redis", "sqlite": "sqlite"}
READINESS = ("pg_isready", "mariadb-admin", "redis-cli")

# (aspect, fixture) -> why the draft does not meet that expectation yet
PENDING: dict[tuple[str, str], str] = {}


def pending(aspect: str, fixture: str, request: pytest.FixtureRequest) -> None:
    """Mark the test an expected failure when (aspect, fixture) is pending: the test still
    runs whole, and strict=True fails the suite the day it passes."""
    reason = PENDING.get((aspect, fixture))
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


class Drafted:
    """One fixture drafted by the CLI: the plan data, its warnings, the expectations."""

    def __init__(self, fixture: str, out: Path, runner: CliRunner) -> None:
        self.dir = ROOT / fixture
        self.expect: dict[str, Any] = yaml.safe_load((self.dir / "expect.yml").read_text())
        self.path = out / f"{fixture}.yml"
        args = ["init"]
        for name in self.expect["compose"]:
            args += ["--from", str(self.dir / name)]
        self.init = runner.invoke(app, [*args, "-o", str(self.path)])
        self.text = self.path.read_text() if self.path.exists() else ""
        self.plan: dict[str, Any] = yaml.safe_load(self.text) if self.text else {}
        # the warnings kept as comments at the top of the draft
        self.warnings = [line[4:] for line in self.text.splitlines() if line.startswith("# - ")]
        self.validate = runner.invoke(app, ["validate", str(self.path)])

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.plan.get("services", {})

    def sources(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (svc, name, src)
            for svc, entry in self.services.items()
            for name, src in (entry.get("data") or {}).items()
        ]

    def needs(self, service: str, other: str) -> bool:
        """Whether `service` depends on `other`, directly or not."""
        seen, todo = set(), [service]
        while todo:
            cur = todo.pop()
            for dep in self.services.get(cur, {}).get("depends_on", []):
                if dep == other:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False

    def follows(self, other: str, owner: str) -> bool:
        """`other` mounts the owner's data: it depends on the owner, unless the owner
        already depends on it (the compose file's order; the reverse would be a cycle)."""
        return owner in self.services.get(other, {}).get("depends_on", []) or self.needs(
            owner, other
        )

    def warned(self, service: str, *words: str) -> bool:
        return any(
            w.startswith(f"{service}:") and all(x in w for x in words) for w in self.warnings
        )


@pytest.fixture(scope="module")
def drafts(tmp_path_factory) -> dict[str, Drafted]:
    runner = CliRunner()
    out = tmp_path_factory.mktemp("drafts")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("COMPOSE_PROFILES", raising=False)
        mp.delenv("COMPOSE_PROJECT_NAME", raising=False)
        return {f: Drafted(f, out, runner) for f in FIXTURES}


def test_there_are_enough_fixtures():
    assert len(FIXTURES) >= 12


@pytest.mark.parametrize("fixture", FIXTURES)
def test_the_draft_validates(drafts, fixture, request):
    d = drafts[fixture]
    assert d.init.exit_code == 0, d.init.output
    assert d.validate.exit_code == 0, d.validate.output


@pytest.mark.parametrize("fixture", FIXTURES)
def test_databases_engines_and_users(drafts, fixture, request):
    pending("databases", fixture, request)
    d = drafts[fixture]
    wrong = []
    for svc, exp in (d.expect.get("databases") or {}).items():
        entry = d.services.get(svc, {})
        srcs = list((entry.get("data") or {}).values())
        if not exp["native"]:
            if not any(s.get("method") == "cold" for s in srcs) and not d.warned(
                svc, "no native dump"
            ):
                wrong.append(f"{svc}: {exp['engine']} neither cold nor warned about")
            continue
        engine = NATIVE[exp["engine"]]
        dbs = [s for s in srcs if s.get("engine") == engine]
        if not dbs:
            if "anonymous" in exp["data"] and d.warned(svc, "anonymous"):
                continue  # nothing names the data: said loudly
            wrong.append(f"{svc}: no {engine} source (sources: {srcs})")
            continue
        src = dbs[0]
        health = (entry.get("health") or {}).get("command") or []
        if engine != "sqlite" and not any(r in " ".join(health) for r in READINESS):
            wrong.append(f"{svc}: health is not the engine's readiness: {entry.get('health')}")
        if exp.get("user") and src.get("user") != exp["user"]:
            wrong.append(f"{svc}: user {src.get('user')!r}, expected {exp['user']!r}")
        ref = exp.get("password_ref")
        if ref and engine in ("postgresql", "mariadb"):
            if ref.startswith("none"):
                if src.get("password"):
                    wrong.append(f"{svc}: a password reference where none is needed")
            else:
                named = (src.get("password") or {}).get("env") or posixpath.basename(
                    (src.get("password") or {}).get("file") or ""
                )
                if not named or named.lower() not in ref.lower():
                    wrong.append(f"{svc}: password {src.get('password')}, expected {ref!r}")
        if exp.get("databases") and engine == "mariadb":
            if src.get("databases") != exp["databases"]:
                wrong.append(f"{svc}: databases {src.get('databases')}, not {exp['databases']}")
        elif src.get("databases") not in (None, exp.get("databases")):
            wrong.append(f"{svc}: databases {src.get('databases')}, not {exp.get('databases')}")
    assert wrong == []


@pytest.mark.parametrize("fixture", FIXTURES)
def test_no_password_value_in_the_draft(drafts, fixture, request):
    """A drafted plan names passwords, never copies them (values from .env included)."""
    from drplan.plan.compose import load_compose

    d = drafts[fixture]
    project, _ = load_compose([d.dir / f for f in d.expect["compose"]])
    values = {
        v
        for svc in project.services.values()
        for k, v in svc.environment.items()
        if re.search(r"PASS|SECRET|_KEY|TOKEN", k) and len(v) >= 6
    }
    scalars: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if "password" in node:
                assert set(node["password"]) <= {"env", "file"}, node
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and key not in ("user", "databases"):
            scalars.append(node)  # a user may well be called like its password

    walk(d.plan)
    users = {src.get("user") for _, _, src in d.sources()}
    values -= users  # sample stacks often give a user its own name as password
    body = d.text.split("\nversion:", 1)[-1]
    assert sorted(v for v in values if v in scalars or (len(v) >= 12 and v in body)) == []


@pytest.mark.parametrize("fixture", FIXTURES)
def test_no_false_positives(drafts, fixture, request):
    pending("not_databases", fixture, request)
    d = drafts[fixture]
    wrong = []
    for svc in d.expect.get("not_databases") or {}:
        entry = d.services.get(svc, {})
        for name, src in (entry.get("data") or {}).items():
            if src.get("engine") != "files":
                wrong.append(f"{svc}: database source {name}: {src}")
        health = " ".join(str(x) for x in (entry.get("health") or {}).get("command") or [])
        if any(r in health for r in READINESS):
            wrong.append(f"{svc}: database health check {health}")
    assert wrong == []


def _protected(src: dict[str, Any], protect: list[str]) -> bool:
    kinds = {
        "dump": src.get("engine") != "files",
        "files": src.get("engine") == "files",
        "cold": src.get("method") == "cold",
        "optional": True,
    }
    return any(kinds[p] for p in protect)


def _active(d: Drafted, spec: dict[str, Any]) -> bool:
    return not spec.get("unused") and (
        not spec.get("profile") or spec["profile"] in d.expect["profiles"]
    )


@pytest.mark.parametrize("fixture", FIXTURES)
def test_one_volume_one_source(drafts, fixture, request):
    pending("volumes", fixture, request)
    d = drafts[fixture]
    wrong = []
    for vol, spec in (d.expect.get("volumes") or {}).items():
        if not _active(d, spec):
            continue
        owners = [spec["owner"]] if "owner" in spec else spec.get("owner_any_of", [])
        protect = [spec["protect"]] if "protect" in spec else spec["protect_any_of"]
        held = [(svc, src) for svc, _, src in d.sources() if src.get("volume") == vol]
        if not held and protect != ["optional"]:
            wrong.append(f"volume {vol}: no source (expected {owners[0]}, {protect})")
            continue
        if len(held) > 1:
            wrong.append(f"volume {vol}: {len(held)} sources: {[s for s, _ in held]}")
        for svc, src in held[:1]:
            if svc not in owners:
                wrong.append(f"volume {vol}: owned by {svc}, expected {owners}")
            if not _protected(src, protect):
                wrong.append(f"volume {vol}: {src} is not {protect}")
            for other in spec.get("also_mounted_by") or []:
                if other != svc and not d.follows(other, svc):
                    wrong.append(f"volume {vol}: {other} does not depend on its owner {svc}")
    assert wrong == []


@pytest.mark.parametrize("fixture", FIXTURES)
def test_bind_mounted_data_is_a_source(drafts, fixture, request):
    pending("bind_mounts", fixture, request)
    d = drafts[fixture]
    wrong = []
    for written, spec in (d.expect.get("bind_mounts") or {}).items():
        resolved = spec["resolved"]
        host = posixpath.normpath(resolved if resolved.startswith("/") else str(d.dir / resolved))
        owners = [spec["owner"]] if "owner" in spec else spec.get("owner_any_of", [])
        protect = [spec["protect"]] if "protect" in spec else spec["protect_any_of"]
        held = [(svc, src) for svc, _, src in d.sources() if src.get("bind") == host]
        if protect == ["dump"]:
            # a database's data directory on a host path: covered by its dump, not copied
            engines = [
                s.get("engine") for s in (d.services.get(owners[0], {}).get("data") or {}).values()
            ]
            if held or not any(e != "files" for e in engines):
                wrong.append(f"{written}: not covered by {owners[0]}'s dump only ({held})")
            continue
        if not held and protect != ["optional"]:
            wrong.append(f"{written} ({host}): no source")
            continue
        if len(held) > 1:
            wrong.append(f"{written}: {len(held)} sources: {[s for s, _ in held]}")
        for svc, src in held[:1]:
            if svc not in owners:
                wrong.append(f"{written}: owned by {svc}, expected {owners}")
            if not _protected(src, protect):
                wrong.append(f"{written}: {src} is not {protect}")
            for other in spec.get("also_mounted_by") or []:
                if other != svc and not d.follows(other, svc):
                    wrong.append(f"{written}: {other} does not depend on its owner {svc}")
    assert wrong == []


def _named_services(d: Drafted, text: str) -> list[str]:
    """The services an expected warning is about: the names before its first colon."""
    head = text.split(":", 1)[0]
    return [w for w in re.split(r"[\s,()]+", head) if w in d.services]


@pytest.mark.parametrize("fixture", FIXTURES)
def test_unprotected_state_is_warned_about(drafts, fixture, request):
    pending("warnings", fixture, request)
    d = drafts[fixture]
    missing = [
        f"{svc}: {text}"
        for text in d.expect.get("unprotectable_warnings") or []
        for svc in _named_services(d, text)
        if not d.warned(svc)
    ]
    assert missing == [], d.warnings


@pytest.mark.parametrize("fixture", FIXTURES)
def test_stores_without_native_dump_are_cold(drafts, fixture, request):
    d = drafts[fixture]
    wrong = []
    for svc in d.expect.get("cold") or []:
        srcs = (d.services.get(svc, {}).get("data") or {}).values()
        if any(s.get("method") != "cold" for s in srcs):
            wrong.append(f"{svc}: a live copy: {list(srcs)}")
        if not d.warned(svc, "no native dump"):
            wrong.append(f"{svc}: no warning naming the risk")
        if not any(s.get("method") == "cold" for s in srcs) and not d.warned(
            svc, "no volume declared"
        ):
            wrong.append(f"{svc}: neither a cold source nor a warning that it has none")
    assert wrong == []


@pytest.mark.parametrize("fixture", FIXTURES)
def test_jobs_and_tools_are_not_critical(drafts, fixture, request):
    pending("not_critical", fixture, request)
    d = drafts[fixture]
    critical = [s for s in d.expect.get("not_critical") or [] if d.services[s]["critical"]]
    assert critical == []


def test_amended_expectations_err_on_the_safe_side(drafts):
    """An expectation changed after the code (`amended`, see the README) says when and why,
    and only ever asks less of the draft's guesses: a service taken out of `not_critical`
    stays critical in the draft, so a recovery cannot pass without it."""
    amended = {f: d.expect["amended"] for f, d in drafts.items() if d.expect.get("amended")}
    assert amended, "no amended expectation: drop this test and the README key"
    for fixture, entries in amended.items():
        d = drafts[fixture]
        for entry in entries:
            assert set(entry) == {"key", "date", "was", "why"}, (fixture, entry)
            assert entry["key"] == "not_critical", (fixture, entry)
            dropped = set(entry["was"]) - set(d.expect["not_critical"])
            assert dropped, (fixture, "amended but nothing changed")
            assert all(d.services[s]["critical"] for s in dropped), (fixture, dropped)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_what_users_reach_comes_first(drafts, fixture, request):
    pending("user_facing", fixture, request)
    d = drafts[fixture]
    late = [
        (s, d.services[s]["tier"], d.services[s]["critical"])
        for s in d.expect.get("user_facing") or []
        if d.services[s]["tier"] not in ("P1", "P2") or not d.services[s]["critical"]
    ]
    assert late == []


# -- the rules behind the drafts, on small compose files ---------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "quay.io/prometheuscommunity/postgres-exporter:latest",
        "postgrest/postgrest:v14",
        "supabase/postgres-meta:v0.95",
        "oliver006/redis_exporter:latest",
        "redis/redisinsight:latest",
        "rediscommander/redis-commander:latest",
        "mongo-express",
        "percona/mongodb_exporter:0.44",
        "opensearchproject/opensearch-dashboards:2",
        "adminer",
        "dpage/pgadmin4:9",
        "edoburu/pgbouncer:latest",
    ],
)
def test_tools_around_a_store_are_not_stores(image):
    from drplan.actions.init import detect_engine
    from drplan.plan.compose import ComposeService

    assert detect_engine(ComposeService("s", image=image)) is None


@pytest.mark.parametrize(
    ("image", "env", "mounts", "engine"),
    [
        ("registry.example.org/db:1", {}, ["pg:/var/lib/postgresql/data"], "postgresql"),
        ("registry.example.org/db:1", {}, ["m:/var/lib/mysql"], "mariadb"),
        ("registry.example.org/db:1", {"PGDATA": "/srv/pg"}, ["pg:/srv/pg"], "postgresql"),
        ("ghcr.io/immich-app/postgres:14-vectorchord", {}, [], "postgresql"),
        ("zulip/zulip-postgresql:14", {}, [], "postgresql"),
        ("docker.io/valkey/valkey:9", {}, [], "redis"),
        ("ghcr.io/nextcloud-releases/aio-postgresql:latest", {}, [], "postgresql"),
        # a client: its environment names the server elsewhere
        ("registry.example.org/app:1", {"POSTGRES_HOST": "db", "POSTGRES_USER": "u"}, [], None),
    ],
)
def test_engines_are_recognised_by_more_than_the_image_name(image, env, mounts, engine):
    from drplan.actions.init import detect_engine
    from drplan.plan.compose import ComposeService, Mount

    mts = [Mount("volume", m.split(":")[0], m.split(":")[1]) for m in mounts]
    got = detect_engine(ComposeService("s", image=image, environment=env, mounts=mts))
    assert (got[0] if got else None) == engine


@pytest.mark.parametrize(
    ("command", "engine"),
    [
        (["redis-server", "--appendonly", "yes"], "redis"),
        ("sh -c 'exec /usr/local/bin/valkey-server /etc/valkey.conf'", "redis"),
        (["redis-cli", "-h", "cache", "monitor"], None),
    ],
)
def test_a_server_is_recognised_by_its_command(command, engine):
    from drplan.actions.init import detect_engine
    from drplan.plan.compose import ComposeService

    got = detect_engine(ComposeService("s", image="registry.example.org/kv:1", command=command))
    assert (got[0] if got else None) == engine


@pytest.mark.parametrize(
    "image",
    [
        "clickhouse/clickhouse-server:24",
        "confluentinc/cp-kafka:7.6",
        "couchdb:3",
        "influxdb:1.8",
        "docker.io/mongodb/mongodb-community-server:8.2-ubi8",
        "rabbitmq:4.2",
        "minio/minio:latest",
        "neo4j:5",
        "quay.io/coreos/etcd:v3.5.5",
        "prom/prometheus:latest",
        "cassandra:4",
    ],
)
def test_stores_without_a_native_dump_are_copied_cold(image):
    from drplan.actions.init import detect_engine
    from drplan.plan.compose import ComposeService

    got = detect_engine(ComposeService("s", image=image))
    assert got is not None and got[1] == "cold" and "no native dump" in got[2]


SMALL = """\
services:
  db:
    image: ${DB_IMAGE:-mariadb:11}
    environment:
      MARIADB_USER: shop
      MARIADB_DATABASE: shop
      MARIADB_PASSWORD: ${SHOP_DB_PASSWORD}
      MARIADB_ROOT_PASSWORD: ${ROOT_PW}
    volumes: [dbdata:/var/lib/mysql]
  app:
    image: registry.example.org/shop:1
    ports: ["8080:80"]
    depends_on: [db]
    volumes: [uploads:/srv/uploads]
  worker:
    image: registry.example.org/shop:1
    command: worker
    depends_on: [db]
    volumes: [uploads:/srv/uploads]
  cron:
    image: registry.example.org/shop:1
    command: cron
    volumes: [uploads:/srv/uploads]
  migrate:
    image: registry.example.org/shop:1
    command: migrate
    restart: "no"
    depends_on: [db]
  proxy:
    image: traefik:3
    depends_on: [app]
  cache:
    image: redis:7
  adminer:
    image: adminer
    ports: ["8081:8080"]
volumes:
  dbdata:
  uploads:
"""


def test_a_small_stack_drafts_safely(tmp_path):
    (tmp_path / "compose.yml").write_text(SMALL)
    (tmp_path / ".env").write_text("SHOP_DB_PASSWORD=not-in-the-plan-42\n")
    out = tmp_path / "drplan.yml"
    result = CliRunner().invoke(
        app, ["init", "--from", str(tmp_path / "compose.yml"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "not-in-the-plan-42" not in text
    services = yaml.safe_load(text)["services"]
    db = services["db"]["data"]["db"]
    assert (db["engine"], db["user"], db["password"], db["databases"]) == (
        "mariadb",
        "shop",
        {"env": "SHOP_DB_PASSWORD"},
        ["shop"],
    )
    assert "mariadb-admin" in " ".join(services["db"]["health"]["command"])
    # one volume, one source: the app's; worker and cron depend on it
    holders = [n for n, s in services.items() if "uploads" in (s.get("data") or {})]
    assert holders == ["app"]
    assert "app" in services["worker"]["depends_on"]
    assert "app" in services["cron"]["depends_on"]
    # what users reach first; jobs and tools not critical
    assert services["proxy"]["tier"] == "P1" and services["app"]["tier"] == "P1"
    assert not services["migrate"]["critical"] and not services["adminer"]["critical"]
    assert not services["cron"]["critical"]
    assert "adminer" not in [n for n, s in services.items() if s.get("data")]
    # redis with no volume: said in the draft, not silent
    assert "# - cache: redis data at /data is on an anonymous volume" in text
    assert CliRunner().invoke(app, ["validate", str(out)]).exit_code == 0
