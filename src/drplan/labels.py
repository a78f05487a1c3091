"""Every ``org.drplan.*`` label drplan puts on Docker objects, in one place.

Labels are how drplan recognises its own containers, volumes and services on an engine
that others use too (and how a later run finds what an interrupted one left): they are a
format, like the repository's tags (drplan.store.layout). Kept at the bottom of the
package so the platform, the plan's drill isolation and the actions all read one list.
"""

from __future__ import annotations

PLAN = "org.drplan.plan"  # the plan (stack) a helper, journal or marker belongs to
RUN = "org.drplan.run"  # the run (or "check", "journal", "drill-cleanup") a helper serves
HELPER = "org.drplan.helper"  # a helper container drplan started
OWNER = "org.drplan.owner"  # host/boot/pid/start of the process that owns a helper
SCALED_DOWN_FROM = "org.drplan.scaled-down-from"  # a cold backup's replicas to restore
JOURNAL = "org.drplan.journal"  # the recovery's resume journal volume
DRILL = "org.drplan.drill"  # a drill's marker volume
DRILL_STATE = "org.drplan.drill.state"  # what existed before a drill (its marker's state)
DRILL_BIND = "org.drplan.drill.bind"  # a drill's copy of a bind-mounted directory


def owned_by(plan: str, run: str) -> dict[str, str]:
    """The labels of a helper or volume working for one run of one plan."""
    return {PLAN: plan, RUN: run}
