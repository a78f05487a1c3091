"""The RPO watch: for every service, how old its newest complete run is against its RPO.

Pure: it reads what `drplan status --json` said (the repository's newest complete run per
service, stored as the `status` fact) and the clock, so the age keeps growing between two
reads of the repository and an alert does not wait for the next backup to fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

OK, AT_RISK, BREACHED, NO_BACKUP = "ok", "at_risk", "breached", "no_backup"


@dataclass(frozen=True)
class ServiceRpo:
    service: str
    recovery_point: float | None  # epoch seconds of the newest complete run's point
    objective_s: float | None
    age_s: float | None
    state: str  # ok | at_risk | breached | no_backup

    @property
    def ratio(self) -> float | None:
        if self.age_s is None or not self.objective_s:
            return None
        return self.age_s / self.objective_s


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def watch(status: dict | None, now: float, warning: float = 0.8) -> list[ServiceRpo]:
    """Each service's RPO state from a `drplan status --json` document."""
    out = []
    for svc in (status or {}).get("services", []):
        point = parse_time(svc.get("recovery_point"))
        objective = svc.get("rpo_objective_s")
        age = None if point is None else max(0.0, now - point)
        if age is None:
            state = NO_BACKUP
        elif objective and age > objective:
            state = BREACHED
        elif objective and age >= warning * objective:
            state = AT_RISK
        else:
            state = OK
        out.append(ServiceRpo(svc["service"], point, objective, age, state))
    return out
