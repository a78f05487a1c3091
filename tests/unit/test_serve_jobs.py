"""A job of the daemon (drplan.serve.jobs.Child) stops whole: its own children too, so
none of them keeps the job's output pipes open and the daemon waiting (a `drplan check`
killed by SIGTERM used to leave its restic running to the end)."""

from __future__ import annotations

import sys
import threading
import time

from drplan.serve.jobs import Child

# a job that ignores SIGTERM and whose child (holding the same pipes) ignores it too
STUBBORN = (
    "import signal, subprocess, sys, time;"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)']);"
    "print('started', flush=True); time.sleep(300)"
)
# a job that dies on SIGTERM at once, leaving a grandchild that would sleep on
ORPHANING = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);"
    "print('started', flush=True); time.sleep(300)"
)


def _stop_after_start(child: Child, grace: float) -> float:
    time.sleep(1.0)  # let it start its own child
    t0 = time.monotonic()
    threading.Thread(target=child.stop, args=(grace,), daemon=True).start()
    outcome = child.wait(timeout=60)
    assert outcome.interrupted and not outcome.ok
    return time.monotonic() - t0


def test_a_job_that_ignores_sigterm_is_killed_with_its_children_after_the_grace():
    took = _stop_after_start(Child([sys.executable, "-c", STUBBORN]), grace=2.0)
    assert 1.5 < took < 20, took


def test_a_job_killed_at_once_does_not_leave_its_child_holding_the_pipes():
    took = _stop_after_start(Child([sys.executable, "-c", ORPHANING]), grace=30.0)
    assert took < 10, took  # the grandchild got the group's SIGTERM too
