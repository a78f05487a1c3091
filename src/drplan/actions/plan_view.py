"""`drplan plan`: the recovery schedule of a loaded plan, estimated as well as this host can.

Step durations measured by past drills make better estimates than data sizes and
defaults; they are read from the plan's repository only when that costs nothing and
runs nothing: a password from an env var or a file (never a `{command:}`), and for a
local repository only when it exists. Otherwise the schedule is estimated without them:
`drplan plan` needs no repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from drplan.actions.context import PlanContext
from drplan.plan.model import repository_type
from drplan.schedule import Estimator, Schedule, build_schedule
from drplan.store import records


def drill_history(pc: PlanContext) -> dict[str, float]:
    """{step id: seconds} measured by the newest drills, or nothing (see the module)."""
    name = pc.plan.primary_repository()
    spec = pc.plan.repositories.get(name or "")
    if name is None or spec is None or spec.password.command is not None:
        return {}
    if repository_type(spec.url) == "local" and not os.access(
        pc.dir / Path(spec.url) / "config", os.R_OK
    ):
        return {}  # no repository there (yet): nothing to ask restic
    try:
        return records.step_history(pc.repository(name), pc.name)
    except Exception:  # unreadable repository, missing password: estimates without history
        return {}


def schedule_of(
    pc: PlanContext, profile: str | None, history: dict[str, float] | None = None
) -> Schedule:
    """The schedule a recovery of `profile` would run, with `history` (default: the
    drills' measured durations, see :func:`drill_history`)."""
    if history is None:
        history = drill_history(pc)
    return build_schedule(pc.plan, profile, Estimator(history))
