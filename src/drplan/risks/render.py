"""Render the risk matrix: a rich table grid for the terminal, a standalone SVG."""

from __future__ import annotations

from importlib import resources

import jinja2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drplan.risks.matrix import (
    IMPACTS,
    LEVELS,
    PROBABILITIES,
    TRIGGER_MARK,
    Matrix,
    criticality,
    label,
    level_of,
)

CELL_W, CELL_H = 170, 104
LEFT, TOP = 150, 74
LINE_H = 14
MAX_IDS = 4
TIMES, DASH = "\u00d7", "\u2013"


def render_text(matrix: Matrix, console: Console, title: str) -> None:
    grid = Table(
        title=f"{title}: probability {TIMES} impact ({TRIGGER_MARK} triggers the plan)",
        title_justify="left",
        show_lines=True,
    )
    grid.add_column("impact ↓\nprob. →", style="bold", no_wrap=True)
    for p in PROBABILITIES:
        grid.add_column(label(p), overflow="fold")
    for i in reversed(IMPACTS):
        row: list[Text | str] = [label(i)]
        for p in PROBABILITIES:
            cell = matrix.cell(p, i)
            style = level_of(cell.score)[2]
            text = Text(f"{len(cell.risks) or '·'}", style=f"bold {style}")
            for r in cell.risks:
                mark = f"{TRIGGER_MARK} " if r.triggers_plan else ""
                text.append(f"\n{mark}{r.id}", style=style + (" bold" if r.triggers_plan else ""))
            row.append(text)
        grid.add_row(*row)
    console.print(grid)
    legend = Text("criticality: ")
    for _, lv, _, style in LEVELS:
        legend.append(f"■ {lv}  ", style=style)
    console.print(legend)
    if not matrix.risks:
        console.print("The plan has no risk register (risks:).")
        return
    table = Table(title="Risks", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("event", min_width=16)
    table.add_column("scenario / mitigation", min_width=16)
    for col in ("probability", "impact", "level", "plan"):
        table.add_column(col, no_wrap=True)
    order = sorted(
        matrix.risks, key=lambda r: (-criticality(r.probability, r.impact), not r.triggers_plan)
    )
    for r in order:
        lv, _, style = level_of(criticality(r.probability, r.impact))
        table.add_row(
            r.id,
            r.event,
            "\n".join(
                t for t in (r.description, r.mitigation and f"mitigation: {r.mitigation}") if t
            )
            or "-",
            label(r.probability),
            label(r.impact),
            Text(lv, style=style),
            f"{TRIGGER_MARK} triggers" if r.triggers_plan else "-",
        )
    console.print(table)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _legend() -> list[dict[str, object]]:
    items, low = [], 0
    for n, (top, lv, colour, _) in enumerate(LEVELS):
        span = f"{low}" if low == top else f"{low}{DASH}{top}"
        items.append({"x": LEFT + n * 130, "colour": colour, "text": f"{lv} ({span})"})
        low = top + 1
    return items


def render_svg(matrix: Matrix, title: str) -> str:
    cells = []
    for col, p in enumerate(PROBABILITIES):
        for row, i in enumerate(reversed(IMPACTS)):
            cell = matrix.cell(p, i)
            ids = [{"id": _clip(r.id, 22), "trigger": r.triggers_plan} for r in cell.risks]
            more = max(len(ids) - MAX_IDS, 0)
            cells.append(
                {
                    "x": LEFT + col * CELL_W,
                    "y": TOP + row * CELL_H,
                    "colour": cell.colour,
                    "count": len(cell.risks),
                    "ids": ids[:MAX_IDS] if not more else ids[: MAX_IDS - 1],
                    "more": more + 1 if more else 0,
                    "title": f"probability {label(p)}, impact {label(i)}: {cell.level}",
                }
            )
    grid_w, grid_h = CELL_W * 4, CELL_H * 4
    bottom = TOP + grid_h
    legend_y = bottom + 56
    key_y = legend_y + 34
    order = sorted(matrix.risks, key=lambda r: (-criticality(r.probability, r.impact), r.id))
    key = [
        {
            "id": _clip(r.id, 22),
            "trigger": r.triggers_plan,
            "text": _clip(f"{r.event} ({label(r.probability)} {TIMES} {label(r.impact)})", 100),
            "colour": level_of(criticality(r.probability, r.impact))[1],
            "y": key_y + 18 + n * LINE_H * 1.3,
        }
        for n, r in enumerate(order)
    ]
    height = int(key_y + 30 + len(key) * LINE_H * 1.3)
    width = LEFT + grid_w + 30
    trig = sum(r.triggers_plan for r in matrix.risks)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = resources.files("drplan.risks").joinpath("templates/matrix.svg.j2").read_text("utf-8")
    return env.from_string(source).render(
        title=title,
        subtitle=f"{len(matrix.risks)} risks, {trig} trigger the recovery plan ({TRIGGER_MARK})",
        width=width,
        height=height,
        left=LEFT,
        top=TOP,
        cell_w=CELL_W,
        cell_h=CELL_H,
        grid_w=grid_w,
        grid_h=grid_h,
        bottom=bottom,
        line_h=LINE_H,
        cells=cells,
        x_labels=[
            {"x": LEFT + (k + 0.5) * CELL_W, "text": label(p)} for k, p in enumerate(PROBABILITIES)
        ],
        y_labels=[
            {"y": TOP + (k + 0.5) * CELL_H, "text": label(i)}
            for k, i in enumerate(reversed(IMPACTS))
        ],
        legend=_legend(),
        legend_y=legend_y,
        key=key,
        key_y=key_y,
        mark=TRIGGER_MARK,
    )
