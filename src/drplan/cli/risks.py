"""`drplan risks`: the risk register as a probability x impact matrix (text, JSON, SVG)."""

from __future__ import annotations

import typer

from drplan.cli import options as opt
from drplan.cli.output import console, err, print_json, write_file


def risks(
    plan: str = opt.PLAN,
    svg: str | None = typer.Option(None, "--svg", help="Write the matrix (SVG) to FILE."),
    as_json: bool = opt.json_option("cells and risks"),
) -> None:
    """The risk register as a probability x impact matrix."""
    from drplan.actions.context import load_plan
    from drplan.risks.matrix import build_matrix
    from drplan.risks.render import render_svg, render_text

    pc = load_plan(plan)
    matrix = build_matrix(pc.plan)
    title = f"Risk matrix of {pc.name}"
    if svg:
        write_file(svg, render_svg(matrix, title))
        err(f"wrote {svg}")
    if as_json:
        print_json(matrix.to_dict())
    elif not svg:
        render_text(matrix, console(), title)
