"""Shared by the drill, runbook and status unit tests: a campus plan and a fake run."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from drplan.actions.context import load_plan
from drplan.store import manifest as mf
from drplan.store.records import DrillRecord

ROOT = Path(__file__).resolve().parents[2]
CAMPUS = ROOT / "testbed" / "stacks" / "campus"

CELL = {
    "people": {
        "ada": {"name": "Ada Lovelace", "phone": "+33 3 00 00 00 01", "email": "ada@x.example"},
        "bob": {"name": "Bob Martin", "email": "bob@x.example"},
    },
    "roles": {
        "direction": ["bob"],
        "technical_coordination": ["ada"],
        "communication": ["bob"],
        "user_support": [],
    },
    "bridge": "room B12",
}


def campus_plan(tmp: Path, edit=None):
    shutil.copy(CAMPUS / "compose.yml", tmp / "compose.yml")
    plan = yaml.safe_load((CAMPUS / "drplan.yml").read_text())
    plan["repositories"]["local"]["url"] = str(tmp / "repo")
    plan["crisis_cell"] = CELL
    if edit:
        edit(plan)
    (tmp / "drplan.yml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return load_plan(tmp / "drplan.yml")


def fake_run(name: str = "campus") -> mf.Manifest:
    def src(service, source, engine, snap, path, fp, volume=None):
        return mf.SourceRecord(
            service=service,
            source=source,
            engine=engine,
            method="dump",
            consistency="x",
            volume=volume,
            snapshot=snap,
            path=path,
            bytes=1000,
            seconds=1.0,
            started_at="2026-01-01T00:00:00Z",
            finished_at="2026-01-01T00:00:01Z",
            fingerprint=fp,
        )

    return mf.Manifest(
        plan=name,
        stack=name,
        run_id="20260101T000000Z-abcd",
        host="h",
        drplan_version="0",
        started_at="2026-01-01T00:00:00Z",
        rpo_point="2026-01-01T00:00:00Z",
        complete=True,
        sources=[
            src(
                "db",
                "pg",
                "postgresql",
                "5a0db001",
                "/db.pg.sql",
                {
                    "databases": ["campus"],
                    "tables": {"campus.public.items": {"rows": 42, "checksum": "0"}},
                },
            ),
            src(
                "redis",
                "cache",
                "redis",
                "5a0ed150",
                "/redis.cache.rdb",
                {"keys": 7, "sha256": "x", "file": "dump.rdb", "owner": "100:101"},
            ),
            src(
                "web",
                "files",
                "files",
                "5a0eb001",
                "/volume",
                {"files": 3, "bytes": 30, "tree": "ab" * 32},
                volume="files",
            ),
            src(
                "exam",
                "files",
                "files",
                "5a0e8a01",
                "/volume",
                {"files": 0, "bytes": 0, "tree": "cd" * 32},
                volume="exam-files",
            ),
        ],
        images={
            "drplan-tb/app:latest": "sha256:" + "1" * 64,
            "drplan-tb/postgres:15": "sha256:" + "2" * 64,
        },
        images_snapshot="5a0e1a9e",
        timings={"backup:db/pg": 3.0},
    )


def drill_record(
    drill_id="d1",
    passed=True,
    rto=60.0,
    plan_sha="p",
    compose_sha="c",
    started="2026-01-02T00:00:00Z",
    steps=None,
    failure=None,
):
    return DrillRecord.model_validate(
        {
            "kind": "drill",
            "drill_id": drill_id,
            "plan": "campus",
            "stack": f"drill-{drill_id}-c",
            "site": "recovery",
            "profile": "full",
            "run_id": "r1",
            "started_at": started,
            "finished_at": started,
            "seconds": 100.0,
            "passed": passed,
            "failure": failure,
            "interrupted_by": None,
            "plan_sha256": plan_sha,
            "compose_sha256": compose_sha,
            "rto": {
                "measured_s": rto,
                "estimated_s": 100.0,
                "objective_s": 900.0,
                "verdict": "met" if rto and rto <= 900 else "exceeded",
            },
            "rpo": {
                "recovery_point": started,
                "measured_s": 30,
                "objective_s": 3600.0,
                "verdict": "met",
            },
            "verified": passed,
            "verification": {},
            "steps": steps or {"start:db": {"status": "ok", "seconds": 2.5, "error": None}},
            "critical_path": {},
            "teardown": {"clean": True, "removed": ["stack x"], "kept": [], "errors": []},
        }
    )
