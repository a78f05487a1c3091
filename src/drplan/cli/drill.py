"""`drplan drill` (recover the newest run into an isolated copy, verify, measure, tear
down, record) and `drplan drills` (the history of drills)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from drplan.cli import options as opt
from drplan.cli.output import out, print_json
from drplan.cli.progress import StepProgress
from drplan.errors import OperationError

if TYPE_CHECKING:
    from drplan.actions.drill import DrillResult


def drill(
    plan: str = opt.PLAN,
    site: str | None = opt.SITE_RECOVERY,
    profile: str | None = opt.PROFILE,
    run: str = opt.RUN,
    report_dir: str | None = opt.REPORT_DIR,
    as_json: bool = opt.JSON,
) -> None:
    """Recover the newest run into an isolated copy, verify, measure, tear down, record."""
    from drplan.actions import drill as dr
    from drplan.actions.context import load_plan
    from drplan.reports import drill as report

    pc = load_plan(plan)
    opts = dr.DrillOptions(site=site, profile=profile, run=run)
    with StepProgress.unless(as_json) as progress:
        result = dr.run_drill(pc, opts, on_event=progress.event, on_bytes=progress.bytes)
    record = result.record
    written = write_reports(result, report_dir)
    if as_json:
        print_json(
            {**record.as_json(), "reports": written, "cleaned_before": result.cleaned_before}
        )
    else:
        for c in result.cleaned_before:
            out(f"cleaned what drill {c['drill_id']} left: {', '.join(c['removed'])}")
        # what the drill did not share with production (see drplan.actions.drill)
        for line in record.isolated:
            out(f"isolated: {line}")
        out(report.markdown(record))
        for p in written.values():
            out(f"report: {p}")
    if record.record_error:
        raise OperationError(f"the drill could not be recorded: {record.record_error}")
    if not record.passed:
        raise OperationError(
            f"the drill failed: {record.failure}",
            where=f"drill {record.drill_id} of {pc.name}",
        )


def write_reports(result: DrillResult, report_dir: str | None) -> dict[str, str]:
    """drill.json, drill.md and (when it got that far) the recovery's gantt.svg."""
    from drplan.reports import drill as report
    from drplan.reports import recovery as recovery_report

    record = result.record
    base = Path(report_dir or os.environ.get("DRPLAN_REPORT_DIR", "drplan-reports"))
    folder = base / f"drill-{record.plan}-{record.started_at.replace(':', '')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drill.json").write_text(json.dumps(record.as_json(), indent=2))
    (folder / "drill.md").write_text(report.markdown(record))
    written = {"json": str(folder / "drill.json"), "markdown": str(folder / "drill.md")}
    if result.recovery is not None:
        (folder / "gantt.svg").write_text(recovery_report.gantt(result.recovery))
        written["gantt"] = str(folder / "gantt.svg")
    return written


def drills(plan: str = opt.PLAN, as_json: bool = opt.JSON) -> None:
    """The history of drills with the trend of RTO and RPO."""
    from drplan.actions.context import load_plan
    from drplan.actions.repositories import drills_document
    from drplan.reports import drill as report

    pc = load_plan(plan)
    doc = drills_document(pc)
    if as_json:
        print_json(doc)
    else:
        out(report.history_text(pc.name, doc))
