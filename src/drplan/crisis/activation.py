"""Evaluate the plan's activation criteria from observations and probe commands.

Each criterion comes out ``met``, ``not_met`` or ``unknown`` with the reason, so the crisis
journal records *why* the cell was convened (or that it was convened without a criterion
being met, which is a decision the direction may take). Commands run without a shell
(``shlex.split`` then :func:`drplan.process.capture`), with a time limit.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any, Literal

from drplan import process
from drplan.errors import InputError
from drplan.plan import model as m
from drplan.plan.units import format_duration

Status = Literal["met", "not_met", "unknown"]


@dataclass
class Observations:
    """What the cell knows when it opens the crisis."""

    down: list[str]
    """Services observed down."""
    down_since_min: float | None = None
    """For how many minutes they have been down."""
    tickets: int | None = None
    """Tickets opened in the criterion's window."""
    run_commands: bool = True
    timeout_s: float = 30.0


@dataclass
class CriterionResult:
    index: int
    kind: str
    description: str
    status: Status
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    code: int | None
    stdout: str
    problem: str | None


def _run(command: str, timeout: float) -> _Run:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return _Run(None, "", f"cannot parse the command: {exc}")
    if not argv:
        return _Run(None, "", "empty command")
    done = process.capture(argv, timeout=timeout)
    if done.why == "not-found":
        return _Run(None, "", f"command not found: {argv[0]}")
    if done.why is not None:
        return _Run(None, "", f"{argv[0]}: {done.problem}")
    return _Run(done.code, done.text, None)


def _service_down(c: m.ServiceDownCriterion, plan: m.Plan, obs: Observations) -> tuple[Status, str]:
    watched = c.services or [n for n, s in plan.services.items() if s.critical]
    need = format_duration(c.duration)
    if not obs.down:
        return "unknown", f"no observation: pass --down SERVICE (watched: {', '.join(watched)})"
    down = [s for s in obs.down if s in watched]
    if not down:
        return "not_met", f"none of the watched services is down (watched: {', '.join(watched)})"
    if obs.down_since_min is None:
        return (
            "unknown",
            f"{', '.join(down)} down, for how long? pass --down-since MINUTES (criterion: {need})",
        )
    since = obs.down_since_min * 60
    if since >= c.duration:
        return "met", f"{', '.join(down)} down for {format_duration(since)} (≥ {need})"
    return "not_met", f"{', '.join(down)} down for {format_duration(since)} only (< {need})"


def _tickets(c: m.TicketsCriterion, obs: Observations) -> tuple[Status, str]:
    window = format_duration(c.window)
    source = "given"
    count = obs.tickets
    if count is None:
        if not c.count_command:
            return "unknown", "no ticket count: pass --tickets N (no count_command in the plan)"
        if not obs.run_commands:
            return "unknown", "count_command not run (--no-commands): pass --tickets N"
        run = _run(c.count_command, obs.timeout_s)
        if run.problem:
            return "unknown", f"count_command: {run.problem}"
        if run.code != 0:
            return "unknown", f"count_command exited {run.code}"
        found = re.match(r"\s*(\d+)\b", run.stdout)
        if found is None:
            shown = run.stdout.strip()[:40]
            return "unknown", f"count_command printed {shown!r}, not a number"
        count = int(found.group(1))
        source = "counted by count_command"
    verdict: Status = "met" if count >= c.threshold else "not_met"
    sign = "≥" if verdict == "met" else "<"
    return verdict, f"{count} tickets in {window} ({source}) {sign} threshold {c.threshold}"


def _command(c: m.CommandCriterion, obs: Observations) -> tuple[Status, str]:
    if not obs.run_commands:
        return "unknown", "probe not run (--no-commands)"
    run = _run(c.command, obs.timeout_s)
    if run.problem:
        return "unknown", f"probe: {run.problem}"
    if run.code == 0:
        return "not_met", "probe succeeded (exit 0)"
    return "met", f"probe failed (exit {run.code})"


def evaluate(plan: m.Plan, obs: Observations) -> list[CriterionResult]:
    """Every activation criterion of the plan's crisis cell against the observations."""
    cell = plan.crisis_cell
    if cell is None:
        return []
    unknown = [s for s in obs.down if s not in plan.services]
    if unknown:
        raise InputError(
            f"--down {unknown[0]}: no such service in the plan "
            f"(services: {', '.join(plan.services)})"
        )
    if obs.down_since_min is not None and obs.down_since_min < 0:
        raise InputError("--down-since must be a number of minutes ≥ 0")
    if obs.tickets is not None and obs.tickets < 0:
        raise InputError("--tickets must be ≥ 0")
    results = []
    for i, c in enumerate(cell.activation, 1):
        if isinstance(c, m.ServiceDownCriterion):
            status, why = _service_down(c, plan, obs)
            label = c.description or f"services down ≥ {format_duration(c.duration)}"
        elif isinstance(c, m.TicketsCriterion):
            status, why = _tickets(c, obs)
            label = c.description or f"≥ {c.threshold} tickets in {format_duration(c.window)}"
        else:
            status, why = _command(c, obs)
            label = c.description or f"probe: {c.command}"
        results.append(CriterionResult(i, c.kind, label, status, why))
    return results


def verdict(results: list[CriterionResult]) -> str:
    """``met`` if any criterion is met, ``unknown`` if none is but some are unknown."""
    statuses = {r.status for r in results}
    if "met" in statuses:
        return "met"
    if "unknown" in statuses or not results:
        return "unknown"
    return "not_met"
