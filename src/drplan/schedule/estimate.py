"""How long each recovery step should take, before and after the first drill.

Order of preference for a step's estimate:

1. **history**: the measured duration of the same step id in previous runs (drills or
   real recoveries), given as a mapping ``step id → seconds`` (a later issue fills it from
   the restic repository);
2. **size**: for restores with a ``size_hint``, a fixed overhead plus size divided by a
   default throughput of the engine/method (table below);
3. **default**: a fixed per-kind duration.

Default throughputs are conservative figures for a restore from a restic repository on
local disks or a LAN (restic restore ≈ 150 MB/s for plain files; a native dump reload
is bound by index rebuilds, ≈ 30 MB/s for PostgreSQL/MariaDB). They are deliberately
pessimistic: an RTO estimate should be beaten by the first drill, not missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from drplan.sources import registry

MB = 10**6

#: Fixed durations (seconds) per step kind when nothing better is known.
DEFAULT_FIXED_S: dict[str, float] = {
    "prepare-site": 30.0,  # connect, create networks/secrets/configs
    "load-images": 60.0,  # docker load of the saved images (or pull)
    "create-volumes": 10.0,
    "restore": 20.0,  # per-source overhead: snapshot lookup, helper container
    "start": 10.0,
    "health": 15.0,
    "validate": 5.0,  # per check
}

#: Restore throughput (bytes/s) by (engine, method); ``*`` matches any engine. A dump's
#: figure is its engine's own (``Engine.restore_bps``, e.g. 30 MB/s for a PostgreSQL or
#: MariaDB replay, bound by index rebuilds); a cold copy is a restic restore of files.
DEFAULT_THROUGHPUT_BPS: dict[tuple[str, str], float] = {
    ("*", "cold"): 150 * MB,
    **{(name, "dump"): e.restore_bps for name, e in registry.catalog().items()},
}

#: A restore whose size is unknown (no history, no size_hint).
UNKNOWN_SIZE_RESTORE_S = 120.0


@dataclass
class Estimator:
    """Estimates step durations from history, then sizes, then defaults.

    >>> Estimator({"start:web": 42.0}).estimate("start:web", "start")
    (42.0, 'history')
    """

    history: Mapping[str, float] = field(default_factory=dict)
    fixed: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FIXED_S))
    throughput: Mapping[tuple[str, str], float] = field(
        default_factory=lambda: dict(DEFAULT_THROUGHPUT_BPS)
    )
    unknown_size_restore_s: float = UNKNOWN_SIZE_RESTORE_S

    def estimate(
        self,
        step_id: str,
        kind: str,
        *,
        engine: str | None = None,
        method: str | None = None,
        size_bytes: int | None = None,
        checks: int = 1,
    ) -> tuple[float, str]:
        """Seconds for one step and the basis of the figure (history, size, default)."""
        past = self.history.get(step_id)
        if past is not None and past >= 0:
            return float(past), "history"
        if kind == "restore":
            if size_bytes is None:
                return self.unknown_size_restore_s, "default"
            rate = (
                self.throughput.get((engine or "files", method or "dump"))
                or _engine_rate(engine, method)
                or self.throughput.get(("*", method or "dump"), 150 * MB)
            )
            return self.fixed.get("restore", 20.0) + size_bytes / rate, "size"
        base = self.fixed.get(kind, 10.0)
        if kind == "validate":
            return base * max(1, checks), "default"
        return base, "default"


def _engine_rate(engine: str | None, method: str | None) -> float | None:
    """The dump throughput an engine states, for one the default table does not list
    (an engine added after this module was imported)."""
    found = registry.find(engine) if engine and (method or "dump") == "dump" else None
    return found.restore_bps if found is not None else None
