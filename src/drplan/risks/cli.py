"""``drplan risks``: the matrix as text, JSON or SVG."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from drplan.errors import InputError
from drplan.risks.matrix import build_matrix
from drplan.risks.render import render_svg, render_text


def run_risks(
    path: str,
    *,
    svg: str | None,
    as_json: bool,
    out: Callable[[str], None],
    err: Callable[[str], None],
    console: Console | None = None,
) -> int:
    from drplan.commands.plan import load_valid_plan

    plan = load_valid_plan(path, out)
    if plan is None:
        err(f"{path}: the plan does not validate")
        return 2
    matrix = build_matrix(plan)
    title = f"Risk matrix of {plan.stack.name}"
    if svg:
        try:
            Path(svg).write_text(render_svg(matrix, title), "utf-8")
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror or exc}", where=svg) from None
        err(f"wrote {svg}")
    if as_json:
        out(json.dumps(matrix.to_dict(), indent=2, ensure_ascii=False))
    elif not svg or console is not None:
        render_text(matrix, console or Console(highlight=False), title)
    return 0
