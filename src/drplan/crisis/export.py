"""The journal as Markdown for the post-crisis review (retour d'expérience)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drplan.crisis.journal import Crisis, Journal, Verification, parse_ts
from drplan.plan.units import format_duration

STATUS_LABEL = {"met": "met", "not_met": "not met", "unknown": "unknown"}


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return (
        str(text if text is not None else "")
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("\r", "")
        .replace("\n", "<br>")
    )


def _span(a: str | None, b: str | None) -> str:
    if not a or not b:
        return "—"
    seconds = (parse_ts(b) - parse_ts(a)).total_seconds()
    return format_duration(seconds) if seconds >= 0 else f"-{format_duration(-seconds)}"


def _who(journal: Journal, entry: dict[str, Any]) -> str:
    person = journal.cell.people.get(entry["author"])
    name = f"{person.name} ({entry['author']})" if person else entry["author"]
    forced = " (role forced)" if entry.get("forced_role") else ""
    return f"{name}, {entry['role']}{forced}"


def _crisis_section(journal: Journal, n: int, crisis: Crisis, out: list[str]) -> None:
    opened, closed = crisis.opened, crisis.closed
    start = crisis.last_decision("start-recovery")
    first_decision = crisis.decisions[0] if crisis.decisions else None
    out += [f"## Crisis {n}: opened {opened['ts']}", ""]
    out += [f"- Opened by {_who(journal, opened)}: {opened.get('text', '')}"]
    if opened.get("incident_at"):
        out += [f"- Incident at {opened['incident_at']}"]
    if closed:
        out += [f"- Closed {closed['ts']} by {_who(journal, closed)}: {closed.get('text', '')}"]
    else:
        out += ["- **Still open**"]
    out += ["", "### Durations", "", "| from | to | duration |", "|---|---|---|"]
    rows = []
    if opened.get("incident_at"):
        rows.append(("incident", "open", opened["incident_at"], opened["ts"]))
    if first_decision:
        rows.append(
            (
                "open",
                f"first decision (#{first_decision['seq']} {first_decision.get('decision')})",
                opened["ts"],
                first_decision["ts"],
            )
        )
    if start and start is not first_decision:
        rows.append(("open", f"start-recovery (#{start['seq']})", opened["ts"], start["ts"]))
    if closed:
        if first_decision:
            rows.append(("first decision", "close", first_decision["ts"], closed["ts"]))
        rows.append(("open", "close", opened["ts"], closed["ts"]))
        if opened.get("incident_at"):
            rows.append(("incident", "close", opened["incident_at"], closed["ts"]))
    for a, b, ta, tb in rows:
        out.append(f"| {a} ({ta}) | {_cell(b)} ({tb}) | {_span(ta, tb)} |")
    if not rows:
        out.append("| open | — | no decision yet |")
    activation = crisis.activation
    out += ["", "### Activation criteria", ""]
    if activation and activation.get("criteria"):
        out += [
            f"Overall: **{STATUS_LABEL.get(activation.get('activated'), '?')}** "
            f"({activation.get('text', '')})",
            "",
            "| # | kind | criterion | result | why |",
            "|---|---|---|---|---|",
        ]
        for c in activation["criteria"]:
            out.append(
                f"| {c.get('index')} | {c.get('kind')} | {_cell(c.get('description'))} | "
                f"{STATUS_LABEL.get(c.get('status'), c.get('status'))} | "
                f"{_cell(c.get('why'))} |"
            )
    else:
        out.append("No activation criteria were evaluated.")
    out += ["", "### Decisions", ""]
    if crisis.decisions:
        out += ["| UTC time | decision | who | why |", "|---|---|---|---|"]
        for d in crisis.decisions:
            decision = d.get("decision", "")
            if d.get("profile") and decision == "start-recovery":
                decision += f" (profile {d['profile']})"
            out.append(
                f"| {d['ts']} | {_cell(decision)} | {_cell(_who(journal, d))} | "
                f"{_cell(d.get('why', ''))} |"
            )
    else:
        out.append("No decision recorded.")
    out += [
        "",
        "### Timeline",
        "",
        "| # | UTC time | role | author | kind | text |",
        "|---|---|---|---|---|---|",
    ]
    for e in crisis.entries:
        kind = e["kind"] + (f" ({e['decision']})" if e.get("decision") else "")
        out.append(
            f"| {e['seq']} | {e['ts']} | {e['role']} | {_cell(e['author'])} | "
            f"{_cell(kind)} | {_cell(e.get('text', ''))} |"
        )
    out.append("")


def export_markdown(
    journal: Journal, verification: Verification, now: datetime | None = None
) -> str:
    entries = journal.entries()
    crises = Journal.crises(entries)
    stack = journal.plan.stack.name
    out = [f"# Crisis journal: {stack}", ""]
    out.append(f"- Journal: `{journal.store.location}` ({len(entries)} entries)")
    out.append(
        f"- Plan: `{journal.plan_path}`"
        + (
            f", opened against sha256 `{verification.plan_sha256}`"
            if verification.plan_sha256
            else ""
        )
    )
    if verification.ok:
        out.append(
            f"- Hash chain: **intact** ({verification.entries} entries, head `{verification.head}`)"
        )
    else:
        out.append(
            f"- Hash chain: **BROKEN** at {verification.broken}: entries from there on "
            "cannot be trusted"
        )
    out += [f"- Note: {n}" for n in verification.notes]
    if now is not None:
        out.append(f"- Exported {now.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    out.append("")
    for n, crisis in enumerate(crises, 1):
        _crisis_section(journal, n, crisis, out)
    if not crises:
        out += ["No crisis recorded.", ""]
    return "\n".join(out)
