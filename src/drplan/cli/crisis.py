"""`drplan crisis ...`: the crisis cell's journal (open, log, decide, status, close,
verify, export); the operations are drplan.crisis.cell's, this module prints them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from drplan.cli import options as opt
from drplan.cli.output import emit, out

if TYPE_CHECKING:
    from drplan.crisis.cell import Context

crisis_app = typer.Typer(
    help="The crisis cell's journal: open, log, decide, status, close, verify, export.",
    no_args_is_help=True,
)
_JOURNAL = typer.Option(
    None, "--journal", help="Journal file (default: crisis/<plan>-journal.jsonl next to the plan)."
)
_AUTHOR = typer.Option(..., "--author", help="Person id from the crisis cell.")
_FORCE_ROLE = typer.Option(False, "--force-role", help="Record even if the author lacks the role.")
MARK = {"met": "MET", "not_met": "not met", "unknown": "unknown"}


def crisis_context(plan: str, journal: str | None) -> Context:
    """The validated plan bound to its journal."""
    from drplan.actions.context import load_plan
    from drplan.crisis import cell

    return cell.open_context(load_plan(plan).plan, plan, journal)


@crisis_app.command("open")
def crisis_open(
    plan: str = opt.PLAN,
    role: str = typer.Option(..., "--role", help="Role of the author."),
    author: str = _AUTHOR,
    reason: str = typer.Option(..., "--reason", help="Why the cell is convened."),
    incident_at: str | None = typer.Option(None, "--incident-at", help="ISO 8601 (UTC)."),
    down: list[str] = typer.Option([], "--down", help="A service observed down (repeatable)."),
    down_since: float | None = typer.Option(None, "--down-since", help="Minutes down."),
    tickets: int | None = typer.Option(None, "--tickets", help="Tickets in the window."),
    no_commands: bool = typer.Option(False, "--no-commands", help="Do not run probes."),
    journal: str | None = _JOURNAL,
    force_role: bool = _FORCE_ROLE,
) -> None:
    """Open a crisis and evaluate the plan's activation criteria."""
    from drplan.crisis import cell
    from drplan.crisis.activation import Observations
    from drplan.crisis.journal import describe

    ctx = crisis_context(plan, journal)
    obs = Observations(
        down=down, down_since_min=down_since, tickets=tickets, run_commands=not no_commands
    )
    opened, activation = cell.open_crisis(
        ctx,
        role=role,
        author=author,
        reason=reason,
        observations=obs,
        incident_at=incident_at,
        force_role=force_role,
    )
    out(describe(opened))
    out(f"Activation criteria: {activation['text']}")
    for c in activation["criteria"]:
        out(f"  {c['index']}. [{MARK[c['status']]}] {c['kind']}: {c['description']}: {c['why']}")
    if activation["activated"] != "met":
        out("  (the crisis is open on the direction's judgement; this is recorded)")
    out(f"journal: {ctx.journal.store.location}")


def _record(kind: str, plan: str, journal: str | None, **kw: Any) -> None:
    """log, decide or close: one entry appended and printed."""
    from drplan.crisis import cell
    from drplan.crisis.journal import describe

    ctx = crisis_context(plan, journal)
    fn = {"log": cell.log, "decide": cell.decide, "close": cell.close}[kind]
    entry = fn(ctx, **kw)
    out(describe(entry))
    if kind == "close":
        opened = ctx.journal.crises(ctx.journal.entries())[-1].opened
        out(f"crisis closed: open {opened['ts']} → close {entry['ts']}")
        out(f"head hash {entry['hash']} (note it elsewhere; verify with --head)")


@crisis_app.command("log")
def crisis_log(
    plan: str = opt.PLAN,
    text: str = typer.Argument(..., help="What happened."),
    role: str = typer.Option(..., "--role", help="Role of the author."),
    author: str = _AUTHOR,
    journal: str | None = _JOURNAL,
    force_role: bool = _FORCE_ROLE,
) -> None:
    """Record an event or an observation."""
    _record("log", plan, journal, role=role, author=author, text=text, force_role=force_role)


@crisis_app.command("decide")
def crisis_decide(
    plan: str = opt.PLAN,
    decision: str = typer.Option(
        ...,
        "--decision",
        help="start-recovery, switch-production, return-to-normal or other.",
    ),
    why: str = typer.Option(..., "--why", help="The reason, recorded."),
    profile: str | None = typer.Option(None, "--profile", help="Profile to recover."),
    role: str = typer.Option("direction", "--role", help="Role of the author."),
    author: str = _AUTHOR,
    journal: str | None = _JOURNAL,
    force_role: bool = _FORCE_ROLE,
) -> None:
    """Record a decision, who took it and why."""
    _record(
        "decide",
        plan,
        journal,
        role=role,
        author=author,
        decision=decision,
        why=why,
        profile=profile,
        force_role=force_role,
    )


@crisis_app.command("status")
def crisis_status(
    plan: str = opt.PLAN,
    message: str | None = typer.Option(None, "--message", help="Opening sentence for users."),
    role: str = typer.Option("communication", "--role", help="Role of the author."),
    author: str = _AUTHOR,
    journal: str | None = _JOURNAL,
    force_role: bool = _FORCE_ROLE,
) -> None:
    """Write and record a status message for users, with an ETA from the estimated RTO."""
    from drplan.crisis import cell

    ctx = crisis_context(plan, journal)
    entry = cell.status(ctx, role=role, author=author, message=message, force_role=force_role)
    out(entry["text"])
    out(f"(recorded as #{entry['seq']}; ETA {entry['eta']} from {entry['eta_basis']})")


@crisis_app.command("close")
def crisis_close(
    plan: str = opt.PLAN,
    summary: str = typer.Option(..., "--summary", help="How it ended."),
    role: str = typer.Option("direction", "--role", help="Role of the author."),
    author: str = _AUTHOR,
    journal: str | None = _JOURNAL,
    force_role: bool = _FORCE_ROLE,
) -> None:
    """Close the open crisis."""
    _record(
        "close", plan, journal, role=role, author=author, summary=summary, force_role=force_role
    )


@crisis_app.command("verify")
def crisis_verify(
    plan: str = opt.PLAN,
    head: str | None = typer.Option(None, "--head", help="A head hash noted earlier."),
    journal: str | None = _JOURNAL,
) -> None:
    """Recompute the hash chain; exit 1 naming the first altered entry."""
    from drplan.crisis import cell

    ctx = crisis_context(plan, journal)
    result = cell.verify(ctx, head)
    for note in result.notes:
        out(f"note: {note}")
    out(f"{ctx.journal.store.location}: {result.entries} entries, chain intact")
    out(f"head {result.head}")


@crisis_app.command("export")
def crisis_export(
    plan: str = opt.PLAN,
    output: str | None = typer.Option(None, "--output", "-o", help="Write Markdown to FILE."),
    journal: str | None = _JOURNAL,
) -> None:
    """The journal as Markdown for the post-crisis review."""
    from drplan.crisis.export import export_markdown

    ctx = crisis_context(plan, journal)
    ctx.journal.require()
    emit(export_markdown(ctx.journal, ctx.journal.verify()), output)
