"""`type: sql` checks on password-protected MySQL-family servers of both image shapes.

The testbed's shop stack runs the MariaDB image (`orders`: its client is `mariadb`, the
app user has a password) and the MySQL-shaped one (`catalog`: only `mysql*` clients, root
with a password and no socket authentication, as the official mysql image). The plan
reads both passwords from the environment; drplan hands them to the client in MYSQL_PWD
and picks `mariadb` or `mysql` inside the container. The oracle reads the containers
through the docker CLI, independently of drplan.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from drplan.actions import service_checks
from drplan.actions.context import load_plan
from drplan.errors import OperationError
from drplan.platform.docker import DockerEngine
from testbed import plans, sites, stacks
from testbed.plans import ok, ok_json

pytestmark = pytest.mark.integration

PASSWORDS = {
    "SHOP_ORDERS_PASSWORD": "shop-orders-password",
    "SHOP_CATALOG_PASSWORD": "shop-catalog-root-password",
}
ROWS = {"orders": ("shop", "orders", 7), "catalog": ("root", "catalog", 5)}


def docker_exec(url: str, container: str, *argv: str, env: dict[str, str] | None = None):
    flags = [f"--env={k}" for k in env or {}]
    return subprocess.run(
        ["docker", "exec", *flags, container, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_HOST": url, **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="module")
def shop(testbed, tmp_path_factory):
    """The shop stack on the primary, each database holding a table of known rows."""
    url = testbed["primary"]
    tp = plans.adapt("shop", tmp_path_factory.mktemp("shop"), name=f"shop{os.urandom(3).hex()}")
    plans.deploy(url, tp)
    client = sites.client(url)
    for service, (user, db, n) in ROWS.items():
        c = stacks.container(client, tp.name, service)
        values = ",".join(f"({i})" for i in range(n))
        sql = f"CREATE TABLE items (id INT PRIMARY KEY); INSERT INTO items VALUES {values};"
        pw = PASSWORDS[f"SHOP_{service.upper()}_PASSWORD"]
        done = docker_exec(
            url, c.id, "mysql", f"--user={user}", db, "-e", sql, env={"MYSQL_PWD": pw}
        )
        assert done.returncode == 0, done.stderr
    yield tp
    plans.remove(url, tp)


def check_of(tp, service: str, retries: int = 1):
    pc = load_plan(tp.path)
    check = pc.plan.services[service].checks[0]
    check.retries = retries
    return pc, check


def run_check(testbed, tp, service: str) -> None:
    pc, check = check_of(tp, service)
    engine = DockerEngine("primary", testbed["primary"])
    service_checks.run(
        engine, tp.name, service, check, pc.plan, time.monotonic() + 120, resolve=pc.resolve
    )


def test_the_two_shapes_are_what_they_claim(testbed, shop):
    """The oracle: catalog has no `mariadb` client and refuses root without a password;
    orders has `mariadb`."""
    url = testbed["primary"]
    client = sites.client(url)
    catalog = stacks.container(client, shop.name, "catalog").id
    orders = stacks.container(client, shop.name, "orders").id
    assert docker_exec(url, catalog, "sh", "-c", "command -v mariadb").returncode != 0
    assert docker_exec(url, catalog, "sh", "-c", "command -v mysql").returncode == 0
    assert docker_exec(url, orders, "sh", "-c", "command -v mariadb").returncode == 0
    denied = docker_exec(url, catalog, "mysql", "-u", "root", "-e", "SELECT 1")
    assert denied.returncode != 0 and "Access denied" in denied.stderr


@pytest.mark.parametrize("service", ["orders", "catalog"])
def test_a_password_protected_sql_check_passes(testbed, shop, service, monkeypatch):
    for k, v in PASSWORDS.items():
        monkeypatch.setenv(k, v)
    run_check(testbed, shop, service)


@pytest.mark.parametrize("service", ["orders", "catalog"])
def test_a_wrong_password_fails_clearly(testbed, shop, service, monkeypatch):
    wrong = "not-the-password-4f2a"
    for k, v in PASSWORDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(f"SHOP_{service.upper()}_PASSWORD", wrong)
    with pytest.raises(OperationError) as failed:
        run_check(testbed, shop, service)
    text = str(failed.value)
    assert text.startswith(f"service {service}: check {service} answers failed after 1 attempt")
    assert "Access denied" in text and "(using password: YES)" in text
    assert wrong not in text


def test_an_unset_password_is_named(testbed, shop, monkeypatch):
    monkeypatch.delenv("SHOP_CATALOG_PASSWORD", raising=False)
    with pytest.raises(Exception, match="SHOP_CATALOG_PASSWORD is not set") as failed:
        run_check(testbed, shop, "catalog")
    assert "services.catalog.data.db.password" in str(failed.value)


def test_backup_and_recovery_run_the_checks_with_the_passwords(testbed, shop, tmp_path):
    """The real commands: dumps (mariadb-dump, and mysqldump in the MySQL shape) and
    replays with the plan's passwords, then the recovery's SQL checks, which pass."""
    ok("repo", "init", str(shop.path))
    backup = ok_json("backup", str(shop.path), env=PASSWORDS)
    assert backup["complete"] is True
    tables = {s["service"]: s["fingerprint"]["tables"] for s in backup["sources"]}
    assert tables["catalog"]["catalog.items"]["rows"] == 5
    assert tables["orders"]["orders.items"]["rows"] == 7
    stack = f"rc{shop.name}"
    try:
        report = ok_json(
            "recover",
            str(shop.path),
            "--prefix",
            "rc",
            "--report-dir",
            str(tmp_path),
            env=PASSWORDS,
        )
        assert report["ok"] and report["verified"], report
        steps = {s["id"]: s for s in report["steps"]}
        assert steps["validate:catalog"]["status"] == "ok", steps["validate:catalog"]
        assert steps["validate:orders"]["status"] == "ok", steps["validate:orders"]
        url = testbed["recovery"]
        client = sites.client(url)
        for service, (user, db, n) in ROWS.items():
            c = stacks.container(client, stack, service).id
            pw = PASSWORDS[f"SHOP_{service.upper()}_PASSWORD"]
            got = docker_exec(
                url,
                c,
                "mysql",
                f"--user={user}",
                "-N",
                "-B",
                db,
                "-e",
                "SELECT COUNT(*) FROM items",
                env={"MYSQL_PWD": pw},
            )
            assert got.stdout.strip() == str(n), got.stderr
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, shop.name)
