"""Helpers for crisis-journal tests: a plan with a crisis cell, a fake clock, the CLI."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drplan.cli import main
from tests.unit.plan_helpers import PLAN, write_stack

CELL = """\
risks:
  - {id: fire, event: Datacenter fire, probability: low, impact: very_high, triggers_plan: true}
  - {id: link, event: Network link lost, probability: medium, impact: high, triggers_plan: false}
crisis_cell:
  people:
    boss: {name: Head of IT, email: boss@example.org}
    tech: {name: Tech lead}
    comms: {name: Comms officer, email: comms@example.org}
    desk: {name: Help desk}
  roles:
    direction: [boss]
    technical_coordination: [tech]
    communication: [comms]
    user_support: [desk]
  activation:
{activation}
"""

ACTIVATION = """\
    - {kind: service_down, services: [exam], duration: 15m}
    - {kind: tickets, threshold: 10, window: 1h, count_command: "sh -c 'echo 12'"}
    - {kind: command, command: "false", description: external probe}
"""


def crisis_context(plan_path: str | Path, journal: str | None = None, **kw: object):
    """The crisis cell of a plan file, loaded as `drplan crisis` loads it."""
    from drplan.actions.context import load_plan
    from drplan.crisis import cell

    return cell.open_context(load_plan(plan_path).plan, plan_path, journal, **kw)


def crisis_plan(tmp_path: Path, activation: str = ACTIVATION) -> Path:
    return write_stack(tmp_path, PLAN + CELL.replace("{activation}", activation.rstrip("\n")))


class Clock:
    """A settable UTC clock for deterministic timestamps."""

    def __init__(self, start: str = "2024-06-03T08:00:00+00:00") -> None:
        self.now = datetime.fromisoformat(start).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``drplan ARGS`` through main() (the console script's entry point)."""
    old = sys.argv
    sys.argv = ["drplan", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def open_quietly(ctx):
    """Open a crisis as the direction, with nothing observed and no probe run."""
    from drplan.crisis import cell
    from drplan.crisis.activation import Observations

    return cell.open_crisis(
        ctx,
        role="direction",
        author="boss",
        reason="r",
        observations=Observations(down=[], run_commands=False),
    )
