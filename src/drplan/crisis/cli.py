"""``drplan crisis ...``: printing around :mod:`drplan.crisis.cell` (kept out of drplan.cli)."""

from __future__ import annotations

from collections.abc import Callable

from drplan.commands.output import emit
from drplan.crisis import cell
from drplan.crisis.activation import Observations
from drplan.crisis.export import export_markdown
from drplan.crisis.journal import describe

MARK = {"met": "MET", "not_met": "not met", "unknown": "unknown"}


def run_open(
    plan: str,
    journal: str | None,
    *,
    role: str,
    author: str,
    reason: str,
    incident_at: str | None,
    down: list[str],
    down_since: float | None,
    tickets: int | None,
    run_commands: bool,
    force_role: bool,
    out: Callable[[str], None],
) -> int:
    ctx = cell.load_context(plan, journal)
    obs = Observations(
        down=down, down_since_min=down_since, tickets=tickets, run_commands=run_commands
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
    return 0


def run_entry(
    kind: str, plan: str, journal: str | None, out: Callable[[str], None], **kw: object
) -> int:
    ctx = cell.load_context(plan, journal)
    fn = {"log": cell.log, "decide": cell.decide, "close": cell.close}[kind]
    entry = fn(ctx, **kw)  # type: ignore[operator]
    out(describe(entry))
    if kind == "close":
        crisis = ctx.journal.crises(ctx.journal.entries())[-1]
        opened = crisis.opened
        out(f"crisis closed: open {opened['ts']} → close {entry['ts']}")
        out(f"head hash {entry['hash']} (note it elsewhere; verify with --head)")
    return 0


def run_status(
    plan: str,
    journal: str | None,
    *,
    role: str,
    author: str,
    message: str | None,
    force_role: bool,
    out: Callable[[str], None],
) -> int:
    ctx = cell.load_context(plan, journal)
    entry = cell.status(ctx, role=role, author=author, message=message, force_role=force_role)
    out(entry["text"])
    out(f"(recorded as #{entry['seq']}; ETA {entry['eta']} from {entry['eta_basis']})")
    return 0


def run_verify(plan: str, journal: str | None, head: str | None, out: Callable[[str], None]) -> int:
    ctx = cell.load_context(plan, journal)
    result = cell.verify(ctx, head)
    for note in result.notes:
        out(f"note: {note}")
    out(f"{ctx.journal.store.location}: {result.entries} entries, chain intact")
    out(f"head {result.head}")
    return 0


def run_export(
    plan: str,
    journal: str | None,
    output: str | None,
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    ctx = cell.load_context(plan, journal)
    ctx.journal.require()
    text = export_markdown(ctx.journal, ctx.journal.verify())
    emit(text, output, out, err)
    return 0
