"""`drplan status` readiness from runs and drill records (no repository, no engine)."""

from __future__ import annotations

from datetime import timedelta

from drplan.actions import drill as dr
from drplan.actions.status import readiness
from drplan.store import manifest as mf
from tests.unit.drill_helpers import campus_plan, drill_record, fake_run


def test_no_drill_yet_needs_a_drill(tmp_path):
    pc = campus_plan(tmp_path)
    run = fake_run()
    now = mf.parse_time(run.rpo_point) + timedelta(minutes=30)
    s = readiness(pc, [run], [], now)
    assert s["needs_drill"] and "no drill" in s["needs_drill_reason"]
    by = {x["service"]: x for x in s["services"]}
    assert by["db"]["age_s"] == 1800 and by["db"]["verdict"] == "met"


def test_age_beyond_the_rpo_is_graded(tmp_path):
    pc = campus_plan(tmp_path)  # rpo 1h
    run = fake_run()
    now = mf.parse_time(run.rpo_point) + timedelta(hours=3)
    by = {x["service"]: x for x in readiness(pc, [run], [], now)["services"]}
    assert by["web"]["verdict"] == "severely exceeded"


def test_a_plan_change_after_the_drill_calls_for_one(tmp_path):
    pc = campus_plan(tmp_path)
    digest = dr.plan_digest(pc)
    run = fake_run()
    now = mf.parse_time(run.rpo_point)
    ok = drill_record("d1", plan_sha=digest["plan_sha256"], compose_sha=digest["compose_sha256"])
    failed_later = drill_record("d2", passed=False, plan_sha="x", failure="boom")
    s = readiness(pc, [run], [ok, failed_later], now)
    assert not s["needs_drill"] and s["last_passed_drill"] == "d1"
    assert s["last_drill"]["drill_id"] == "d2" and not s["last_drill"]["passed"]
    (tmp_path / "compose.yml").write_text((tmp_path / "compose.yml").read_text() + "\n# x\n")
    s = readiness(pc, [run], [ok], now)
    assert s["needs_drill"] and s["plan_changed_since_drill"]
