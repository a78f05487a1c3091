"""drplan's command line: one module per noun, registered here in the order a user meets
them, which is the order `drplan --help` lists them.

Each module holds typer options, argument parsing and rendering; what a command does is
in drplan.actions. Modules that take time to import (the plan model, the Docker SDK,
rich's tables, jinja2) are imported inside the commands that use them, so that
`drplan --help` and `drplan version` import typer and little else.
"""

from __future__ import annotations

import gc
import sys

import typer

from drplan.cli import (
    backup,
    crisis,
    demo,
    drill,
    plan,
    recover,
    repo,
    risks,
    rules,
    runbook,
    serve,
    status,
)
from drplan.cli.app import app, register, register_group, report_error, version
from drplan.errors import DrplanError

__all__ = ["app", "main"]

# allocations between two collections of the youngest generation (Python's default: 700)
GC_THRESHOLD = 50_000

# write the plan, see what a recovery would do
register("validate", plan.validate)
register("init", plan.init)
register("plan", plan.plan)
register("schema", plan.schema)
# protect the data
register_group("repo", repo.repo_app)
register("backup", backup.backup)
register("runs", repo.runs)
register("copy", repo.copy)
register("prune", repo.prune)
register("check", repo.check)
# recover, rehearse, prepare by hand
register("recover", recover.recover)
register("drill", drill.drill)
register("drills", drill.drills)
register("runbook", runbook.runbook)
register("status", status.status)
register("preflight", status.preflight)
# operate it every day
register("serve", serve.serve)
register("prometheus-rules", rules.prometheus_rules)
# the crisis cell
register_group("crisis", crisis.crisis_app)
register("risks", risks.risks)
register("demo", demo.demo)
register("version", version)


def main() -> None:
    """Console-script entry point (`drplan`).

    typer turns usage errors into exit code 2, and the app prints a user error
    (:class:`DrplanError`) as located lines with its exit code (drplan.cli.app); what
    may still reach here is such an error raised outside a command, or an interrupt.

    The cyclic garbage collector runs 70 times less often than Python's default: a
    command builds large acyclic structures (the plan's located YAML nodes, the model,
    the schedule: a million objects for 500 services), and with the default threshold
    the collector walks them again and again, a third of `drplan plan`'s time. Cyclic
    garbage is still collected, later.
    """
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        app()
    except DrplanError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
