"""Suite-wide hooks."""

from __future__ import annotations

import os
import time

import pytest

# Seconds each integration module took in a parallel run (3 workers, 2 cores). Modules are
# handed to the workers heaviest first (`--no-loadscope-reorder` keeps this order), so that
# the workers finish together: the order changes nothing else.
MODULE_SECONDS = {
    "test_drill.py": 310,
    "test_backup.py": 260,
    "test_recover.py": 225,
    "test_recover_kill.py": 200,
    "test_repositories.py": 145,
    "test_backup_kill.py": 100,
    "test_testbed_stacks.py": 60,
    "test_backup_errors.py": 15,
    "test_testbed_lifecycle.py": 10,  # and the exclusive modules, in their own session
    "test_recover_primary_down.py": 90,
}


def pytest_collection_modifyitems(session, config, items):
    def weight(item) -> int:
        if "integration" not in item.path.parts:
            return 0
        return MODULE_SECONDS.get(item.path.name, 60)  # a new module: a guess

    items.sort(key=weight, reverse=True)  # stable: each module keeps its own order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, handing a worker its next module only when it is about to idle.

    xdist gives a worker more work as soon as it has two tests left; an integration module
    has a few long tests, so whole modules were queued behind running ones while another
    worker had nothing left to do. A worker runs a test once it knows the next one, so
    one pending test means it is waiting: that is when it gets the next module.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class JustInTime(LoadFileScheduling):
        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) <= 1:
                self._assign_work_unit(node)

    return JustInTime(config, log)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With DRPLAN_TEST_TIMING=FILE, append each test's worker, start, end and id to
    FILE.tests (setup and teardown included): where the suite's wall time goes."""
    t0 = time.time()
    yield
    path = os.environ.get("DRPLAN_TEST_TIMING")
    if path:
        with open(f"{path}.tests", "a") as fh:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            fh.write(f"{worker} {t0:.1f} {time.time():.1f} {item.nodeid}\n")
