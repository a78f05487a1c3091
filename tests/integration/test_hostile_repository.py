"""A repository an attacker wrote to: forged manifests make drplan refuse, never act.

A compromised primary keeps append-only access to its repositories, so it can add a
"run" whose manifest carries options, shell metacharacters, newlines or path traversal
in any field. Every command that reads runs (`runs`, `recover --repo`, `recover
--dry-run`, `check`, `copy`, `runbook`) must refuse it with an error naming the field,
before anything taken from it runs or is written (threat model, class 1).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed import plans

pytestmark = pytest.mark.integration

VALID_ID = "ab" * 32


def base_manifest(plan: str, run_id: str) -> dict:
    return {
        "format": 1,
        "plan": plan,
        "stack": plan,
        "run_id": run_id,
        "host": "primary",
        "drplan_version": "0.1.0",
        "started_at": "2026-11-30T10:00:00Z",
        "finished_at": "2026-11-30T10:01:00Z",
        "rpo_point": "2026-11-30T10:00:00Z",
        "complete": True,
        "errors": [],
        "sources": [
            {
                "service": "db",
                "source": "pg",
                "engine": "postgresql",
                "method": "dump",
                "consistency": "x",
                "volume": None,
                "snapshot": VALID_ID,
                "path": "/db.pg.sql",
                "bytes": 1,
                "seconds": 1.0,
                "started_at": "2026-11-30T10:00:00Z",
                "finished_at": "2026-11-30T10:00:01Z",
                "fingerprint": {"databases": ["campus"], "tables": {}},
                "stats": {},
            }
        ],
        "images": {"drplan/campus-web:1": "sha256:" + "cd" * 32},
        "images_snapshot": VALID_ID,
        "images_bytes": 0,
        "config_snapshot": VALID_ID,
        "plan_file": "drplan.yml",
        "compose_files": ["compose.yml"],
        "downtime_s": {},
        "timings": {},
    }


def _set(doc: dict, field: str, value) -> None:
    target = doc
    *parts, last = field.split(".")
    for p in parts:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


CANARY = "/tmp/drplan-hostile-canary"
# (field, forged value, what the error must name)
FORGED = [
    ("config_snapshot", f"--password-command=touch {CANARY}", "config_snapshot"),
    ("images_snapshot", "--help", "images_snapshot"),
    ("sources.0.snapshot", f"$(touch {CANARY})", "sources.0.snapshot"),
    ("sources.0.path", "/../../etc/shadow", "sources.0.path"),
    ("sources.0.volume", "uploads\n; touch x", "sources.0.volume"),
    ("sources.0.service", "db`touch x`", "sources.0.service"),
    (
        "sources.0.fingerprint",
        {"databases": ["campus\n\\! touch x"], "tables": {}},
        "sources.0.fingerprint",
    ),
    ("sources.0.stats", {"restore_split": ["../../etc"]}, "sources.0.stats"),
    ("compose_files", ["../../../etc/cron.d/x"], "compose_files.0"),
    ("plan_file", "/etc/passwd", "plan_file"),
    ("images", {f"$(touch {CANARY})": "sha256:" + "cd" * 32}, "images"),
    ("run_id", "20261130T100000Z-abcd; touch x", "run_id"),
    ("sources.0.engine", "postgresql --x", "sources.0.engine"),
]


def _forge(tp: plans.TestPlan, field: str, value) -> str:
    run_id = "20261130T100000Z-beef"
    doc = base_manifest(tp.name, run_id)
    _set(doc, field, value)
    tags = ",".join(["drplan", f"plan:{tp.name}", f"run:{run_id}", "kind:manifest", "complete:yes"])
    subprocess.run(
        [
            "restic",
            "backup",
            "--stdin",
            "--stdin-filename",
            "manifest.json",
            "--tag",
            tags,
            "--host",
            "attacker",
            "--json",
        ],
        input=json.dumps(doc).encode(),
        check=True,
        capture_output=True,
        env=plans.restic_env(tp.repo),
    )
    return run_id


@pytest.fixture
def hostile(tmp_path, unique_name, testbed):
    def make(field: str, value) -> plans.TestPlan:
        d = tmp_path / field.replace(".", "_")
        tp = plans.adapt(
            "campus",
            d,
            name=unique_name("hostile"),
            copies={"offsite": {"url": str(d / "offsite")}},
        )
        plans.ok("repo", "init", str(tp.path))
        _forge(tp, field, value)
        return tp

    Path(CANARY).unlink(missing_ok=True)
    yield make
    assert not Path(CANARY).exists(), "a forged manifest ran a command"


def _refused(proc: subprocess.CompletedProcess, field: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    assert f"field {field}" in out, out


def test_every_command_refuses_a_forged_option(hostile, tmp_path, testbed):
    field, value, named = FORGED[0]
    tp = hostile(field, value)
    before = {p for p in tmp_path.rglob("*")}
    for args in (
        ["runs", tp.path],
        [
            "recover",
            "--repo",
            tp.repo,
            "--plan",
            tp.name,
            "--password-env",
            plans.PASSWORD_ENV,
            "--site",
            "recovery",
            "--dry-run",
        ],
        ["recover", tp.path, "--dry-run"],
        [
            "recover",
            "--repo",
            tp.repo,
            "--plan",
            tp.name,
            "--password-env",
            plans.PASSWORD_ENV,
            "--site",
            "recovery",
            "--docker-host",
            testbed["recovery"],
            "--prefix",
            "hostile",
        ],
        ["check", tp.path],
        ["copy", tp.path],
        ["runbook", tp.path, "-o", tmp_path / "runbook-out"],
    ):
        proc = plans.drplan(*args)
        _refused(proc, named)
    written = {p for p in tmp_path.rglob("*")} - before
    # restic's own cache and lock files only; no runbook, no extracted plan
    assert not any("runbook-out" in str(p) for p in written), written
    assert not any(p.name in ("compose.yml", "drplan.yml") for p in written), written


def test_a_forged_path_is_refused_by_runs_and_dry_run(hostile):
    """Every field's shape is checked by the same parser (tests/unit/test_manifest_shapes);
    here a second field goes through the commands end to end."""
    field, value, named = FORGED[3]
    tp = hostile(field, value)
    for args in (["runs", tp.path], ["recover", tp.path, "--dry-run"]):
        _refused(plans.drplan(*args), named)
