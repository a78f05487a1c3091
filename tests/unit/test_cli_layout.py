"""The command line as a user meets it: commands listed in workflow order, one way to
report an invalid plan, JSON for people and for programs, and `recover --dry-run`
printing the schedule its recovery built."""

from __future__ import annotations

import json
import re
import sys
from types import SimpleNamespace

import pytest
from plan_helpers import PLAN, PROBLEM_LINE, write_stack

from drplan.cli import app
from drplan.cli.app import ORDER

WORKFLOW = [
    "validate",
    "init",
    "plan",
    "schema",
    "repo",
    "backup",
    "runs",
    "copy",
    "prune",
    "check",
    "recover",
    "drill",
    "drills",
    "runbook",
    "status",
    "preflight",
    "serve",
    "prometheus-rules",
    "crisis",
    "risks",
    "demo",
    "version",
]


def test_help_lists_the_commands_in_the_order_a_user_meets_them(runner):
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    listed = re.findall(r"^│ (\w[\w-]*)\s{2,}", result.stdout, re.M)
    assert listed == WORKFLOW
    assert ORDER == WORKFLOW


BAD = PLAN.replace("[db, redis, exam]", "[exam]").replace("tier: P1\n", "tier: P7\n", 1)


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "{plan}"],
        ["risks", "{plan}"],
        ["status", "{plan}"],
        ["preflight", "{plan}"],
        ["runs", "{plan}"],
        ["crisis", "log", "{plan}", "text", "--role", "x", "--author", "y"],
    ],
)
def test_an_invalid_plan_is_reported_the_same_way_by_every_command(tmp_path, runner, args):
    """Each problem as FILE:LINE:COL: path: message on stderr, then one error line, exit 2,
    nothing on stdout, no traceback."""
    plan = write_stack(tmp_path, BAD)
    result = runner.invoke(app, [a.replace("{plan}", str(plan)) for a in args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.strip().split("\n")
    assert lines[-1] == f"error: {plan}: the plan does not validate (3 problems)"
    assert len(lines) == 4 and all(PROBLEM_LINE.match(line) for line in lines[:-1])
    text = "\n".join(lines)
    assert "leaves out" in text and "services.db.tier" in text


def test_validate_lists_problems_on_stdout_and_counts_them_on_stderr(tmp_path, runner):
    plan = write_stack(tmp_path, BAD)
    result = runner.invoke(app, ["validate", str(plan)])
    assert result.exit_code == 2
    assert all(PROBLEM_LINE.match(line) for line in result.stdout.strip().split("\n"))
    assert result.stderr.strip() == f"3 problems in {plan}"


def test_json_is_compact_for_a_program_and_indented_for_a_person(tmp_path, runner, monkeypatch):
    plan = write_stack(tmp_path)
    piped = runner.invoke(app, ["plan", "--json", str(plan)])
    assert piped.exit_code == 0
    assert piped.stdout.count("\n") == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    from drplan.cli import output

    assert output.dumps({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert output.dumps({"a": [1]}) == '{"a": [1]}'
    assert json.loads(piped.stdout)["steps"]


class _Repo:
    """A repository that holds one run and no drill (read-only calls only)."""

    name, url, where = "main", "/srv/restic/campus", "repository main"

    def open(self) -> None:
        pass

    def snapshots(self, tags=None) -> list:
        return []


def test_a_dry_run_prints_the_schedule_its_recovery_built(tmp_path, runner, monkeypatch):
    """The recovery estimates restores from the run's own backup timings; `drplan plan`
    has no run to read. The dry run must show the recovery's schedule, not `plan`'s."""
    from drplan.actions import recovery_source
    from drplan.actions.context import load_plan
    from drplan.store import manifest as mf

    plan = write_stack(tmp_path)
    run = SimpleNamespace(
        run_id="20250101T000000Z-abcd",
        timings={"backup:db/pg": 4321.0},
        rpo_point="2025-01-01T00:00:00Z",
    )
    monkeypatch.setattr(mf, "find_run", lambda *a, **k: run)
    monkeypatch.setattr(recovery_source, "open_source", lambda *a, **k: (load_plan(plan), _Repo()))
    result = runner.invoke(app, ["recover", str(plan), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    head, doc = result.stdout.split("\n", 1)
    assert head.startswith(f"dry run: would recover run {run.run_id} of campus")
    steps = {s["id"]: s for s in json.loads(doc)["steps"]}
    assert steps["restore:db/pg"]["estimate_s"] == 4321.0
    shown = runner.invoke(app, ["plan", "--json", str(plan)])
    planned = {s["id"]: s for s in json.loads(shown.stdout)["steps"]}
    assert planned["restore:db/pg"]["estimate_s"] != 4321.0
