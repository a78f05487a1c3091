"""`drplan repo init`, `runs`, `copy`, `prune` and `check`: the plan's repositories."""

from __future__ import annotations

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, human_age, human_bytes, out, print_json
from drplan.errors import OperationError

repo_app = typer.Typer(help="restic repositories of a plan.", no_args_is_help=True)


@repo_app.command("init")
def repo_init(plan: str = opt.PLAN) -> None:
    """Create the plan's repositories (primary and off-site copies) if missing."""
    from drplan.actions.context import load_plan
    from drplan.actions.repositories import init_all

    for repo, created in init_all(load_plan(plan)):
        out(f"{repo.name}: {'initialised' if created else 'already initialised'} ({repo.url})")


def runs(
    plan: str = opt.PLAN, as_json: bool = opt.JSON, repository: str | None = opt.REPOSITORY
) -> None:
    """List the runs in the repository with their age against the RPO."""
    from drplan.actions.context import load_plan
    from drplan.actions.repositories import list_runs, runs_document

    pc = load_plan(plan)
    if as_json:
        print_json(runs_document(pc, repository))
        return
    repo, rows = list_runs(pc, repository)
    from rich.table import Table

    table = Table(title=f"runs of {pc.name} in {repo.name}")
    for col in ("run", "complete", "size", "age", "RPO"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        rpo = "-" if r.within_rpo is None else ("[green]met" if r.within_rpo else "[red]exceeded")
        table.add_row(
            r.run_id,
            "yes" if r.complete else "[red]no",
            human_bytes(r.bytes),
            human_age(r.age_s),
            rpo,
        )
    console(highlight=True).print(table)
    if not rows:
        out("no run yet")


def copy(plan: str = opt.PLAN, as_json: bool = opt.JSON) -> None:
    """Copy complete runs to the off-site repositories (3-2-1)."""
    from drplan.actions import repo_ops
    from drplan.actions.context import load_plan

    results = repo_ops.copy_runs(load_plan(plan))
    if as_json:
        print_json(results)
        return
    for r in results:
        copied, already = len(r["copied"]), len(r["already"])
        out(f"{r['repository']}: copied {copied} run(s), {already} already there")


def prune(
    plan: str = opt.PLAN,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed."),
    as_json: bool = opt.JSON,
    repository: str | None = opt.REPOSITORY,
) -> None:
    """Apply the retention policy; the newest complete run is always kept."""
    from drplan.actions import repo_ops
    from drplan.actions.context import load_plan

    res = repo_ops.prune(load_plan(plan), dry_run=dry_run, repository=repository)
    if as_json:
        print_json(res)
        return
    out(
        f"keep {len(res['keep'])} run(s); forget {len(res['forget'])} run(s)"
        f" and {res['orphan_snapshots']} snapshot(s) of interrupted runs"
        + (" (dry run)" if dry_run else "")
    )
    for r in res["forget"]:
        out(f"  forget {r}")


def check(
    plan: str = opt.PLAN,
    read_data_subset: str | None = typer.Option(
        None, "--read-data-subset", help="Also read this share of the data, e.g. 10%."
    ),
    samples: int = typer.Option(0, "--samples", help="Sources to re-verify (0 = all)."),
    as_json: bool = opt.JSON,
    repository: str | None = opt.REPOSITORY,
) -> None:
    """Check the repository and re-verify the newest run's sources against its manifest."""
    from drplan.actions import repo_ops
    from drplan.actions.context import load_plan

    pc = load_plan(plan)
    res = repo_ops.check(
        pc, read_data_subset=read_data_subset, samples=samples, repository=repository
    )
    if as_json:
        print_json(res)
    else:
        out(f"repository {res['name']}: {res['repository']}")
        for s in res["samples"]:
            out(
                f"  {s['service']}/{s['source']}: {'ok' if s['ok'] else 'DIFFERS'}"
                + ("" if s["ok"] else ": " + "; ".join(s["differences"][:5]))
            )
    if not res["ok"]:
        raise OperationError("check failed", where=f"plan {pc.name}")
