"""`drplan serve` watched by a real Prometheus (Debian's package), issue 16's acceptance:
a daemon with a 1-minute schedule backs up, copies and checks the campus stack for
several cycles; Prometheus scrapes it (with the daemon's token) and a query returns each
service's RPO age, the one `drplan status` implies; the rules `drplan prometheus-rules`
writes pass `promtool check rules`; once backups are paused (an authenticated action, an
unauthenticated one being refused), `DrplanRpoBreached` fires for the plan past its RPO.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import plans
from testbed.plans import PASSWORD, PASSWORD_ENV
from testbed.serve import free_port, wait_for

pytestmark = pytest.mark.integration

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
TOKEN_ENV = "DRPLAN_PROM_TEST_TOKEN"
RPO_S = 120.0
SERVICES = {"db", "redis", "web", "exam"}  # every campus service has data


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Process:
    """A long-running child with its log, stopped by SIGTERM (SIGKILL past a deadline)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "w") as fh:
            self.proc = subprocess.Popen(
                args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.proc.args[0]} exited {self.proc.returncode}:\n{self.text()}"
            )
        return True

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def http(url: str, *, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    """Status and body (errors included: a 403 is an answer, not an exception)."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def campus(testbed, tmp_path_factory):
    """The campus stack, backed up every minute with an off-site copy, checked every
    minute, RPO 2 minutes."""
    name = f"serveprom{os.urandom(3).hex()}"
    base = tmp_path_factory.mktemp("serve-prom")

    def edit(p: dict) -> None:
        p["backup"] = {
            "schedule": {"every": "1m"},
            "retention": {"keep_last": 3},
            "check": {"every": "1m", "read_data_subset": "10%"},
        }
        p["objectives"] = {"rpo": "2m", "rto": "30m"}

    tp = plans.adapt(
        "campus",
        base / "campus",
        name=name,
        copies={"offsite": {"url": str(base / "offsite")}},
        edit=edit,
    )
    plans.deploy(testbed["primary"], tp)
    try:
        plans.ok("repo", "init", tp.path)
        yield tp
    finally:
        plans.remove(testbed["primary"], tp)


@pytest.fixture
def daemon(campus, tmp_path):
    """A real `drplan serve` with an access token; yields (process, port, token)."""
    token = secrets.token_hex(16)
    port = free_port()
    state = tmp_path / "state"
    args = [plans.DRPLAN, "serve", str(campus.path), "--state-dir", str(state)]
    args += ["--listen", f"127.0.0.1:{port}", "--refresh", "5", "--grace", "5"]
    args += ["--token-env", TOKEN_ENV]
    env = {**os.environ, PASSWORD_ENV: PASSWORD, TOKEN_ENV: token}
    proc = Process(args, tmp_path / "serve.log", env)
    try:
        wait_for(
            "the daemon's /healthz",
            lambda: (
                proc.alive() and _ok(lambda: http(f"http://127.0.0.1:{port}/healthz")[0] == 200)
            ),
            60,
            0.3,
        )
        yield proc, port, token, state
    finally:
        code = proc.stop()
        log = proc.text()
        assert token not in log and PASSWORD not in log
        assert code == 0, log


@pytest.fixture
def rules_file(campus, tmp_path) -> Path:
    """The rules as a user writes them, with a short `for:` so the test does not wait."""
    path = tmp_path / "prom" / "drplan-rules.yml"
    plans.ok("prometheus-rules", campus.path, "-o", path, "--for", "3s")
    return path


@pytest.fixture
def prometheus(daemon, rules_file, tmp_path):
    """A real Prometheus scraping the daemon every second with its bearer token."""
    _, port, token, _ = daemon
    conf = rules_file.parent
    (conf / "token").write_text(token + "\n")
    os.chmod(conf / "token", 0o600)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {
                "job_name": "drplan",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                "authorization": {"type": "Bearer", "credentials_file": str(conf / "token")},
            }
        ],
    }
    (conf / "prometheus.yml").write_text(yaml.safe_dump(config))
    web = free_port()
    args = [
        PROMETHEUS,
        f"--config.file={conf / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{web}",
    ]
    proc = Process(args, tmp_path / "prometheus.log")
    url = f"http://127.0.0.1:{web}"
    try:
        wait_for(
            "Prometheus ready",
            lambda: proc.alive() and _ok(lambda: http(f"{url}/-/ready")[0] == 200),
            60,
            0.3,
        )
        yield url, proc
    finally:
        proc.stop(30)


def _ok(fn: Callable[[], bool]) -> bool:
    with contextlib.suppress(OSError):
        return fn()
    return False


def api(url: str, path: str, **params: str) -> Any:
    status, body = http(f"{url}{path}?{urllib.parse.urlencode(params)}")
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "success", (status, doc)
    return doc["data"]


def ok_runs(state: Path, plan: str) -> dict[str, int]:
    db = sqlite3.connect(f"file:{state / 'serve.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT job, COUNT(*) FROM runs WHERE plan = ? AND status = 'ok' GROUP BY job",
            (plan,),
        ).fetchall()
    except sqlite3.OperationalError:  # the daemon has not created its tables yet
        return {}
    finally:
        db.close()
    return dict(rows)


def firing(url: str, alert: str, plan: str) -> list[dict]:
    alerts = api(url, "/api/v1/alerts")["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == alert
        and a["labels"].get("plan") == plan
        and a["state"] == "firing"
    ]


def test_promtool_accepts_the_rules_written_for_the_plan(rules_file):
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    names = {
        r["alert"] for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]
    }
    assert {"DrplanRpoBreached", "DrplanRpoAtRisk", "DrplanRunFailed"} <= names


@pytest.mark.skipif(not shutil.which(PROMETHEUS), reason="Debian's prometheus is not installed")
def test_prometheus_scrapes_the_rpo_age_and_the_breach_alert_fires(campus, daemon, prometheus):
    proc, port, token, state = daemon
    t_start = time.monotonic()
    url, prom = prometheus
    base = f"http://127.0.0.1:{port}"

    # reading needs the token once one is set; acting without it is refused
    assert http(f"{base}/metrics")[0] == 401
    status, body = http(f"{base}/plans/{campus.name}/pause", method="POST")
    assert status == 403, (status, body)
    assert http(f"{base}/metrics", token=token)[0] == 200

    # several cycles: two backups, an off-site copy and a check, all ok
    counts = wait_for(
        "2 backups, a copy and a check done by the daemon",
        lambda: (
            proc.alive()
            and (c := ok_runs(state, campus.name)).get("backup", 0) >= 2
            and c.get("copy", 0) >= 1
            and c.get("check", 0) >= 1
            and c
        ),
        300,
        2,
    )
    t_cycles = time.monotonic()
    # Prometheus scrapes the daemon with the token: the target is up
    targets = api(url, "/api/v1/targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets

    # the RPO age Prometheus holds is the one the repository implies
    status_doc = plans.ok_json("status", campus.path)
    points = {s["service"]: epoch(s["recovery_point"]) for s in status_doc["services"]}
    result = wait_for(
        "drplan_rpo_age_seconds in Prometheus",
        lambda: api(url, "/api/v1/query", query=f'drplan_rpo_age_seconds{{plan="{campus.name}"}}')[
            "result"
        ],
        60,
    )
    ages = {r["metric"]["service"]: (float(r["value"][0]), float(r["value"][1])) for r in result}
    assert set(ages) == SERVICES, result
    for service, (at, age) in ages.items():
        # a newer backup may have completed between `status` and the query: never older
        expected = at - points[service]
        assert 0 <= age <= expected + 3, (service, age, expected, counts)
        assert age < RPO_S, (service, age)
    objective = api(
        url, "/api/v1/query", query=f'drplan_rpo_objective_seconds{{plan="{campus.name}"}}'
    )
    assert {float(r["value"][1]) for r in objective["result"]} == {RPO_S}
    assert not firing(url, "DrplanRpoBreached", campus.name)  # backups keep it fresh

    # backups stop (an authenticated action): the RPO is breached and the alert fires
    status, body = http(f"{base}/plans/{campus.name}/pause", method="POST", token=token)
    assert status == 303, (status, body)
    paused_at = time.time()
    alerts = wait_for(
        "DrplanRpoBreached firing for the plan",
        lambda: prom.alive() and proc.alive() and firing(url, "DrplanRpoBreached", campus.name),
        RPO_S + 150,
        2,
    )
    print(
        f"runs {counts}; cycles after {t_cycles - t_start:.0f}s; alert"
        f" {time.time() - paused_at:.0f}s after the pause"
    )
    assert {a["labels"]["service"] for a in alerts} == SERVICES
    assert all(a["labels"]["severity"] == "critical" for a in alerts)
    assert campus.name in alerts[0]["annotations"]["summary"]
    # it fired because the newest backup grew older than the RPO, not before
    newest = max(
        epoch(s["recovery_point"]) for s in plans.ok_json("status", campus.path)["services"]
    )
    assert time.time() - newest > RPO_S
    assert time.time() - paused_at < RPO_S + 150
    runs_after = ok_runs(state, campus.name).get("backup", 0)
    assert runs_after <= counts["backup"] + 1  # at most the backup running at the pause
