"""Waves, critical path and estimated RTO of a set of steps (stdlib ``graphlib``).

Waves are topological generations: every step of a wave can run in parallel once the
previous waves are done. The timing model is "as soon as possible with unlimited
parallelism": a step starts when the last of its ``after`` steps finishes. The critical
path is the chain of steps that determines the end, and its length is the estimated RTO.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from drplan.errors import InputError
from drplan.plan import model as m
from drplan.plan.graph import FULL_PROFILE, profile_services
from drplan.schedule.estimate import Estimator
from drplan.schedule.steps import Step, StepKind, build_steps


@dataclass
class Schedule:
    """A recovery schedule: steps with their order, timing and critical path."""

    steps: dict[str, Step]
    waves: list[list[str]]
    start_s: dict[str, float]
    finish_s: dict[str, float]
    critical_path: list[str]
    estimated_rto_s: float
    objective_rto_s: float | None = None
    profile: str = FULL_PROFILE
    services: list[str] = field(default_factory=list)
    closure_added: list[str] = field(default_factory=list)
    service_objective_rto_s: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_steps(cls, steps: Iterable[Step], **kw: Any) -> Schedule:
        """Compute waves and timing of any set of steps (ids must be unique, acyclic)."""
        by_id: dict[str, Step] = {}
        for step in steps:
            if step.id in by_id:
                raise InputError(f"duplicate step id {step.id!r}")
            by_id[step.id] = step
        for step in by_id.values():
            missing = [a for a in step.after if a not in by_id]
            if missing:
                raise InputError(f"step {step.id!r} runs after unknown steps {sorted(missing)}")
        sorter = graphlib.TopologicalSorter({s.id: s.after for s in by_id.values()})
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = exc.args[1] if len(exc.args) > 1 else []
            raise InputError("steps form a cycle: " + "→".join(map(str, cycle))) from None
        waves: list[list[str]] = []
        start: dict[str, float] = {}
        finish: dict[str, float] = {}
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            waves.append(ready)
            for sid in ready:
                step = by_id[sid]
                start[sid] = max((finish[a] for a in step.after), default=0.0)
                finish[sid] = start[sid] + step.estimate_s
            sorter.done(*ready)
        path: list[str] = []
        if finish:
            cur: str | None = max(finish, key=lambda s: (finish[s], s))
            while cur is not None:
                path.append(cur)
                preds = by_id[cur].after
                cur = max(preds, key=lambda s: (finish[s], s)) if preds else None
            path.reverse()
        rto = max(finish.values(), default=0.0)
        return cls(by_id, waves, start, finish, path, rto, **kw)

    # -- views -----------------------------------------------------------------------

    def service_finish_s(self) -> dict[str, float]:
        """When each service is validated (its recovery time in this schedule)."""
        return {
            s.service: self.finish_s[s.id]
            for s in self.steps.values()
            if s.kind is StepKind.VALIDATE and s.service
        }

    def wave_of(self) -> dict[str, int]:
        """Step id → index of its wave."""
        return {sid: i for i, wave in enumerate(self.waves) for sid in wave}

    def objective_met(self) -> bool | None:
        """Whether the estimate fits the objective (None without an objective)."""
        if self.objective_rto_s is None:
            return None
        return self.estimated_rto_s <= self.objective_rto_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``drplan plan --json`` prints)."""
        critical = set(self.critical_path)
        finish = self.service_finish_s()
        steps = []
        for sid, step in self.steps.items():
            d = step.to_dict()
            d["start_s"] = round(self.start_s[sid], 3)
            d["finish_s"] = round(self.finish_s[sid], 3)
            d["on_critical_path"] = sid in critical
            steps.append(d)
        return {
            "profile": self.profile,
            "services": self.services,
            "closure_added": self.closure_added,
            "steps": steps,
            "waves": self.waves,
            "critical_path": self.critical_path,
            "estimated_rto_s": round(self.estimated_rto_s, 3),
            "objective_rto_s": self.objective_rto_s,
            "objective_met": self.objective_met(),
            "service_rto": {
                name: {
                    "estimated_s": round(finish[name], 3) if name in finish else None,
                    "objective_s": self.service_objective_rto_s.get(name),
                }
                for name in self.services
            },
        }


def build_schedule(
    plan: m.Plan,
    profile: str | None = None,
    estimator: Estimator | None = None,
) -> Schedule:
    """The recovery schedule of ``plan`` for a profile (default ``full``).

    The plan should have passed validation (no unknown names, no cycles); an unknown
    profile or a cycle raises :class:`~drplan.errors.InputError`.
    """
    name = profile or FULL_PROFILE
    if name != FULL_PROFILE and name not in plan.profiles:
        known = ", ".join([FULL_PROFILE, *plan.profiles])
        raise InputError(f"unknown profile {name!r} (known: {known})")
    services, added = profile_services(plan, name)
    steps = build_steps(plan, services, estimator)
    objective = plan.objectives.rto
    if name != FULL_PROFILE and plan.profiles[name].objectives.rto is not None:
        objective = plan.profiles[name].objectives.rto
    return Schedule.from_steps(
        steps,
        objective_rto_s=objective,
        profile=name,
        services=services,
        closure_added=added,
        service_objective_rto_s={s: plan.effective_objective(s, "rto")[0] for s in services},
    )
