"""The functional dependency graph of a plan's services: closure, cycles, profiles, depth.

Recovery order, degraded profiles and tier guesses all derive from ``depends_on``; this
module is the one place that walks it. Unknown names are ignored here (validation
reports them), so every function is total on any plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FULL_PROFILE = "full"


class DependencyGraph:
    """Service → the services it depends on (only known services kept)."""

    def __init__(self, deps: Mapping[str, Iterable[str]]) -> None:
        names = set(deps)
        self.deps: dict[str, list[str]] = {
            name: list(dict.fromkeys(d for d in ds if d in names and d != name))
            for name, ds in deps.items()
        }

    @classmethod
    def from_plan(cls, plan: object) -> DependencyGraph:
        """Build from a :class:`~drplan.plan.model.Plan`."""
        services = plan.services  # type: ignore[attr-defined]
        return cls({name: svc.depends_on for name, svc in services.items()})

    def closure(self, roots: Iterable[str]) -> set[str]:
        """The given services and everything they depend on, transitively."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.deps]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.deps[name])
        return seen

    def dependents(self) -> dict[str, set[str]]:
        """Service → the services that depend on it directly."""
        out: dict[str, set[str]] = {n: set() for n in self.deps}
        for name, ds in self.deps.items():
            for d in ds:
                out[d].add(name)
        return out

    def cycles(self) -> list[list[str]]:
        """Elementary cycles found by DFS, each as ``[a, b, a]``, one per back edge.

        Every cycle in the graph shares at least one back edge with a reported one, so
        fixing the reported cycles removes them all. Iterative: no recursion limit.
        """
        white, grey, black = 0, 1, 2
        color = dict.fromkeys(self.deps, white)
        found: list[list[str]] = []
        seen_cycles: set[frozenset[str]] = set()
        for start in self.deps:
            if color[start] != white:
                continue
            path: list[str] = [start]
            iters = [iter(self.deps[start])]
            color[start] = grey
            while iters:
                nxt = next(iters[-1], None)
                if nxt is None:
                    color[path.pop()] = black
                    iters.pop()
                    continue
                if color[nxt] == white:
                    color[nxt] = grey
                    path.append(nxt)
                    iters.append(iter(self.deps[nxt]))
                elif color[nxt] == grey:
                    cycle = [*path[path.index(nxt) :], nxt]
                    key = frozenset(cycle)
                    if key not in seen_cycles:
                        seen_cycles.add(key)
                        found.append(cycle)
        return found

    def height(self) -> dict[str, int]:
        """Longest dependency chain below each service (0 = depends on nothing).

        Cycles are broken arbitrarily; callers validate acyclicity first when it matters.
        """
        memo: dict[str, int] = {}
        for start in self.deps:
            stack: list[tuple[str, bool]] = [(start, False)]
            onpath: set[str] = set()
            while stack:
                name, done = stack.pop()
                if done:
                    onpath.discard(name)
                    memo[name] = 1 + max(
                        (memo.get(d, 0) for d in self.deps[name] if d not in onpath), default=-1
                    )
                    continue
                if name in memo or name in onpath:
                    continue
                onpath.add(name)
                stack.append((name, True))
                stack.extend((d, False) for d in self.deps[name] if d not in memo)
        return memo


def profile_services(plan: object, profile: str | None) -> tuple[list[str], list[str]]:
    """Services a profile brings back (closure of its list) and those the closure added.

    ``None`` or ``"full"`` is every service. Unknown profile names raise ``KeyError``.
    """
    services = plan.services  # type: ignore[attr-defined]
    if profile in (None, FULL_PROFILE):
        return list(services), []
    prof = plan.profiles[profile]  # type: ignore[attr-defined]
    graph = DependencyGraph.from_plan(plan)
    closure = graph.closure(prof.services)
    ordered = [s for s in services if s in closure]
    added = [s for s in ordered if s not in prof.services]
    return ordered, added
