"""`drplan status`: is the plan ready? Newest runs against the RPO, newest drill against
the RTO, repository health, and whether the plan changed since the last passed drill.
`drplan preflight`: can each site run a recovery now (actions/preflight.py)?"""

from __future__ import annotations

from typing import Any

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, print_json
from drplan.plan.units import format_duration


def status(plan: str = opt.PLAN, as_json: bool = opt.JSON) -> None:
    """Newest backups against the RPO, newest drill against the RTO, repository health."""
    from drplan.actions.context import load_plan
    from drplan.actions.status import gather

    pc = load_plan(plan)
    data = gather(pc)
    if as_json:
        print_json(data)
    else:
        render(pc.name, data)
    if not data["repository"].get("opens"):
        raise typer.Exit(1)


def render(name: str, data: dict[str, Any]) -> None:
    from rich.table import Table

    con = console()
    con.print(f"[bold]{name}[/] status at {data['at']}")
    t = Table(title="Newest complete backup per service", title_justify="left")
    with_nodes = any(s.get("nodes") for s in data["services"])  # a multi-node site
    for col in ("service", "run", "age", "RPO objective", "verdict", *(["node"] * with_nodes)):
        t.add_column(col)
    for s in data["services"]:
        v = s["verdict"] or "-"
        t.add_row(
            s["service"],
            s["run_id"] or "-",
            format_duration(s["age_s"]),
            format_duration(s["rpo_objective_s"]),
            v if v == "met" else f"[bold red]{v}[/]",
            *([", ".join(s.get("nodes") or []) or "-"] * with_nodes),
        )
    con.print(t)
    d = data["last_drill"]
    if d is None:
        con.print("Drill: [bold red]none yet[/]")
    else:
        con.print(
            f"Drill: newest {d['drill_id']} at {d['started_at']}: "
            + ("passed" if d["passed"] else f"[bold red]FAILED[/] ({d['failure']})")
            + f", RTO {format_duration(d['rto_s'])} against {format_duration(d['rto_objective_s'])}"
            + f" ({d['rto_verdict'] or '-'})"
        )
    if data["needs_drill"]:
        con.print(f"[bold red]Needs a drill[/]: {data['needs_drill_reason']}")
    else:
        con.print("Plan unchanged since the last passed drill")
    r = data["repository"]
    if r.get("opens"):
        con.print(
            f"Repository {r['repository']}: opens, reachable in {r['reachable_s']}s; last "
            f"restic check: {r['last_check'] or 'not recorded'}"
            + (
                ""
                if r.get("last_check_ok") is None
                else " (passed)"
                if r["last_check_ok"]
                else " (FAILED)"
            )
        )
    else:
        con.print(f"Repository {r['repository']}: [bold red]{r.get('error')}[/]")


def preflight(
    plan: str = opt.PLAN,
    site: list[str] = typer.Option(
        None, "--site", help="Site to check (repeatable; default: every site of the plan)."
    ),
    as_json: bool = opt.JSON,
) -> None:
    """Can each site run a recovery now: engine, nodes, placement, repository from there.
    Changes nothing (one helper per node reads the repository's config). Exit 1 on a
    failure."""
    from drplan.actions.context import load_plan
    from drplan.actions.preflight import FAIL, WARN
    from drplan.actions.preflight import as_json as to_json
    from drplan.actions.preflight import preflight as run_preflight

    pc = load_plan(plan)
    checks = run_preflight(pc, site or None)
    if as_json:
        print_json(to_json(checks))
    else:
        from rich.table import Table

        t = Table(title=f"{pc.name}: can each site run a recovery now?", title_justify="left")
        for col in ("site", "check", "status", "detail"):
            t.add_column(col, overflow="fold")
        style = {FAIL: "bold red", WARN: "yellow"}
        for c in checks:
            shown = f"[{style[c.status]}]{c.status}[/]" if c.status in style else c.status
            t.add_row(c.site, c.what, shown, c.detail)
        console().print(t)
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)

