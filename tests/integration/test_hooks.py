"""The plan's hooks on the real testbed, through the real CLI (one campus stack, two plan
files over the same stack and repository):

- a good run: web's before_backup hook puts the application in maintenance (a row in
  its database, a flag file in its uploads) and its after_backup hook takes it out: the
  database dump and the uploads' snapshot hold the flag, production no longer does;
- a failing run: exam's before_backup hook fails (exam's data and its dependencies' are
  not backed up, the message names the hook) and exam's after_backup hook still runs;
  redis's before_backup hook outlives its timeout and is killed, and reported; a host
  hook gets none of drplan's secrets;
- `drplan recover` runs a host-side before_restore hook and a container-side
  after_restore hook on the recovery site, after the data is back.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml

from testbed import generator, plans, sites, stacks
from testbed.plans import drplan as run
from testbed.plans import ok_json

pytestmark = pytest.mark.integration

# python3 and psycopg2 are in the app image; DB_URL is its own database's
_DB = (
    "import os, psycopg2\n"
    "c = psycopg2.connect(os.environ['DB_URL'])\n"  # a libpq URI
    "cur = c.cursor()\n"
    "cur.execute('CREATE TABLE IF NOT EXISTS maintenance (run text)')\n"
)
MAINTENANCE_ON = (
    _DB + "cur.execute('INSERT INTO maintenance VALUES (%s)', (os.environ['DRPLAN_RUN'],))\n"
    "c.commit()\n"
    "open('/srv/files/MAINTENANCE', 'w').write(os.environ['DRPLAN_RUN'])\n"
)
MAINTENANCE_OFF = (
    _DB + "cur.execute('DELETE FROM maintenance')\n"
    "c.commit()\n"
    "if os.path.exists('/srv/files/MAINTENANCE'): os.remove('/srv/files/MAINTENANCE')\n"
)
MAINTENANCE = {
    "before_backup": [{"run": ["python3", "-c", MAINTENANCE_ON], "timeout": "1m"}],
    "after_backup": [{"run": ["python3", "-c", MAINTENANCE_OFF], "timeout": "1m"}],
}


def _write_plan(tp: plans.TestPlan, name: str, hooks: dict[str, dict]) -> str:
    plan = yaml.safe_load(tp.path.read_text())
    for service, spec in hooks.items():
        plan["services"][service]["hooks"] = spec
    path = tp.dir / name
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def campus(testbed, tmp_path_factory):
    url = testbed["primary"]
    tp = plans.adapt("campus", tmp_path_factory.mktemp("hooks"), name=f"hk{uuid.uuid4().hex[:6]}")
    plans.deploy(url, tp)
    try:
        generator.populate(sites.client(url), "campus", tp.name, generator.Size.small())
        plans.ok("repo", "init", tp.path)
        yield tp
    finally:
        plans.remove(url, tp)


def _in(testbed, tp, service: str, site: str = "primary", stack: str | None = None):
    return stacks.container(sites.client(testbed[site]), stack or tp.name, service)


def _sh(container, script: str) -> tuple[int, str]:
    return stacks.exec_text(container, ["sh", "-c", script])


def _maintenance_rows(testbed, tp) -> str:
    code, out = stacks.exec_text(
        _in(testbed, tp, "db"),
        [
            "psql",
            "-X",
            "-At",
            "-U",
            "campus",
            "-d",
            "campus",
            "-c",
            "SELECT count(*) FROM maintenance",
        ],
    )
    assert code == 0, out
    return out.strip()


@pytest.fixture(scope="module")
def good_run(testbed, campus):
    """A complete backup with web's maintenance hooks, its plan also holding restore
    hooks (for the recovery)."""
    plan = _write_plan(
        campus,
        "good.yml",
        {
            "web": MAINTENANCE,
            "db": {
                "before_restore": [
                    {
                        "run": 'printf "%s %s\\n" "$DRPLAN_STACK" "$DRPLAN_SERVICE" > restored.txt',
                        "where": "host",
                    }
                ]
            },
            "exam": {
                "after_restore": [
                    {
                        "run": "ls /srv/files | wc -l > /tmp/after-restore; "
                        'echo "$DRPLAN_HOOK" >> /tmp/after-restore'
                    }
                ]
            },
        },
    )
    report = ok_json("backup", plan)
    return plan, report


def test_maintenance_mode_is_on_during_the_dump_and_off_after(testbed, campus, good_run):
    _, report = good_run
    assert report["complete"] is True, report["errors"]
    db = next(s for s in report["sources"] if s["service"] == "db")
    tables = {
        t: (v["rows"] if isinstance(v, dict) else v) for t, v in db["fingerprint"]["tables"].items()
    }
    flagged = [t for t in tables if t.endswith("maintenance")]
    # the dump holds the flag row: maintenance was on while it ran
    assert flagged and tables[flagged[0]] == 1, tables
    web = next(s for s in report["sources"] if s["service"] == "web")
    listing = subprocess.run(
        ["restic", "ls", "--no-lock", web["snapshot"]],
        capture_output=True,
        text=True,
        env=plans.restic_env(campus.repo),
        check=True,
    ).stdout
    assert "/MAINTENANCE" in listing  # the uploads' snapshot too
    # ... and it is off again in production
    assert _maintenance_rows(testbed, campus) == "0"
    code, _ = _sh(_in(testbed, campus, "web"), "test -e /srv/files/MAINTENANCE")
    assert code == 1
    hooks = {(h["service"], h["phase"]): h for h in report["hooks"]}
    assert hooks[("web", "before_backup")]["status"] == "ok"
    assert hooks[("web", "after_backup")]["status"] == "ok"
    assert set(report["timings"]) >= {"before-backup:web", "after-backup:web"}


def test_failing_and_timed_out_hooks_fail_their_backups_and_after_hooks_run(testbed, campus):
    plan = _write_plan(
        campus,
        "failing.yml",
        {
            "web": MAINTENANCE,
            "exam": {
                "before_backup": [
                    {"run": "echo 'maintenance refused by exam' >&2; exit 3"},
                    {"run": "touch /srv/files/never"},
                ],
                "after_backup": [{"run": 'echo "$DRPLAN_HOOK" > /srv/files/after-ran'}],
            },
            "redis": {
                "before_backup": [{"run": "sleep 300", "timeout": "2s"}],
                "after_backup": [{"run": "touch /tmp/redis-after-ran"}],
            },
            "db": {"after_backup": [{"run": "env > hook-env.txt", "where": "host"}]},
        },
    )
    proc = run("backup", plan, "--json")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["complete"] is False
    # exam's hooks wrap exam's files and its dependencies' data (db, redis): none taken
    assert [(s["service"], s["source"]) for s in report["sources"]] == [("web", "files")]
    errors = "\n".join(report["errors"])
    assert "services.exam.hooks.before_backup[0]" in errors
    assert "exited with status 3: maintenance refused by exam" in errors
    assert "backup:exam/files: a step it needs did not succeed: before-backup:exam" in errors
    assert "services.redis.hooks.before_backup[0]" in errors
    assert "did not finish within its timeout (2s): killed" in errors
    assert "services.exam.hooks.before_backup[0]" in proc.stderr  # the user sees it
    hooks = {(h["service"], h["phase"], h["index"]): h for h in report["hooks"]}
    assert hooks[("exam", "before_backup", 0)]["status"] == "failed"
    assert hooks[("exam", "before_backup", 0)]["exit_code"] == 3
    assert ("exam", "before_backup", 1) not in hooks  # the next one did not run
    assert hooks[("redis", "before_backup", 0)]["status"] == "timeout"
    for key in (
        ("exam", "after_backup", 0),
        ("redis", "after_backup", 0),
        ("web", "after_backup", 0),
        ("db", "after_backup", 0),
    ):
        assert hooks[key]["status"] == "ok", hooks[key]
    # the after hooks left the services as they were
    code, out = _sh(_in(testbed, campus, "exam"), "cat /srv/files/after-ran; ls /srv/files")
    assert code == 0 and out.startswith("after_backup") and "never" not in out, out
    assert _sh(_in(testbed, campus, "redis"), "test -e /tmp/redis-after-ran")[0] == 0
    assert _maintenance_rows(testbed, campus) == "0"
    # the timed-out hook was killed, not left running in the container
    code, out = _sh(
        _in(testbed, campus, "redis"),
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done",
    )
    assert code == 0 and "sleep 300" not in out, out
    # a host hook gets none of drplan's secrets
    env = (campus.dir / "hook-env.txt").read_text()
    assert plans.PASSWORD not in env and "DRPLAN_SERVICE=db" in env.splitlines()


def test_recover_runs_the_restore_hooks_after_the_data_is_back(testbed, campus, good_run, tmp_path):
    plan, backup = good_run
    stack = f"hr{campus.name}"
    try:
        report = ok_json(
            "recover",
            plan,
            "--run",
            backup["run_id"],
            "--profile",
            "exams-only",
            "--prefix",
            "hr",
            "--report-dir",
            str(tmp_path),
        )
        assert report["ok"], report
        steps = {s["id"]: s for s in report["steps"]}
        for sid in ("before-restore:db", "after-restore:exam"):
            assert steps[sid]["status"] == "ok", steps[sid]
        assert steps["before-restore:db"]["finished_at"] <= steps["restore:db/pg"]["started_at"]
        assert (
            steps["after-restore:exam"]["started_at"] >= steps["restore:exam/files"]["finished_at"]
        )
        assert steps["after-restore:exam"]["finished_at"] <= steps["validate:exam"]["started_at"]
        hooks = {(h["service"], h["phase"]): h for h in report["hooks"]}
        assert hooks[("db", "before_restore")]["where"] == "host"
        assert hooks[("exam", "after_restore")]["status"] == "ok"
        # their effects: on this host, in the plan's folder; in exam's recovered container
        assert (campus.dir / "restored.txt").read_text() == f"{stack} db\n"
        code, out = _sh(_in(testbed, campus, "exam", "recovery", stack), "cat /tmp/after-restore")
        count, phase = out.split()
        assert code == 0 and int(count) > 0 and phase == "after_restore", out
        markdown = (next(tmp_path.rglob("report.md"))).read_text()
        assert "## Hooks" in markdown and "after_restore[0]" in markdown
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, campus.name)
