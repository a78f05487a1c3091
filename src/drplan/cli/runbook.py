"""`drplan runbook PLAN -o DIR`: the by-hand recovery runbook."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from drplan.cli import options as opt
from drplan.cli.output import out
from drplan.errors import InputError

# the plan's own rule for stack names (Stack.name): Docker's, and one shell word as it is
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def runbook(
    plan: str = opt.PLAN,
    output: str = typer.Option(..., "--output", "-o", help="Directory to write into."),
    site: str | None = opt.SITE_RECOVERY,
    profile: str | None = opt.PROFILE,
    run: str = opt.RUN,
    stack_name: str | None = typer.Option(
        None,
        "--stack-name",
        help="Stack name to recover into (default: the site's prefix and the plan's stack name).",
    ),
) -> None:
    """Write the by-hand runbook: one Markdown file per step, an index, SVG and HTML."""
    from drplan import runbook as rb
    from drplan.actions.context import load_plan

    pc = load_plan(plan)
    if stack_name is not None and not STACK_NAME.fullmatch(stack_name):
        raise InputError(f"invalid stack name {stack_name!r}", where="--stack-name")
    # a directory drplan must not write into is refused before the repository is read
    rb.check_output(Path(output))
    book = rb.build(pc, pc.repository(), site=site, profile=profile, run=run, stack=stack_name)
    written = rb.write(book, Path(output))
    out(
        f"runbook of {pc.name}: {written['steps']} steps for stack {book['stack']} on site "
        f"{book['site']} (run {book['run']['run_id']})"
    )
    for key in ("index", "html", "gantt"):
        out(f"{key}: {written[key]}")
