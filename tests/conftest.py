"""Suite-wide hooks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# Seconds each integration module took in a parallel run (3 workers, 2 cores). Modules are
# handed to the workers heaviest first (`--no-loadscope-reorder` keeps this order), so that
# the workers finish together: the order changes nothing else.
MODULE_SECONDS = {
    "test_drill.py": 335,
    "test_backup.py": 270,
    "test_recover_kill.py": 250,
    "test_recover.py": 240,
    "test_repositories.py": 145,
    "test_backup_kill.py": 100,
    "test_testbed_stacks.py": 60,
    "test_backup_errors.py": 15,
    "test_testbed_lifecycle.py": 10,  # and the exclusive modules, in their own session
    "test_recover_primary_down.py": 90,
}


def pytest_collection_modifyitems(session, config, items):
    # stable: each module keeps its own order
    items.sort(key=lambda item: _weight(item.path), reverse=True)


def _weight(path: Path) -> int:
    if "integration" not in path.parts:
        return 0
    return MODULE_SECONDS.get(path.name, 60)  # a new module: a guess


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, handing a worker its next module only when it is about to idle.

    A worker runs a test only once it knows the next one (for fixture teardown), and
    xdist queues more work as soon as a worker has two tests left. Integration modules have
    a few long tests, so whole modules were queued behind running ones while another
    worker had nothing left. Here a worker gets work when it holds one last test; if that
    test is a long one (an integration module's), it first gets a quick unit-test module,
    so that the next long module is handed out when a worker is really free.
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

        def _assign_work_unit(self, node) -> None:
            held = [
                scope
                for scope, unit in self.assigned_work.get(node, {}).items()
                if not all(unit.values())
            ]
            lightest = next(reversed(self.workqueue))
            if held and _weight(Path(held[0])) and not _weight(Path(lightest)):
                self.workqueue.move_to_end(lightest, last=False)
            super()._assign_work_unit(node)

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
