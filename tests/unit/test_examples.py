"""Every example validates; init --from its compose file drafts a valid plan whose
recovery order follows the compose dependencies."""

from __future__ import annotations

import json

import pytest
from plan_helpers import EXAMPLE_DIRS, assert_problem_lines

from drplan.cli import app
from drplan.plan.compose import load_compose
from drplan.plan.validate import validate_file
from drplan.schedule import build_schedule


def test_examples_exist():
    names = {p.name for p in EXAMPLE_DIRS}
    assert {"strasbourg-moodle", "dockerwarts"} <= names
    for d in EXAMPLE_DIRS:
        assert (d / "compose.yml").is_file()


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_example_validates(example, runner):
    result = runner.invoke(app, ["validate", str(example / "plan.yml")])
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.strip().split("\n")
    assert lines[-1].startswith("OK: ")
    assert_problem_lines("\n".join(lines[:-1]))  # warnings, if any, are located too


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_example_plans(example, runner, tmp_path):
    plan = str(example / "plan.yml")
    result = runner.invoke(app, ["plan", plan, "--json"])
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["estimated_rto_s"] > 0
    assert data["objective_met"] is True
    svg = tmp_path / "g.svg"
    result = runner.invoke(app, ["plan", plan, "--svg", str(svg)])
    assert result.exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    text = runner.invoke(app, ["plan", plan])
    assert "Critical path" in text.stdout


def _start_waves(schedule):
    wave = schedule.wave_of()
    return {s.service: wave[s.id] for s in schedule.steps.values() if s.kind == "start"}


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_init_from_example_compose(example, runner, tmp_path):
    out = tmp_path / "drafted.yml"
    compose = example / "compose.yml"
    result = runner.invoke(app, ["init", "--from", str(compose), "-o", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "guessed:" in result.stderr
    checked = validate_file(out)
    assert checked.ok, [p.format() for p in checked.problems]
    # the recovery order follows the compose dependencies
    project, _ = load_compose([compose])
    schedule = build_schedule(checked.plan)
    starts = _start_waves(schedule)
    assert set(starts) == set(project.services)
    wave = schedule.wave_of()
    for name, svc in project.services.items():
        for dep in svc.depends_on:
            assert starts[name] > wave[f"health:{dep}"] > starts[dep]
        assert checked.plan.services[name].depends_on == svc.depends_on
    # services without dependencies start as soon as their own volumes are restored
    for name, svc in project.services.items():
        if not svc.depends_on:
            after = schedule.steps[f"start:{name}"].after
            assert starts[name] == 1 + max(wave[a] for a in after)
            assert all(
                a.startswith("restore:") or a in ("load-images", "create-volumes") for a in after
            )
    # and validating the example plan gives the same order as the drafted one
    hand = build_schedule(validate_file(example / "plan.yml").plan)
    hand_starts = _start_waves(hand)
    for name in project.services:
        for dep in project.services[name].depends_on:
            assert hand_starts[name] > hand_starts[dep]


TESTBED_STACKS = sorted(
    p
    for p in (EXAMPLE_DIRS[0].parent.parent / "testbed" / "stacks").iterdir()
    if (p / "drplan.yml").exists()
)


@pytest.mark.parametrize("stack", TESTBED_STACKS, ids=lambda p: p.name)
def test_testbed_stack_plans_validate_and_init_matches_their_order(stack, runner, tmp_path):
    result = runner.invoke(app, ["validate", str(stack / "drplan.yml")])
    assert result.exit_code == 0, result.stdout + result.stderr
    out = tmp_path / "drafted.yml"
    result = runner.invoke(app, ["init", "--from", str(stack / "compose.yml"), "-o", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    checked = validate_file(out)
    assert checked.ok, [p.format() for p in checked.problems]
    project, _ = load_compose([stack / "compose.yml"])
    schedule = build_schedule(checked.plan)
    starts = _start_waves(schedule)
    wave = schedule.wave_of()
    assert set(starts) == set(project.services)
    for name, svc in project.services.items():
        for dep in svc.depends_on:
            assert starts[name] > wave[f"health:{dep}"] > starts[dep]
