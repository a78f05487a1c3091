"""`drplan backup`: one consistent run of every data source, the images and the plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, human_bytes, out, print_json
from drplan.cli.progress import StepProgress
from drplan.errors import OperationError

if TYPE_CHECKING:
    from drplan.store import manifest as mf


def backup(
    plan: str = opt.PLAN,
    service: list[str] = typer.Option([], "--service", "-s", help="Only this service (repeat)."),
    site: str | None = typer.Option(None, "--site", help="Site to back up (default: primary)."),
    as_json: bool = opt.JSON,
) -> None:
    """Back up every data source, the images and the plan as one run."""
    from drplan.actions import backup as action
    from drplan.actions.context import load_plan

    pc = load_plan(plan)
    with StepProgress.unless(as_json) as progress:
        manifest = action.run_backup(
            pc,
            action.BackupOptions(services=service or None, site=site),
            on_event=progress.event,
            on_bytes=progress.bytes,
        )
    if as_json:
        print_json(backup_json(manifest))
    else:
        render_run(manifest)
    if not manifest.complete:
        raise OperationError(
            "the run is incomplete:\n  " + "\n  ".join(manifest.errors),
            where=f"backup run {manifest.run_id}",
        )
    if manifest.errors:  # a failed after_backup hook: the data is whole, the service may not be
        raise OperationError(
            "the run's data is complete, but:\n  " + "\n  ".join(manifest.errors),
            where=f"backup run {manifest.run_id}",
        )
    if not as_json:
        out(f"complete: run {manifest.run_id}, {human_bytes(manifest.total_bytes)}")


def render_run(manifest: mf.Manifest) -> None:
    from rich.table import Table

    table = Table(title=f"run {manifest.run_id} of {manifest.plan}")
    for col in ("service", "source", "engine", "snapshot", "size", "seconds"):
        table.add_column(col)
    for s in manifest.sources:
        table.add_row(
            s.service,
            s.source,
            f"{s.engine}/{s.method}",
            s.snapshot[:8],
            human_bytes(s.bytes),
            f"{s.seconds:.1f}",
        )
    console(highlight=True).print(table)
    for svc, down in manifest.downtime_s.items():
        out(f"downtime of {svc} (cold copy): {down:.1f}s")
    for h in manifest.hooks:
        out(f"hook {h.service} {h.phase}[{h.index}] ({h.where}): {h.status}, {h.seconds:.1f}s")


def backup_json(m: mf.Manifest) -> dict[str, Any]:
    return {
        "run_id": m.run_id,
        "plan": m.plan,
        "complete": m.complete,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "rpo_point": m.rpo_point,
        "sources": [
            {
                "service": s.service,
                "source": s.source,
                "engine": s.engine,
                "method": s.method,
                "snapshot": s.snapshot,
                "path": s.path,
                "bytes": s.bytes,
                "seconds": s.seconds,
                "fingerprint": s.fingerprint,
                "consistency": s.consistency,
                "stats": s.stats,
                "node": s.node,
            }
            for s in m.sources
        ],
        "images": m.images,
        "images_snapshot": m.images_snapshot,
        "downtime_s": m.downtime_s,
        "errors": m.errors,
        "timings": m.timings,
        "hooks": [h.model_dump() for h in m.hooks],
    }
