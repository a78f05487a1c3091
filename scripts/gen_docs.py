#!/usr/bin/env python3
"""Regenerate docs/plan.schema.json, docs/plan-reference.md (from the plan model) and
docs/cli-reference.md (from the CLI itself).

Run after changing src/drplan/plan/model.py:  .venv/bin/python scripts/gen_docs.py
(``--check`` exits 1 if the committed files are stale, for CI).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from drplan.plan.docs import render_reference
from drplan.plan.schema import plan_schema, schema_text
from drplan.sources import registry

ROOT = Path(__file__).resolve().parent.parent


def cli_reference() -> str:
    """The CLI reference, as `typer drplan.cli utils docs` writes it."""
    import typer.main
    from typer.cli import get_docs_for_click

    from drplan.cli import app

    command = typer.main.get_command(app)
    with typer.Context(command) as ctx:
        ctx.ensure_object(dict)
        text = get_docs_for_click(
            obj=command, ctx=ctx, name="drplan", title="drplan command-line reference"
        )
    return text.strip() + "\n"


TARGETS = {
    # the engines are drplan.sources' own (the plan model knows none)
    ROOT / "docs" / "plan.schema.json": lambda: schema_text(registry.names()),
    ROOT / "docs" / "plan-reference.md": lambda: render_reference(
        json.loads(json.dumps(plan_schema(registry.names())))
    ),
    ROOT / "docs" / "cli-reference.md": cli_reference,
}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, render in TARGETS.items():
        text = render()
        if path.exists() and path.read_text("utf-8") == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text, "utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if check and stale:
        print("stale: " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
