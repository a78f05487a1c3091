"""A stack shaped like the ones organisations run, drafted by `drplan init`, backed up and
recovered on the other site with no edit but sites and repository (issue 14).

Its database runs an image whose name says nothing of PostgreSQL (`drplan-tb/wikidb:1`,
built here from the testbed's PostgreSQL image, no registry), whose only role is
POSTGRES_USER (`wiki`: there is no `postgres` role, as with the official image), with no
health check at all, and whose first start on an empty volume runs slow setup scripts on
a temporary server reachable by its socket only, then restarts: a recovery that replays
the dump once the task runs, or once the socket answers, fails. The app and a worker share
one volume; the app keeps uploads in a bind-mounted directory beside the compose file,
which the recovery site maps to a directory of its own. The independent verifier
(testbed/verifier.py) compares what the primary held with what the recovery site holds.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
import time

import docker.errors
import pytest
import yaml

from testbed import sites, stacks, verifier
from testbed.plans import PASSWORD_ENV, ok, ok_json

pytestmark = pytest.mark.integration

IMAGE = "drplan-tb/wikidb:1"
DB_USER = "wiki"
SECRET_ENV = "WIKI_DB_PASSWORD"
SECRET = "wiki-db-password-for-tests"

ENTRYPOINT = b"""#!/bin/sh
# A packaged wiki's database: the only role is POSTGRES_USER, and the first start on an
# empty data directory runs slow setup scripts on a server reachable by its socket only.
set -eu
: "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" "${POSTGRES_DB:=$POSTGRES_USER}"
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    as_pg initdb -D "$PGDATA" -U "$POSTGRES_USER" --auth-local=trust \\
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    as_pg psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d postgres \\
        -v pw="$POSTGRES_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
ALTER ROLE CURRENT_USER PASSWORD :'pw';
CREATE DATABASE :"db";
SQL
    sleep 8  # the application's own setup scripts
    as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
"""

DOCKERFILE = b"""FROM drplan-tb/postgres:15
ENV PGDATA=/var/lib/postgresql/data
HEALTHCHECK NONE
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
"""

COMPOSE = """\
version: "3.8"
services:
  db:
    image: drplan-tb/wikidb:1
    environment:
      POSTGRES_USER: wiki
      POSTGRES_DB: wiki
      POSTGRES_PASSWORD: ${WIKI_DB_PASSWORD}
    volumes:
      - db-data:/var/lib/postgresql/data
    deploy:
      endpoint_mode: dnsrr
  app:
    image: drplan-tb/app:latest
    command: ["sleep", "1000000"]
    environment:
      DB_URL: postgresql://wiki@db:5432/wiki
    volumes:
      - shared:/srv/shared
      - ./uploads:/srv/uploads
    depends_on: [db]
    healthcheck:
      disable: true
    deploy:
      endpoint_mode: dnsrr
  worker:
    image: drplan-tb/app:latest
    command: ["sleep", "1000000"]
    environment:
      DB_URL: postgresql://wiki@db:5432/wiki
    volumes:
      - shared:/srv/shared
    depends_on: [db]
    healthcheck:
      disable: true
    deploy:
      endpoint_mode: dnsrr
volumes:
  db-data:
  shared:
"""

SEED_SQL = (
    "CREATE TABLE page (id serial PRIMARY KEY, title text NOT NULL, body text);"
    "CREATE TABLE revision (id serial PRIMARY KEY, page int REFERENCES page, at timestamptz);"
    "INSERT INTO page (title, body) SELECT 'Page ' || i, repeat(md5(i::text), 20) "
    "FROM generate_series(1, 3000) i;"
    "INSERT INTO revision (page, at) SELECT 1 + i % 3000, now() - i * interval '1 min' "
    "FROM generate_series(1, 9000) i;"
)
FILES_SH = (
    'mkdir -p "$1/a/b" && for i in $(seq 1 40); do '
    'head -c $((i * 997)) /dev/urandom > "$1/a/f$i"; done && echo x > "$1/a/b/deep.txt"'
)


def _exec(container, cmd: list[str]) -> str:
    code, text = stacks.exec_text(container, cmd)
    assert code == 0, f"{cmd[:3]} exited {code}: {text[-2000:]}"
    return text


def _wait_sql(client, stack: str, timeout: float = 180):
    """The db container, once it answers SQL over TCP as `wiki` (its setup done)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(LookupError, docker.errors.NotFound):
            c = stacks.container(client, stack, "db")
            code, last = stacks.exec_text(
                c, ["pg_isready", "-q", "-h", "localhost", "-U", DB_USER], timeout=30
            )
            if code == 0:
                return c
        time.sleep(1)
    raise TimeoutError(f"database of {stack} not ready: {last}")


def _env() -> dict[str, str]:
    return {SECRET_ENV: SECRET}


@pytest.fixture(scope="module")
def wikidb_image(testbed):
    """The unknown-by-name PostgreSQL image, on the primary only: the recovery loads it
    from the backup run."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", DOCKERFILE), ("entrypoint.sh", ENTRYPOINT)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    sites.client(testbed["primary"]).images.build(
        fileobj=context, custom_context=True, tag=IMAGE, rm=True, pull=False
    )
    yield IMAGE
    for url in (testbed["primary"], testbed["recovery"]):
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            sites.client(url).images.remove(IMAGE, force=True)


@pytest.fixture(scope="module")
def deployed(testbed, tmp_path_factory, wikidb_image):
    """The stack running on the primary with data in its database, its shared volume and
    its upload directory; what the verifier saw there."""
    d = tmp_path_factory.mktemp("wiki")
    name = f"wiki{os.urandom(3).hex()}"
    (d / "compose.yml").write_text(COMPOSE)
    (d / ".env").write_text(f"{SECRET_ENV}={SECRET}\n")
    (d / "uploads").mkdir()
    subprocess.run(
        ["docker", "stack", "deploy", "--resolve-image", "never", "-c", "compose.yml", name],
        check=True,
        capture_output=True,
        cwd=d,
        env={**os.environ, "DOCKER_HOST": testbed["primary"], **_env()},
    )
    client = sites.client(testbed["primary"])
    try:
        stacks.wait_healthy(client, name)
        db = _wait_sql(client, name)
        _exec(db, ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", DB_USER, "-d", "wiki",
                   "-c", SEED_SQL])  # fmt: skip
        app = stacks.container(client, name, "app")
        _exec(app, ["sh", "-c", FILES_SH, "sh", "/srv/shared"])
        _exec(app, ["sh", "-c", FILES_SH, "sh", "/srv/uploads"])
        expected = {
            "db": verifier.postgresql(db, user=DB_USER),
            "shared": verifier.files(client, f"{name}_shared"),
            "uploads": verifier.files(client, str(d / "uploads")),
        }
        assert expected["db"]["wiki.public.page"]["rows"] == 3000
        assert expected["uploads"]["files"] == 41
        yield d, name, expected
    finally:
        stacks.remove(testbed["primary"], name)


@pytest.fixture(scope="module")
def drafted(deployed):
    """`drplan init`'s draft as it is, and the plan: the draft with only its sites and
    repository changed (the recovery site maps the upload directory elsewhere)."""
    d, name, _ = deployed
    ok("init", "--from", "compose.yml", "--stack", name, "-o", "draft.yml", cwd=d)
    draft = yaml.safe_load((d / "draft.yml").read_text())
    plan = yaml.safe_load((d / "draft.yml").read_text())
    testbed_sites = sites.up()
    plan["sites"] = {
        "primary": {"role": "primary", "docker_host": testbed_sites["primary"]},
        "recovery": {
            "role": "recovery",
            "docker_host": testbed_sites["recovery"],
            "paths": {str(d / "uploads"): str(d / "dr-uploads")},
        },
    }
    plan["repositories"] = {
        "main": {"url": str(d / "repo"), "role": "primary", "password": {"env": PASSWORD_ENV}}
    }
    (d / "plan.yml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return d / "plan.yml", draft


@pytest.fixture(scope="module")
def backed(drafted):
    plan, _ = drafted
    ok("repo", "init", str(plan))
    report = ok_json("backup", str(plan), env=_env())
    assert report["complete"] is True, report
    return plan, report


def test_draft_protects_every_kind_of_data(drafted, deployed):
    """The draft names the engine (not by the image's name), the user, a password
    reference and no password, one source per volume, the upload directory."""
    d, _, _ = deployed
    _, draft = drafted
    text = (d / "draft.yml").read_text()
    assert SECRET not in text
    services = draft["services"]
    [(_, db)] = services["db"]["data"].items()
    assert (db["engine"], db.get("method", "dump"), db["volume"]) == (
        "postgresql", "dump", "db-data",
    )  # fmt: skip
    assert db["user"] == DB_USER
    assert db["password"] == {"env": SECRET_ENV}
    sources = [
        (svc, src)
        for svc, spec in services.items()
        for src in (spec.get("data") or {}).values()
        if src.get("volume") == "shared"
    ]
    assert len(sources) == 1, sources  # one volume, one source
    owner = sources[0][0]
    other = ({"app", "worker"} - {owner}).pop()
    assert owner in services[other].get("depends_on", [])
    binds = [src for src in (services["app"].get("data") or {}).values() if src.get("bind")]
    assert [b["bind"] for b in binds] == [str(d / "uploads")]
    assert ok("validate", str(d / "draft.yml")).returncode == 0


def test_recovered_on_the_other_site_equal(testbed, backed, deployed):
    """Recovered with the draft's plan, without waiting on any plan health check of the
    database: the engine's own readiness gates the replay, the upload directory goes to
    the directory the recovery site maps it to, and the verifier finds the same data."""
    plan, _ = backed
    d, name, expected = deployed
    client = sites.client(testbed["recovery"])
    try:
        report = ok_json("recover", str(plan), "--report-dir", str(d / "reports"), env=_env())
        assert report["ok"], report
        db = stacks.container(client, name, "db")
        got = {
            "db": verifier.postgresql(db, user=DB_USER),
            "shared": verifier.files(client, f"{name}_shared"),
            "uploads": verifier.files(client, str(d / "dr-uploads")),
        }
        assert verifier.differences(expected, got) == []
        app = client.services.get(f"{name}_app")
        mounts = app.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
        assert {m["Source"] for m in mounts if m["Type"] == "bind"} == {str(d / "dr-uploads")}
    finally:
        stacks.remove_recovered(testbed["recovery"], name)


def test_recovery_without_any_health_check_waits_for_the_database(testbed, backed, deployed):
    """The wiki case: the plan says nothing of the database's health (no plan health
    check, no image health check), its first start runs setup on a socket-only server and
    restarts: the replay still waits for the server itself."""
    plan, _ = backed
    d, name, expected = deployed
    bare = yaml.safe_load(plan.read_text())
    bare["services"]["db"].pop("health", None)
    bare["sites"]["recovery"]["paths"] = {str(d / "uploads"): str(d / "nh-uploads")}
    bare_path = d / "plan-no-health.yml"
    bare_path.write_text(yaml.safe_dump(bare, sort_keys=False))
    stack = f"nh{name}"
    client = sites.client(testbed["recovery"])
    try:
        report = ok_json(
            "recover", str(bare_path), "--prefix", "nh", "--report-dir", str(d / "nh"), env=_env()
        )
        assert report["ok"], report
        got = verifier.postgresql(stacks.container(client, stack, "db"), user=DB_USER)
        assert verifier.differences({"db": expected["db"]}, {"db": got}) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, name)


def test_a_drill_restores_the_upload_directory_into_its_own_copy(testbed, backed, deployed):
    """A drill of the plan whose recovery site does not map the upload directory (same
    host path as production: one host runs both engines here) restores it into a volume
    of its own and leaves production's directory as it was."""
    plan, _ = backed
    d, _, expected = deployed
    unmapped = yaml.safe_load(plan.read_text())
    unmapped["sites"]["recovery"].pop("paths", None)
    path = d / "plan-unmapped.yml"
    path.write_text(yaml.safe_dump(unmapped, sort_keys=False))
    rec = ok_json("drill", str(path), "--report-dir", str(d / "drill"), env=_env())
    assert rec["passed"] and rec["verified"], rec["failure"]
    assert rec["teardown"]["clean"], rec["teardown"]
    primary = sites.client(testbed["primary"])
    assert verifier.files(primary, str(d / "uploads")) == expected["uploads"]
