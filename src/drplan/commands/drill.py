"""`drplan drill` and `drplan drills`: run a drill, show the history of drills."""

from __future__ import annotations

import json
import os
from pathlib import Path

from drplan.actions import drill as dr
from drplan.actions.context import load_plan
from drplan.commands.progress import StepProgress
from drplan.errors import OperationError
from drplan.reports import drill as report
from drplan.reports import recovery as recovery_report
from drplan.store import records


def run_drill_cmd(
    plan: str,
    *,
    site: str | None,
    profile: str | None,
    run: str,
    report_dir: str | None,
    as_json: bool,
    out,
) -> int:
    pc = load_plan(plan)
    opts = dr.DrillOptions(site=site, profile=profile, run=run)
    with StepProgress(enabled=None if not as_json else False) as progress:
        result = dr.run_drill(pc, opts, on_event=progress.event, on_bytes=progress.bytes)
    record = result.record
    written = _write(result, report_dir)
    record_out = {**record, "reports": written, "cleaned_before": result.cleaned_before}
    if as_json:
        out(json.dumps(record_out, indent=2))
    else:
        for c in result.cleaned_before:
            out(f"cleaned what drill {c['drill_id']} left: {', '.join(c['removed'])}")
        # what the drill did not share with production (see drplan.actions.drill)
        for line in record.get("isolated", []):
            out(f"isolated: {line}")
        out(report.markdown(record))
        for p in written.values():
            out(f"report: {p}")
    if record.get("record_error"):
        raise OperationError(f"the drill could not be recorded: {record['record_error']}")
    if not record["passed"]:
        raise OperationError(
            f"the drill failed: {record['failure']}",
            where=f"drill {record['drill_id']} of {pc.name}",
        )
    return 0


def _write(result: dr.DrillResult, report_dir: str | None) -> dict[str, str]:
    record = result.record
    base = Path(report_dir or os.environ.get("DRPLAN_REPORT_DIR", "drplan-reports"))
    out = base / f"drill-{record['plan']}-{record['started_at'].replace(':', '')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "drill.json").write_text(json.dumps(record, indent=2))
    (out / "drill.md").write_text(report.markdown(record))
    written = {"json": str(out / "drill.json"), "markdown": str(out / "drill.md")}
    if result.recovery is not None:
        (out / "gantt.svg").write_text(recovery_report.gantt(result.recovery))
        written["gantt"] = str(out / "gantt.svg")
    return written


def run_drills(plan: str, *, as_json: bool, out) -> int:
    pc = load_plan(plan)
    repo = pc.repository()
    repo.open()
    data = report.history(records.list_drills(repo, pc.name))
    if as_json:
        out(json.dumps({"plan": pc.name, **data}, indent=2))
    else:
        out(report.history_text(pc.name, data))
    return 0
