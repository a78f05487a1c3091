"""The recovery schedule: step order rules, waves, critical path, estimates, outputs."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET

import pytest
from plan_helpers import PLAN, write_stack

from drplan.cli import app
from drplan.errors import InputError
from drplan.plan.validate import validate_file
from drplan.schedule import Estimator, Schedule, Step, StepKind, build_schedule, build_steps
from drplan.schedule.estimate import DEFAULT_FIXED_S, DEFAULT_THROUGHPUT_BPS
from drplan.schedule.gantt import render_gantt


@pytest.fixture
def plan(tmp_path):
    result = validate_file(write_stack(tmp_path))
    assert result.ok, [p.format() for p in result.problems]
    return result.plan


def test_steps_and_their_order(plan):
    steps = {s.id: s for s in build_steps(plan)}
    assert steps["prepare-site"].after == frozenset()
    assert steps["load-images"].after == {"prepare-site"}
    assert steps["create-volumes"].after == {"prepare-site"}
    # a dump is replayed into the running server: after the database is healthy
    assert steps["restore:db/pg"].after == {"health:db"}
    assert steps["restore:db/pg"].source == "pg"
    assert steps["start:db"].after == {"load-images", "create-volumes"}
    # files are written into the volume before their service starts
    assert steps["restore:web/files"].after == {"load-images", "create-volumes"}
    # a dependency is ready when healthy and its dumps are back
    ready = {"health:db", "restore:db/pg", "health:redis"}
    assert steps["start:web"].after == ready | {"restore:web/files"}
    assert steps["start:exam"].after == ready | {"load-images", "create-volumes"}
    assert steps["validate:db"].after == {"health:db", "restore:db/pg"}
    assert steps["health:web"].after == {"start:web"}
    assert steps["validate:web"].after == {"health:web"}
    kinds = {s.kind for s in steps.values()}
    assert kinds == set(StepKind) - {StepKind.BEFORE_RESTORE, StepKind.AFTER_RESTORE}  # no hooks
    assert len(steps) == 3 + 3 + 4 * 3
    for s in steps.values():
        assert s.timeout_s >= s.estimate_s > 0


def test_waves_and_critical_path(plan):
    sched = build_schedule(plan)
    assert sched.waves[0] == ["prepare-site"]
    assert sched.waves[1] == ["create-volumes", "load-images"]
    wave = sched.wave_of()
    assert wave["start:web"] > wave["health:db"]
    assert wave["validate:web"] == wave["health:web"] + 1
    path = sched.critical_path
    assert path[0] == "prepare-site" and path[-1].startswith("validate:")
    assert sched.estimated_rto_s == pytest.approx(sum(sched.steps[s].estimate_s for s in path))
    for a, b in itertools.pairwise(path):
        assert a in sched.steps[b].after
    assert sched.objective_rto_s == 3600
    assert sched.objective_met() is True


def test_profile_closure(plan):
    sched = build_schedule(plan, "exams")
    assert sched.services == ["db", "redis", "exam"]
    assert "start:web" not in sched.steps
    with pytest.raises(InputError):
        build_schedule(plan, "nope")


def test_estimates_history_then_size_then_default(plan):
    sched = build_schedule(plan)
    pg = sched.steps["restore:db/pg"]
    assert pg.estimate_basis == "size"
    expected = DEFAULT_FIXED_S["restore"] + 2**30 / DEFAULT_THROUGHPUT_BPS[("postgresql", "dump")]
    assert pg.estimate_s == pytest.approx(expected)
    assert sched.steps["restore:redis/rdb"].estimate_basis == "default"
    assert sched.steps["start:db"].estimate_s == DEFAULT_FIXED_S["start"]
    history = {"restore:db/pg": 600.0, "start:db": 2.0}
    sched = build_schedule(plan, estimator=Estimator(history))
    assert sched.steps["restore:db/pg"].estimate_s == 600.0
    assert sched.steps["restore:db/pg"].estimate_basis == "history"
    assert sched.steps["start:db"].estimate_s == 2.0
    assert "restore:db/pg" in sched.critical_path
    assert sched.objective_met() is True


def test_objective_missed(tmp_path):
    plan = validate_file(write_stack(tmp_path, PLAN.replace("rto: 1h", "rto: 2m"))).plan
    assert build_schedule(plan).objective_met() is False


def test_from_steps_rejects_cycles_and_unknown():
    a = Step("a", StepKind.START, after=frozenset({"b"}), estimate_s=1)
    b = Step("b", StepKind.START, after=frozenset({"a"}), estimate_s=1)
    with pytest.raises(InputError, match="cycle"):
        Schedule.from_steps([a, b])
    with pytest.raises(InputError, match="unknown"):
        Schedule.from_steps([a])
    empty = Schedule.from_steps([])
    assert empty.estimated_rto_s == 0 and empty.critical_path == []


def test_json_output(tmp_path, runner):
    path = write_stack(tmp_path)
    result = runner.invoke(app, ["plan", str(path), "--json", "--profile", "exams"])
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    for key in ("steps", "waves", "critical_path", "estimated_rto_s", "objective_rto_s"):
        assert key in data
    for step in data["steps"]:
        assert {"id", "service", "kind", "after", "estimate_s", "timeout_s", "critical"} <= set(
            step
        )
    assert data["objective_rto_s"] == 3600


def test_text_output_and_invalid_plan(tmp_path, runner):
    path = write_stack(tmp_path)
    result = runner.invoke(app, ["plan", str(path), "--profile", "exams"])
    assert result.exit_code == 0
    assert "Estimated RTO" in result.stdout and "Critical path" in result.stdout
    bad = write_stack(tmp_path, PLAN.replace("[db, redis, exam]", "[exam]"))
    result = runner.invoke(app, ["plan", str(bad)])
    assert result.exit_code == 2
    # an invalid plan is an error: its problems go to stderr, one located line each
    assert "leaves out" in result.stderr and "does not validate" in result.stderr


def test_svg_gantt(plan, tmp_path, runner):
    sched = build_schedule(plan)
    svg = render_gantt(sched, "Recovery <campus> & co")
    root = ET.fromstring(svg.split("?>", 1)[1])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    for attr in ("width", "height", "viewBox"):
        assert root.get(attr)
    ns = {"s": "http://www.w3.org/2000/svg"}
    rows = root.findall("s:g[@id='rows']/s:g", ns)
    assert len(rows) == len(sched.steps)
    critical = [g for g in rows if "critical-path" in g.get("class", "")]
    assert len(critical) == len(sched.critical_path)
    assert root.find("s:g[@id='legend']", ns) is not None
    assert root.find("s:g[@id='axis']", ns) is not None
    assert root.find("s:g[@id='objective']", ns) is not None
    out = tmp_path / "plan.svg"
    result = runner.invoke(app, ["plan", str(write_stack(tmp_path)), "--svg", str(out)])
    assert result.exit_code == 0
    ET.parse(out)
