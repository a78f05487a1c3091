"""`drplan init --from compose.yml --from-stack NAME --site URL`: the running stack says
what the compose file cannot (issue 14).

The database runs an image whose name says nothing (`drplan-tb/ledger:1`, built here from
the testbed's PostgreSQL image, no registry), keeps its data at a path no rule knows
(/srv/db), and its compose entry sets no variable at all: the image holds them (its
POSTGRES_USER, and a password baked in, as some packaged images do). From the compose
file alone, init cannot tell it is a database; from the running stack it sees the
`postgres` process, PG_VERSION in /srv/db and the variables' names, and drafts a
PostgreSQL dump as the image's user with a reference to the password, never its value.
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

from testbed import sites, stacks
from testbed.plans import drplan, ok

pytestmark = pytest.mark.integration

IMAGE = "drplan-tb/ledger:1"
DB_USER = "ledger"
SECRET = "ledger-password-baked-in-the-image"

DOCKERFILE = f"""FROM drplan-tb/postgres:15
ENV PGDATA=/srv/db POSTGRES_USER={DB_USER} POSTGRES_DB={DB_USER} POSTGRES_PASSWORD={SECRET}
""".encode()

COMPOSE = """\
version: "3.8"
services:
  ledger:
    image: drplan-tb/ledger:1
    volumes:
      - books:/srv/db
    deploy:
      endpoint_mode: dnsrr
      placement:
        constraints: [node.role == manager]
  app:
    image: drplan-tb/app:latest
    command: ["sleep", "1000000"]
    depends_on: [ledger]
    healthcheck:
      disable: true
    deploy:
      endpoint_mode: dnsrr
      placement:
        constraints: [node.role == manager]
  reports:
    image: drplan-tb/app:latest
    command: ["sleep", "1000000"]
    depends_on: [ledger]
    deploy:
      replicas: 0
      endpoint_mode: dnsrr
volumes:
  books:
"""


@pytest.fixture(scope="module")
def ledger_image(testbed):
    """The database image nothing names, on the primary only."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(DOCKERFILE)
        tar.addfile(info, io.BytesIO(DOCKERFILE))
    context.seek(0)
    sites.client(testbed["primary"]).images.build(
        fileobj=context, custom_context=True, tag=IMAGE, rm=True, pull=False
    )
    yield IMAGE
    with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
        sites.client(testbed["primary"]).images.remove(IMAGE, force=True)


def _wait_ready(client, stack: str, timeout: float = 180) -> None:
    """Until the database answers over TCP as its user (its first start done)."""
    deadline = time.monotonic() + timeout
    last = "no container yet"
    while time.monotonic() < deadline:
        with contextlib.suppress(LookupError, docker.errors.NotFound):
            c = stacks.container(client, stack, "ledger")
            code, last = stacks.exec_text(
                c, ["pg_isready", "-q", "-h", "localhost", "-U", DB_USER], timeout=30
            )
            if code == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the ledger database of {stack} is not ready: {last}")


@pytest.fixture(scope="module")
def running(testbed, tmp_path_factory, ledger_image):
    """The stack deployed on the primary, its database up; (folder, stack name)."""
    d = tmp_path_factory.mktemp("ledger")
    (d / "compose.yml").write_text(COMPOSE)
    name = f"ledger{os.urandom(3).hex()}"
    subprocess.run(
        ["docker", "stack", "deploy", "--resolve-image", "never", "-c", "compose.yml", name],
        check=True,
        capture_output=True,
        cwd=d,
        env={**os.environ, "DOCKER_HOST": testbed["primary"]},
    )
    try:
        _wait_ready(sites.client(testbed["primary"]), name)
        yield d, name
    finally:
        stacks.remove(testbed["primary"], name)


def test_the_compose_file_alone_cannot_tell(running):
    """Without the running stack, the database is not recognised (the premise)."""
    d, _ = running
    proc = ok("init", "--from", "compose.yml", cwd=d)
    draft = yaml.safe_load(proc.stdout)
    engines = [
        src.get("engine") for src in (draft["services"]["ledger"].get("data") or {}).values()
    ]
    assert "postgresql" not in engines, engines


def test_the_running_stack_shows_a_postgresql_database(testbed, running):
    d, name = running
    proc = ok(
        "init", "--from", "compose.yml", "--from-stack", name, "--site", testbed["primary"],
        "-o", "draft.yml", cwd=d,
    )  # fmt: skip
    text = (d / "draft.yml").read_text()
    assert SECRET not in text and SECRET not in proc.stderr and SECRET not in proc.stdout
    draft = yaml.safe_load(text)
    assert draft["stack"]["name"] == name
    assert draft["sites"]["primary"]["docker_host"] == testbed["primary"]
    [(_, db)] = draft["services"]["ledger"]["data"].items()
    assert (db["engine"], db.get("method", "dump"), db["volume"]) == ("postgresql", "dump", "books")
    assert db["user"] == DB_USER
    assert db["password"] == {"env": "POSTGRES_PASSWORD"}
    # the evidence, for the reviewer
    assert "ledger: engine postgresql: seen live: process postgres, PG_VERSION in /srv/db" in (
        proc.stderr
    ), proc.stderr
    assert "POSTGRES_USER seen live" in proc.stderr
    # a service with no running container is said so, and drafted from the compose file
    assert "reports: not running" in proc.stderr and "compose file alone" in proc.stderr
    assert "reports: not running" in text  # kept in the draft's warnings
    # the app runs no server: drafted as before, depending on its database
    assert "ledger" in draft["services"]["app"]["depends_on"]
    assert ok("validate", "draft.yml", cwd=d).returncode == 0


def test_an_unknown_stack_is_a_clear_error(testbed, running):
    d, _ = running
    proc = drplan(
        "init", "--from", "compose.yml", "--from-stack", "nosuchstack0",
        "--site", testbed["primary"], cwd=d,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "nosuchstack0" in proc.stderr and testbed["primary"] in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreachable_engine_is_a_clear_error(running, tmp_path):
    d, name = running
    url = f"unix://{tmp_path}/no-engine.sock"
    proc = drplan("init", "--from", "compose.yml", "--from-stack", name, "--site", url, cwd=d)
    assert proc.returncode == 2, proc.stderr
    assert url in proc.stderr and "unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr
