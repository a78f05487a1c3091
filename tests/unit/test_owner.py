"""Helpers and restic locks are removed only when their owner is provably dead (threat
model, class 8): the same host and boot, and no process with that pid and start time."""

from __future__ import annotations

import subprocess

from drplan import owner


def _dead_owner() -> owner.Owner:
    proc = subprocess.Popen(["sleep", "30"])
    start = owner.start_time(proc.pid)
    proc.kill()
    proc.wait()
    me = owner.current()
    return owner.Owner(me.host, me.boot, proc.pid, start or "1")


def test_a_live_process_of_this_host_is_not_dead():
    live = subprocess.Popen(["sleep", "30"])
    try:
        me = owner.current()
        other = owner.Owner(me.host, me.boot, live.pid, owner.start_time(live.pid) or "")
        assert not other.is_dead()
        assert not owner.removable(other.label())
    finally:
        live.kill()
        live.wait()


def test_a_dead_process_of_this_host_and_boot_is_dead():
    assert owner.removable(_dead_owner().label())


def test_this_process_may_remove_its_own_leftovers():
    assert owner.removable(owner.current().label())


def test_another_host_or_boot_is_never_provably_dead():
    dead = _dead_owner()
    assert not owner.removable(owner.Owner("elsewhere", dead.boot, dead.pid, dead.start).label())
    assert not owner.removable(owner.Owner(dead.host, "otherboot", dead.pid, dead.start).label())


def test_a_missing_or_garbled_label_is_left_alone():
    assert not owner.removable(None)
    assert not owner.removable("garbage")
    assert not owner.removable("h/b/notapid/1")


def test_a_reused_pid_with_another_start_time_is_dead():
    me = owner.current()
    assert owner.Owner(me.host, me.boot, me.pid, "1").is_dead()


def test_locks_taken_in_helpers_name_their_drplan_process():
    dead = _dead_owner()
    host = f"drplan-{dead.boot[:12]}-{dead.pid}-{dead.start}"
    assert owner.lock_is_dead({"hostname": host, "pid": 7})
    assert not owner.lock_is_dead({"hostname": owner.helper_hostname(), "pid": 7})
    assert not owner.lock_is_dead({"hostname": f"drplan-ffffffffffff-{dead.pid}-{dead.start}"})


def test_host_locks_follow_restic_s_own_rule():
    me = owner.current()
    dead = _dead_owner()
    assert owner.lock_is_dead({"hostname": me.host, "pid": dead.pid})
    assert not owner.lock_is_dead({"hostname": me.host, "pid": me.pid})
    assert not owner.lock_is_dead({"hostname": "another-host", "pid": dead.pid})
