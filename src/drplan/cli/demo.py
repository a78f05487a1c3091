"""`drplan demo`: the README's main job on one engine (protect, destroy, recover,
verify), narrated."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, out, print_json
from drplan.cli.progress import StepProgress
from drplan.cli.recover import show_report, write_reports
from drplan.errors import OperationError


def demo(
    docker_host: str | None = typer.Option(
        None, "--docker-host", help="Engine to run on (default: $DOCKER_HOST or the local one)."
    ),
    workdir: str | None = typer.Option(
        None,
        "--workdir",
        help="Where the demo's plan and repository go (default /var/lib/drplan/demo).",
    ),
    as_json: bool = opt.json_option("the result"),
) -> None:
    """Protect, destroy, recover and verify a demo stack on one Docker engine."""
    from drplan.actions import demo as action
    from drplan.actions.context import load_plan
    from drplan.reports import recovery as report

    say = console(stderr=True, highlight=True)
    host = docker_host or action.default_docker_host()
    wd = Path(workdir or "/var/lib/drplan/demo")
    t0 = time.monotonic()
    with StepProgress.unless(as_json) as progress:
        res = action.run_demo(
            wd,
            host,
            say=lambda s: say.print(f"[bold]{s}[/]"),
            on_event=progress.event,
            on_bytes=progress.bytes,
        )
    rec = res.recovery
    data = report.build(rec, load_plan(res.plan_path).plan)
    written = write_reports(rec, data, str(wd / "reports"))
    same = res.before == res.after
    total = round(time.monotonic() - t0, 1)
    if as_json:
        print_json(
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
            }
        )
    else:
        show_report(data)
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
