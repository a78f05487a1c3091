"""What the repository says about a plan, as the daemon keeps it: the documents `drplan
status`, `drplan runs` and `drplan drills` print with --json, made by the same functions.

The repository is the truth about runs and drills (docs/design/serve.md): the cadence
counts a backup run by hand, the RPO watch reads each service's newest complete run, the
dashboard shows the drill history, from these documents only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drplan.actions.context import PlanContext
from drplan.actions.repositories import drills_document, runs_document
from drplan.actions.status import gather

READERS: dict[str, Callable[[PlanContext], dict[str, Any]]] = {
    "status": gather,  # it reports an unreachable repository in its document
    "runs": runs_document,
    "drills": drills_document,
}
