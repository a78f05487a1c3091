"""The steps of a recovery, derived from the plan: what runs, after what, for how long.

Order rules (the recovery executor relies on them):

* ``prepare-site`` once, first; then ``load-images`` and ``create-volumes`` (once each);
* ``restore:<service>/<source>`` per data source. File-level restores (files, redis RDB,
  sqlite, anything backed up cold) write into the fresh volume before the service starts.
  Dumps whose engine replays them into the service's own server (its
  ``restores_into_server``: postgresql, mariadb/mysql) run after its ``health:``, so
  the database runs with its own image, configuration, secrets and network, exactly as
  in production;
* ``start:<service>`` after its file-level restores and, for every dependency in the
  recovered set, that dependency's ``health:`` and dump restores (a dependency is ready
  when its data is back, not merely when it answers);
* ``health:<service>`` after its start; ``validate:<service>`` after its health and its
  own dump restores.
* only for a service with such hooks (drplan.actions.hooks runs them):
  ``before-restore:<service>`` before every restore of the service (after
  ``load-images`` and ``create-volumes`` when it has files to put back, or no data, and
  then before its start too; after its ``health:`` when all its data is replayed into its
  running server); ``after-restore:<service>`` after all its restores and its health,
  before its ``validate:`` and before the services depending on it start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from drplan.plan import model as m
from drplan.plan.graph import DependencyGraph
from drplan.schedule.estimate import Estimator
from drplan.sources import registry


class StepKind(StrEnum):
    """Kinds of recovery steps."""

    PREPARE_SITE = "prepare-site"
    LOAD_IMAGES = "load-images"
    CREATE_VOLUMES = "create-volumes"
    RESTORE = "restore"
    START = "start"
    HEALTH = "health"
    VALIDATE = "validate"
    BEFORE_RESTORE = "before-restore"
    AFTER_RESTORE = "after-restore"


#: Minimum time limits per kind (seconds); a step's timeout is the larger of this and
#: ``TIMEOUT_FACTOR`` times its estimate.
MIN_TIMEOUT_S: dict[str, float] = {
    "prepare-site": 300.0,
    "load-images": 1800.0,
    "create-volumes": 120.0,
    "restore": 600.0,
    "start": 300.0,
    "health": 300.0,
    "validate": 120.0,
    "before-restore": 60.0,
    "after-restore": 60.0,
}
TIMEOUT_FACTOR = 3.0
#: How long a hook may wait for a running container of its service (drplan.actions.hooks).
HOOK_CONTAINER_WAIT_S = 120.0


@dataclass(frozen=True)
class Step:
    """One step of the recovery schedule."""

    id: str
    kind: StepKind
    service: str | None = None
    source: str | None = None
    after: frozenset[str] = field(default_factory=frozenset)
    estimate_s: float = 0.0
    estimate_basis: str = "default"
    critical: bool = True
    timeout_s: float = 300.0
    tier: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``after`` sorted)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "service": self.service,
            "source": self.source,
            "after": sorted(self.after),
            "estimate_s": round(self.estimate_s, 3),
            "estimate_basis": self.estimate_basis,
            "critical": self.critical,
            "timeout_s": round(self.timeout_s, 3),
            "tier": self.tier,
        }


def restores_into_server(src: m.DataSource) -> bool:
    """A dump replayed into the running database server (vs files written into a volume):
    the source's engine says (``Engine.restores_into_server``)."""
    return src.method == "dump" and registry.engine(src.engine).restores_into_server


def _check_budget(check: Any) -> float:
    return float(check.retries) * (float(check.timeout) + float(check.interval))


def _hooks_budget(hooks: list[m.Hook]) -> float:
    """Time limit of a hook step: every hook's own, plus a wait for a container each."""
    return sum(float(h.timeout) + HOOK_CONTAINER_WAIT_S for h in hooks)


def _timeout(kind: str, estimate: float, floor: float = 0.0) -> float:
    return max(MIN_TIMEOUT_S[kind], TIMEOUT_FACTOR * estimate, floor)


def build_steps(
    plan: m.Plan,
    services: list[str] | None = None,
    estimator: Estimator | None = None,
) -> list[Step]:
    """Steps to recover ``services`` (default: all) of ``plan``, in a stable order.

    Dependencies outside ``services`` are ignored (a profile is expected to be closed;
    see :func:`drplan.plan.graph.profile_services`).
    """
    est = estimator or Estimator()
    chosen = (
        list(plan.services) if services is None else [s for s in services if s in plan.services]
    )
    chosen_set = set(chosen)
    graph = DependencyGraph.from_plan(plan)
    steps: list[Step] = []

    def add(step_id: str, kind: StepKind, after: set[str], **kw: Any) -> None:
        estimate, basis = est.estimate(
            step_id,
            kind.value,
            engine=kw.pop("engine", None),
            method=kw.pop("method", None),
            size_bytes=kw.pop("size_bytes", None),
            checks=kw.pop("checks", 1),
        )
        floor = kw.pop("floor", 0.0)
        steps.append(
            Step(
                id=step_id,
                kind=kind,
                after=frozenset(after),
                estimate_s=estimate,
                estimate_basis=basis,
                timeout_s=_timeout(kind.value, estimate, floor),
                **kw,
            )
        )

    add("prepare-site", StepKind.PREPARE_SITE, set())
    add("load-images", StepKind.LOAD_IMAGES, {"prepare-site"})
    add("create-volumes", StepKind.CREATE_VOLUMES, {"prepare-site"})
    base = {"load-images", "create-volumes"}
    ready: dict[str, set[str]] = {}
    for name in chosen:
        svc = plan.services[name]
        ready[name] = {f"health:{name}"} | {
            f"restore:{name}/{d}" for d, src in svc.data.items() if restores_into_server(src)
        }
        if svc.hooks.after_restore:
            ready[name].add(f"after-restore:{name}")
    for name in chosen:
        svc = plan.services[name]
        common = {"service": name, "critical": svc.critical, "tier": svc.tier}
        hooks = svc.hooks
        pre = {f"before-restore:{name}"} if hooks.before_restore else set()
        in_volumes = not svc.data or not all(map(restores_into_server, svc.data.values()))
        if pre:
            add(
                f"before-restore:{name}",
                StepKind.BEFORE_RESTORE,
                set(base) if in_volumes else {f"health:{name}"},
                floor=_hooks_budget(hooks.before_restore),
                **common,
            )
        before_start = set(pre) if in_volumes else set()
        for dname, src in svc.data.items():
            rid = f"restore:{name}/{dname}"
            into_server = restores_into_server(src)
            if not into_server:
                before_start.add(rid)
            add(
                rid,
                StepKind.RESTORE,
                ({f"health:{name}"} if into_server else set(base)) | pre,
                source=dname,
                engine=src.engine,
                method=src.method,
                size_bytes=src.size_hint,
                **common,
            )
        deps: set[str] = set()
        for d in graph.deps.get(name, []):
            if d in chosen_set:
                deps |= ready[d]
        add(f"start:{name}", StepKind.START, (before_start or set(base)) | deps, **common)
        add(
            f"health:{name}",
            StepKind.HEALTH,
            {f"start:{name}"},
            floor=_check_budget(svc.health) if svc.health else 0.0,
            **common,
        )
        if hooks.after_restore:
            add(
                f"after-restore:{name}",
                StepKind.AFTER_RESTORE,
                ready[name] - {f"after-restore:{name}"},
                floor=_hooks_budget(hooks.after_restore),
                **common,
            )
        add(
            f"validate:{name}",
            StepKind.VALIDATE,
            ready[name],
            checks=len(svc.checks),
            floor=sum(_check_budget(c) for c in svc.checks),
            **common,
        )
    return steps
