"""``drplan plan``: the recovery schedule as a crisis cell reads it (text, JSON or SVG)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from drplan.commands.validate import validate_or_problems
from drplan.errors import InputError
from drplan.plan import model as m
from drplan.plan.units import format_duration
from drplan.schedule.dag import Schedule, build_schedule
from drplan.schedule.estimate import Estimator
from drplan.schedule.gantt import render_gantt


def load_valid_plan(path: str, out: Callable[[str], None]) -> m.Plan | None:
    """The plan if it validates; otherwise its problems are printed and None returned."""
    result = validate_or_problems(path)
    if isinstance(result, list) or not result.ok:
        problems = result if isinstance(result, list) else result.errors
        for problem in problems:
            out(problem.format())
        return None
    return result.plan


def render_text(schedule: Schedule, plan: m.Plan, console: Console) -> None:
    """Readable schedule: summary, waves, services against objectives, critical path."""
    met = schedule.objective_met()
    verdict = {True: "[green]within objective[/]", False: "[bold red]OVER objective[/]"}.get(
        met, "no objective set"
    )
    console.print(
        f"[bold]Recovery plan[/] stack [bold]{plan.stack.name}[/], profile "
        f"[bold]{schedule.profile}[/]: {len(schedule.services)} services, "
        f"{len(schedule.steps)} steps in {len(schedule.waves)} waves"
    )
    if schedule.closure_added:
        console.print(
            "Dependencies brought in by the profile: " + ", ".join(schedule.closure_added)
        )
    console.print(
        f"Estimated RTO [bold]{format_duration(schedule.estimated_rto_s)}[/] "
        f"(objective {format_duration(schedule.objective_rto_s)}): {verdict}"
    )
    waves = Table(title="Recovery order (steps of a wave run in parallel)", title_justify="left")
    waves.add_column("wave", justify="right")
    waves.add_column("from", justify="right")
    waves.add_column("steps")
    critical = set(schedule.critical_path)
    for i, wave in enumerate(schedule.waves, 1):
        start = min(schedule.start_s[s] for s in wave)
        names = [f"[bold red]{s}[/]" if s in critical else s for s in wave]
        waves.add_row(str(i), format_duration(start), ", ".join(names))
    console.print(waves)
    services = Table(title="Services", title_justify="left")
    for col in ("service", "tier", "critical", "data", "back at", "RTO objective", ""):
        services.add_column(col)
    finish = schedule.service_finish_s()
    for name in schedule.services:
        svc = plan.services[name]
        objective = schedule.service_objective_rto_s.get(name)
        at = finish.get(name)
        status = (
            "" if objective is None or at is None else ("ok" if at <= objective else "[red]over[/]")
        )
        services.add_row(
            name,
            svc.tier,
            "yes" if svc.critical else "no",
            ", ".join(svc.data) or "-",
            format_duration(at),
            format_duration(objective),
            status,
        )
    console.print(services)
    console.print("[bold]Critical path:[/] " + " → ".join(schedule.critical_path))
    bases = {s.estimate_basis for s in schedule.steps.values()}
    if bases != {"history"}:
        console.print(
            "[dim]Estimates from data sizes and defaults until drills record durations.[/]"
        )


def drill_history(path: str, plan: m.Plan) -> dict[str, float]:
    """Step durations measured by past drills, when the plan's repository can be read
    without side effects (password from an env var or a file); otherwise nothing, and the
    schedule falls back to sizes and defaults: `drplan plan` needs no repository."""
    name = plan.primary_repository()
    spec = plan.repositories.get(name or "")
    if spec is None or spec.password.command is not None:
        return {}
    try:
        from drplan.actions.context import open_repository
        from drplan.actions.drill import step_history

        repo = open_repository(name, spec, Path(path).resolve().parent)
        if repo.type == "local" and not (Path(repo.url) / "config").exists():
            return {}
        return step_history(repo, plan.stack.name)
    except Exception:  # unreadable repository: estimates without history
        return {}


def run_plan(
    path: str,
    *,
    profile: str | None,
    as_json: bool,
    svg: str | None,
    out: Callable[[str], None],
    err: Callable[[str], None],
    console: Console | None = None,
    history: dict[str, float] | None = None,
) -> int:
    """Validate, schedule and render; return the exit code."""
    plan = load_valid_plan(path, out)
    if plan is None:
        err(f"{path}: the plan does not validate")
        return 2
    if history is None:
        history = drill_history(path, plan)
    schedule = build_schedule(plan, profile, Estimator(history))
    if svg:
        try:
            Path(svg).write_text(render_gantt(schedule, f"Recovery of {plan.stack.name}"), "utf-8")
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror or exc}", where=svg) from None
        err(f"wrote {svg}")
    if as_json:
        out(json.dumps(schedule.to_dict(), indent=2, ensure_ascii=False))
    elif not svg or console is not None:
        render_text(schedule, plan, console or Console(highlight=False))
    return 0
