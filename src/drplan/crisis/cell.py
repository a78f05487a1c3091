"""Crisis cell operations behind ``drplan crisis``: open, log, decide, status, close, verify.

Each function takes a :class:`Context` (a validated plan and its journal, bound by
:func:`open_context`), appends to the journal and returns the entries written; loading
the plan and printing are left to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from drplan.crisis.activation import Observations, evaluate, verdict
from drplan.crisis.journal import (
    DECISIONS,
    Crisis,
    Journal,
    Verification,
    default_journal_path,
    format_ts,
    parse_ts,
)
from drplan.errors import InputError, OperationError
from drplan.plan import model as m
from drplan.plan.units import format_duration
from drplan.schedule.dag import build_schedule


@dataclass
class Context:
    plan: m.Plan
    plan_path: Path
    journal: Journal


def open_context(
    plan: m.Plan, plan_path: str | Path, journal_path: str | Path | None = None, **kw: Any
) -> Context:
    """Bind a validated plan (the caller loads it: drplan.actions.context.load_plan) to
    its journal (default: crisis/<plan>-journal.jsonl next to the plan file)."""
    path = Path(journal_path) if journal_path else default_journal_path(plan_path)
    return Context(plan, Path(plan_path), Journal.at(path, plan, plan_path, **kw))


def _need_open(entries: list[dict[str, Any]]) -> Crisis:
    crisis = Journal.crises(entries)
    if not crisis or crisis[-1].closed is not None:
        raise InputError("no open crisis in this journal: open one with drplan crisis open")
    return crisis[-1]


def open_crisis(
    ctx: Context,
    *,
    role: str,
    author: str,
    reason: str,
    observations: Observations,
    incident_at: str | None = None,
    force_role: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open a crisis and record the evaluation of the activation criteria."""
    journal = ctx.journal
    journal.check_author("open", role, author, force_role)
    incident = format_ts(parse_ts(incident_at, what="--incident-at")) if incident_at else None
    if journal.store.exists():
        _refuse_if_open(journal.entries())
    results = evaluate(ctx.plan, observations)

    def check(entries: list[dict[str, Any]]) -> None:
        _refuse_if_open(entries)

    opened = journal.append(
        "open",
        role=role,
        author=author,
        text=reason,
        force_role=force_role,
        check=check,
        incident_at=incident,
        stack=ctx.plan.stack.name,
        plan_file=str(ctx.plan_path),
    )
    overall = verdict(results)
    summary = {
        "met": "activation criteria met",
        "not_met": "no activation criterion met",
        "unknown": "no activation criterion met; some could not be evaluated",
    }[overall]
    activation = journal.append(
        "activation",
        role=role,
        author=author,
        text=summary,
        force_role=force_role,
        criteria=[r.to_dict() for r in results],
        activated=overall,
    )
    return opened, activation


def _refuse_if_open(entries: list[dict[str, Any]]) -> None:
    crises = Journal.crises(entries)
    if crises and crises[-1].closed is None:
        o = crises[-1].opened
        raise InputError(
            f"a crisis is already open in this journal (seq {o['seq']}, opened {o['ts']} by "
            f"{o['author']}): close it first with drplan crisis close"
        )


def log(ctx: Context, *, role: str, author: str, text: str, force_role: bool = False) -> dict:
    if not text.strip():
        raise InputError("nothing to log: give the text of the entry")
    ctx.journal.require()
    return ctx.journal.append(
        "log", role=role, author=author, text=text, force_role=force_role, check=_need_open
    )


def decide(
    ctx: Context,
    *,
    role: str,
    author: str,
    decision: str,
    why: str,
    profile: str | None = None,
    force_role: bool = False,
) -> dict[str, Any]:
    if decision not in DECISIONS:
        raise InputError(f"unknown decision {decision!r} (decisions: {', '.join(DECISIONS)})")
    if not why.strip():
        raise InputError("a decision needs its reason: --why TEXT")
    if profile is not None:
        if decision != "start-recovery":
            raise InputError("--profile only applies to --decision start-recovery")
        build_schedule(ctx.plan, profile)  # unknown profile → InputError naming the known ones
    ctx.journal.require()
    fields: dict[str, Any] = {"decision": decision, "why": why}
    text = why
    if decision == "start-recovery":
        fields["profile"] = profile or "full"
        fields["keeps_option_to_switch"] = True
        text += (
            f" (recovery of profile {profile or 'full'} on the recovery site; production "
            "is not switched until a switch-production decision)"
        )
    return ctx.journal.append(
        "decision",
        role=role,
        author=author,
        text=text,
        force_role=force_role,
        check=_need_open,
        **fields,
    )


@dataclass
class Eta:
    base: str
    """What the ETA counts from: ``start-recovery decision #N`` or ``crisis open #N``."""
    base_ts: datetime
    profile: str
    rto_s: float
    eta: datetime

    def remaining_s(self, now: datetime) -> float:
        return (self.eta - now).total_seconds()


def compute_eta(plan: m.Plan, crisis: Crisis) -> Eta:
    """Estimated RTO of the plan, counted from the last start-recovery decision (or open)."""
    decision = crisis.last_decision("start-recovery")
    if decision is not None:
        base = f"start-recovery decision #{decision['seq']}"
        start = decision
        profile = decision.get("profile") or "full"
    else:
        base, start, profile = f"crisis open #{crisis.opened['seq']}", crisis.opened, "full"
    schedule = build_schedule(plan, None if profile == "full" else profile)
    base_ts = parse_ts(start["ts"])
    rto = schedule.estimated_rto_s
    return Eta(base, base_ts, profile, rto, base_ts + timedelta(seconds=rto))


def _hm(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def status_message(
    plan: m.Plan, crisis: Crisis, eta: Eta, now: datetime, message: str | None, contact: str
) -> str:
    started = crisis.last_decision("start-recovery") is not None
    remaining = eta.remaining_s(now)
    head = (
        message.strip()
        if message and message.strip()
        else (f"The {plan.stack.name} service is unavailable; the crisis cell is handling it.")
    )
    if not head.endswith((".", "!", "?")):
        head += "."
    if started:
        state = f"Recovery under way since {_hm(eta.base_ts)}"
    else:
        state = (
            f"Crisis cell convened at {_hm(eta.base_ts)}; recovery not yet decided, "
            "so the estimate counts from then"
        )
    if remaining >= 0:
        when = (
            f"service expected back around {_hm(eta.eta)} (in about "
            f"{format_duration(remaining)}; estimated recovery time "
            f"{format_duration(eta.rto_s)}, profile {eta.profile})"
        )
    else:
        when = (
            f"the estimated recovery time ({format_duration(eta.rto_s)}, profile "
            f"{eta.profile}) passed at {_hm(eta.eta)}; a new estimate will follow"
        )
    tail = f" Next update from {contact}." if contact else ""
    return f"{head} {state}; {when}.{tail}"


def status(
    ctx: Context, *, role: str, author: str, message: str | None = None, force_role: bool = False
) -> dict[str, Any]:
    journal = ctx.journal
    crisis = _need_open(journal.require())
    now = journal.clock()
    eta = compute_eta(ctx.plan, crisis)
    person = journal.person(author)
    contact = person.name + (f" ({person.email})" if person.email else "")
    text = status_message(ctx.plan, crisis, eta, now, message, contact)
    return journal.append(
        "status",
        role=role,
        author=author,
        text=text,
        force_role=force_role,
        check=_need_open,
        message=message,
        eta=format_ts(eta.eta),
        eta_basis=eta.base,
        profile=eta.profile,
        estimated_rto_s=round(eta.rto_s, 1),
    )


def close(
    ctx: Context, *, role: str, author: str, summary: str, force_role: bool = False
) -> dict[str, Any]:
    if not summary.strip():
        raise InputError("closing needs a summary: --summary TEXT")
    ctx.journal.require()
    return ctx.journal.append(
        "close", role=role, author=author, text=summary, force_role=force_role, check=_need_open
    )


def verify(ctx: Context, head: str | None = None) -> Verification:
    """Recompute the chain; raise OperationError naming the first broken entry."""
    ctx.journal.require_exists()
    result = ctx.journal.verify(head=head)
    if not result.ok:
        raise OperationError(f"chain broken at {result.broken}", where=ctx.journal.store.location)
    return result
