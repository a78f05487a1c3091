"""When each of a plan's jobs is due: pure arithmetic on the plan and what happened.

A job is due when its slot has come and no success covers it: a backup `every: 6h` is due
6 h after the start of the last good one; `daily_at: "03:00"` is due from 03:00 until a
backup starts after it. So a run missed while the daemon was down is caught up at once
on start, and only once (one slot, not one per missed interval). The last success comes
from the daemon's records or, when they are empty or older, from the repository (the
truth: a new daemon next to an old repository does not back up at once for nothing).

A failed attempt is retried with a doubling backoff (1, 2, 4 ... minutes, capped at one
hour and at the job's interval), as long as the job is due.

Copies follow backups (a run not yet in the off-site repositories is due at once);
retention, checks and drills run on their own cadence, never before the first backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from drplan.plan import model as m

JOBS = ("backup", "copy", "prune", "check", "drill")
MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True)
class History:
    """What is known of one job of one plan (times are epoch seconds)."""

    last_ok_start: float | None = None
    last_ok_end: float | None = None
    last_failure_end: float | None = None  # end of the newest failed attempt
    failures: int = 0  # consecutive failed attempts since the last success


def backoff(failures: int, interval: float) -> float:
    """Pause before retry number `failures` (1 = the first retry)."""
    if failures <= 0:
        return 0.0
    return min(60.0 * 2 ** (failures - 1), MAX_BACKOFF_S, max(60.0, interval))


def daily_slot(at: str, now: float) -> tuple[float, float]:
    """The newest `HH:MM` slot at or before `now` (local time) and the next one."""
    hour, minute = (int(x) for x in at.split(":"))
    local = datetime.fromtimestamp(now).astimezone()
    slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if slot > local:
        slot -= timedelta(days=1)
    return slot.timestamp(), (slot + timedelta(days=1)).timestamp()


def backup_due(schedule: m.BackupSchedule, last_ok_start: float | None, now: float) -> float:
    """When the next backup is due (`<= now`: now)."""
    if schedule.daily_at is not None:
        slot, following = daily_slot(schedule.daily_at, now)
        return slot if last_ok_start is None or last_ok_start < slot else following
    assert schedule.every is not None
    return now if last_ok_start is None else last_ok_start + schedule.every


def _interval(plan: m.Plan, job: str) -> float:
    return {
        "backup": plan.backup.schedule.interval_s,
        "copy": plan.backup.schedule.interval_s,
        "prune": plan.backup.prune_every,
        "check": plan.backup.check.every,
        "drill": plan.drills.every or 86400.0,
    }[job]


def due(
    plan: m.Plan, job: str, history: dict[str, History], now: float, *, has_copies: bool
) -> float | None:
    """When `job` is next due, or None when nothing makes it due (no copy repository, no
    drill cadence, nothing backed up yet)."""
    h = history.get(job, History())
    backup = history.get("backup", History())
    when: float | None
    if job == "backup":
        when = backup_due(plan.backup.schedule, h.last_ok_start, now)
    elif backup.last_ok_end is None:
        return None  # copies, retention, checks and drills need a first backup
    elif job == "copy":
        if not (plan.backup.copy_offsite and has_copies):
            return None
        covered = h.last_ok_start is not None and h.last_ok_start >= backup.last_ok_end
        when = None if covered else backup.last_ok_end
    elif job == "drill" and plan.drills.every is None:
        return None
    else:
        every = _interval(plan, job)
        when = backup.last_ok_end if h.last_ok_start is None else h.last_ok_start + every
    if when is None:
        return None
    if h.failures and h.last_failure_end is not None:
        when = max(when, h.last_failure_end + backoff(h.failures, _interval(plan, job)))
    return when


def next_jobs(
    plan: m.Plan, history: dict[str, History], now: float, *, has_copies: bool
) -> dict[str, float]:
    """Every job that will become due, with when (due now or in the past: run it)."""
    out = {}
    for job in JOBS:
        when = due(plan, job, history, now, has_copies=has_copies)
        if when is not None:
            out[job] = when
    return out
