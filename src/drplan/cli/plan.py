"""`drplan validate`, `init`, `plan` and `schema`: writing and reading a plan.

Modules that cost start-up time (the plan model, the validation, rich, jinja2) are
imported inside the commands that use them: `drplan --help` imports none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, emit, err, out, print_json, write_file
from drplan.errors import InputError
from drplan.plan.units import format_duration

if TYPE_CHECKING:
    from drplan.actions.context import PlanCheck
    from drplan.plan import model as m
    from drplan.schedule import Schedule

INIT_HEADER = """\
# drplan disaster-recovery plan, drafted by `drplan init --from {compose}`.
# Review every guess below (tiers, engines, methods, checks), then fill in the sites,
# the repositories and the objectives. Check it with: drplan validate {plan}
"""


def validate(plan: str = opt.PLAN) -> None:
    """Check a plan; list every problem as FILE:LINE:COL: path: message (exit 2)."""
    from drplan.actions.context import check_plan

    check = check_plan(plan)
    for problem in check.problems:
        out(problem.format())
    if check.context is None:
        n = len(check.errors) or 1
        err(f"{n} problem{'s' if n != 1 else ''} in {plan}")
        raise typer.Exit(2)
    from drplan.plan.stack_objects import needs_note

    ctx = check.context
    for line in needs_note(ctx.compose, list(ctx.plan.services), list(ctx.plan.sites)):
        err(line)
    out(validate_summary(check))


def validate_summary(check: PlanCheck) -> str:
    """One line for a valid plan."""
    assert check.context is not None
    plan = check.context.plan
    sources = sum(len(s.data) for s in plan.services.values())
    warnings = len(check.warnings)
    parts = [
        f"stack {plan.stack.name}",
        f"{len(plan.services)} services",
        f"{sources} data sources",
        f"{len(plan.sites)} sites",
        f"{len(plan.repositories)} repositories",
        f"{len(plan.profiles) + 1} profiles",
    ]
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return f"OK: {check.file}: " + ", ".join(parts)


def init(
    compose: list[str] = typer.Option(
        ..., "--from", help="Compose/stack file to draft from (repeat to merge, as `-f`)."
    ),
    stack: str | None = typer.Option(None, "--stack", help="Stack name (default: guessed)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write the plan here."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    from_stack: str | None = typer.Option(
        None,
        "--from-stack",
        metavar="NAME",
        help="Running stack to read live evidence from (processes, data files, variable "
        "names of its containers) where the compose file is not conclusive.",
    ),
    site: str | None = typer.Option(
        None,
        "--site",
        metavar="DOCKER_URL",
        help="Engine running --from-stack, and the draft's primary site (default: "
        "DOCKER_HOST, else the local socket).",
    ),
) -> None:
    """Draft a plan from a compose file; guesses are printed to stderr."""
    import yaml

    from drplan.actions.init import draft_plan

    if output and Path(output).exists() and not force:
        raise InputError("already exists (use --force to overwrite)", where=output)
    if site and not from_stack:
        raise InputError("--site DOCKER_URL goes with --from-stack NAME", where="--site")
    draft = draft_plan(
        compose, stack=stack, plan_path=output, from_stack=from_stack, docker_host=site
    )
    for note in draft.notes:
        err(f"guessed: {note}")
    for warning in draft.warnings:
        err(f"warning: {warning}")
    shown = " --from ".join(compose) + (f" --from-stack {from_stack}" if from_stack else "")
    header = INIT_HEADER.format(compose=shown, plan=output or "plan.yml")
    if draft.warnings:  # kept in the plan, where the next reader looks
        header += "#\n# WARNINGS: state this draft leaves unprotected, or protects with care:\n"
        header += "".join(f"# - {' '.join(w.split())}\n" for w in draft.warnings)
    text = header + yaml.safe_dump(
        draft.data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    emit(text, output)


def plan(
    plan: str = opt.PLAN,
    profile: str | None = typer.Option(None, "--profile", "-p", help="Profile (default: full)."),
    as_json: bool = opt.json_option("the schedule"),
    svg: str | None = typer.Option(None, "--svg", help="Write a Gantt chart (SVG) to FILE."),
) -> None:
    """Show the recovery schedule: steps, waves, critical path, estimated RTO."""
    from drplan.actions.context import load_plan
    from drplan.actions.plan_view import schedule_of

    pc = load_plan(plan)
    schedule = schedule_of(pc, profile)
    if svg:
        from drplan.schedule.gantt import render_gantt  # jinja2: only for the chart

        write_file(svg, render_gantt(schedule, f"Recovery of {pc.name}"))
        err(f"wrote {svg}")
    show_schedule(schedule, pc.plan, as_json=as_json, text=not svg)


def show_schedule(schedule: Schedule, plan: m.Plan, *, as_json: bool, text: bool = True) -> None:
    """A schedule as JSON, or as tables for a person (`drplan plan`, `recover --dry-run`)."""
    if as_json:
        print_json(schedule.to_dict())
    elif text:
        render_schedule(schedule, plan, console())


def render_schedule(schedule: Schedule, plan: m.Plan, con: Any) -> None:
    """Readable schedule: summary, waves, services against objectives, critical path."""
    from rich.table import Table

    met = schedule.objective_met()
    verdict = {True: "[green]within objective[/]", False: "[bold red]OVER objective[/]"}.get(
        met, "no objective set"
    )
    con.print(
        f"[bold]Recovery plan[/] stack [bold]{plan.stack.name}[/], profile "
        f"[bold]{schedule.profile}[/]: {len(schedule.services)} services, "
        f"{len(schedule.steps)} steps in {len(schedule.waves)} waves"
    )
    if schedule.closure_added:
        con.print("Dependencies brought in by the profile: " + ", ".join(schedule.closure_added))
    con.print(
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
    con.print(waves)
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
    con.print(services)
    con.print("[bold]Critical path:[/] " + " → ".join(schedule.critical_path))
    bases = {s.estimate_basis for s in schedule.steps.values()}
    if bases != {"history"}:
        con.print("[dim]Estimates from data sizes and defaults until drills record durations.[/]")


def schema() -> None:
    """Print the plan's JSON Schema."""
    from drplan.plan.schema import schema_text
    from drplan.sources import registry

    typer.echo(schema_text(registry.names()), nl=False)
