"""`drplan demo`: the README's main job, narrated."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

from drplan.actions import demo
from drplan.commands.progress import StepProgress
from drplan.commands.recover import _write_reports
from drplan.errors import OperationError
from drplan.reports import recovery as report


def run_demo(workdir: str | None, docker_host: str | None, as_json: bool, out) -> int:
    console = Console(stderr=True)
    host = docker_host or demo.default_docker_host()
    wd = Path(workdir or "/var/lib/drplan/demo")
    t0 = time.monotonic()
    with StepProgress(enabled=None if not as_json else False) as progress:
        res = demo.run_demo(
            wd,
            host,
            say=lambda s: console.print(f"[bold]{s}[/]"),
            on_event=progress.event,
            on_bytes=progress.bytes,
        )
    rec = res.recovery
    from drplan.actions.context import load_plan

    data = report.build(rec, load_plan(res.plan_path).plan)
    written = _write_reports(rec, data, str(wd / "reports"))
    same = res.before == res.after
    total = round(time.monotonic() - t0, 1)
    if as_json:
        out(
            json.dumps(
                {
                    "ok": rec.ok and same,
                    "pages_identical": same,
                    "before": res.before,
                    "after": res.after,
                    "timings": res.timings,
                    "total_s": total,
                    "backup_run": res.backup.run_id,
                    "report": data,
                    "reports": written,
                },
                indent=2,
            )
        )
    else:
        Console().print(Markdown(report.markdown(data)))
        for svc in res.before:
            b, a = res.before[svc], res.after[svc]
            out(
                f"{svc}: before the disaster {b['rows']}, {b.get('files')} files, "
                f"{b.get('redis_keys')} keys; after recovery {a['rows']}, {a.get('files')} "
                f"files, {a.get('redis_keys')} keys"
            )
        out(
            "timings: "
            + ", ".join(f"{k} {v}s" for k, v in res.timings.items())
            + f"; total {total}s"
        )
        for p in written.values():
            out(f"report: {p}")
    if not (rec.ok and same):
        raise OperationError(
            "the demo's recovery did not give back the same data", where="drplan demo"
        )
    if not as_json:
        out(
            f"demo complete: protected, destroyed, recovered and verified in {total}s "
            f"(measured RTO {data['rto']['measured_s']}s)"
        )
        out(
            f"the recovered stack {rec.stack!r} keeps running on {host} for you to look at; "
            f"`docker stack rm {rec.stack}` removes it"
        )
    return 0
