"""``drplan init --from compose.yml``: write a draft plan and say what was guessed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from drplan.actions.init import draft_plan
from drplan.commands.output import emit
from drplan.errors import InputError

HEADER = """\
# drplan disaster-recovery plan, drafted by `drplan init --from {compose}`.
# Review every guess below (tiers, engines, methods, checks), then fill in the sites,
# the repositories and the objectives. Check it with: drplan validate {plan}
"""


def run_init(
    compose: str,
    *,
    stack: str | None,
    output: str | None,
    force: bool,
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """Draft the plan, print guesses to ``err``, write it to ``output`` or ``out``."""
    if output and Path(output).exists() and not force:
        raise InputError("already exists (use --force to overwrite)", where=output)
    draft = draft_plan(compose, stack=stack, plan_path=output)
    for note in draft.notes:
        err(f"guessed: {note}")
    text = HEADER.format(compose=compose, plan=output or "plan.yml") + yaml.safe_dump(
        draft.data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    emit(text, output, out, err)
    return 0
