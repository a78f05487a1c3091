"""When `drplan serve` runs each job (drplan.serve.cadence): slots, catch-up, backoff,
copies after backups, nothing before the first backup."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from drplan.plan import model as m
from drplan.serve import cadence
from drplan.serve.cadence import History


def plan(**backup) -> m.Plan:
    doc = {
        "stack": {"name": "s", "compose": "compose.yml"},
        "sites": {
            "a": {"role": "primary", "docker_host": "unix:///a.sock"},
            "b": {"role": "recovery", "docker_host": "unix:///b.sock"},
        },
        "repositories": {"r": {"url": "/tmp/r", "role": "primary", "password": {"env": "P"}}},
        "services": {"web": {}},
        "backup": {"schedule": {"every": "1h"}, **backup},
    }
    return m.Plan.model_validate(doc)


NOW = 1_800_000_000.0


def test_first_backup_is_due_at_once():
    assert cadence.due(plan(), "backup", {}, NOW, has_copies=False) == NOW


def test_every_counts_from_the_last_success():
    h = {"backup": History(last_ok_start=NOW - 600, last_ok_end=NOW - 590)}
    assert cadence.due(plan(), "backup", h, NOW, has_copies=False) == NOW - 600 + 3600


def test_a_missed_interval_is_due_now_once():
    # the daemon was down for 5 hours: one backup is due (in the past = now), not five
    h = {"backup": History(last_ok_start=NOW - 5 * 3600, last_ok_end=NOW - 5 * 3600 + 10)}
    when = cadence.due(plan(), "backup", h, NOW, has_copies=False)
    assert when is not None and when <= NOW
    ready = [j for j, t in cadence.next_jobs(plan(), h, NOW, has_copies=False).items() if t <= NOW]
    assert ready.count("backup") == 1


def test_daily_at_catches_up_the_missed_slot_then_waits_for_the_next():
    p = plan(schedule={"daily_at": "03:00"})
    local = datetime.fromtimestamp(NOW).astimezone()
    slot = local.replace(hour=3, minute=0, second=0, microsecond=0)
    if slot > local:
        slot -= timedelta(days=1)
    before = {"backup": History(last_ok_start=slot.timestamp() - 3600)}
    assert cadence.due(p, "backup", before, NOW, has_copies=False) == slot.timestamp()
    after = {"backup": History(last_ok_start=slot.timestamp() + 60)}
    assert cadence.due(p, "backup", after, NOW, has_copies=False) == (
        slot + timedelta(days=1)
    ).timestamp()


def test_failures_back_off_doubling_and_capped():
    assert cadence.backoff(1, 3600) == 60
    assert cadence.backoff(2, 3600) == 120
    assert cadence.backoff(3, 3600) == 240
    assert cadence.backoff(30, 86400) == cadence.MAX_BACKOFF_S
    assert cadence.backoff(10, 300) == 300  # never longer than the job's own interval
    h = {"backup": History(last_ok_start=NOW - 7200, last_failure_end=NOW - 30, failures=2)}
    assert cadence.due(plan(), "backup", h, NOW, has_copies=False) == NOW - 30 + 120


def test_nothing_but_backup_before_the_first_backup():
    p = plan(check={"every": "1m"})
    assert cadence.next_jobs(p, {}, NOW, has_copies=True) == {"backup": NOW}


def test_copy_follows_each_backup_when_there_is_an_offsite_repository():
    h = {"backup": History(last_ok_start=NOW - 100, last_ok_end=NOW - 90)}
    assert cadence.due(plan(), "copy", h, NOW, has_copies=True) == NOW - 90
    assert cadence.due(plan(), "copy", h, NOW, has_copies=False) is None
    assert cadence.due(plan(copy_offsite=False), "copy", h, NOW, has_copies=True) is None
    h["copy"] = History(last_ok_start=NOW - 80, last_ok_end=NOW - 70)
    assert cadence.due(plan(), "copy", h, NOW, has_copies=True) is None


def test_check_prune_and_drill_cadences():
    p = plan(check={"every": "7d"}, prune_every="1d")
    h = {"backup": History(last_ok_start=NOW - 100, last_ok_end=NOW - 90)}
    # never done: due right after the first backup
    assert cadence.due(p, "check", h, NOW, has_copies=False) == NOW - 90
    h["check"] = History(last_ok_start=NOW - 3600, last_ok_end=NOW - 3500)
    assert cadence.due(p, "check", h, NOW, has_copies=False) == NOW - 3600 + 7 * 86400
    h["prune"] = History(last_ok_start=NOW - 3600, last_ok_end=NOW - 3590)
    assert cadence.due(p, "prune", h, NOW, has_copies=False) == NOW - 3600 + 86400
    # no drill cadence in the plan: never
    assert cadence.due(p, "drill", h, NOW, has_copies=False) is None
    p.drills.every = 30 * 86400
    assert cadence.due(p, "drill", h, NOW, has_copies=False) == NOW - 90


@pytest.mark.parametrize(
    ("key", "value"),
    [("check", {"every": "30s"}), ("schedule", {"every": "10s"})],
)
def test_cadences_under_a_minute_are_refused(key, value):
    with pytest.raises(ValueError, match="more often than every minute"):
        plan(**{key: value})
