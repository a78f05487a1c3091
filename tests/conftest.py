"""Suite-wide hooks."""

from __future__ import annotations

import os
import time

import pytest

# Seconds each integration module took in a parallel run (2 workers, 2 cores). Modules run
# heaviest first, so that the workers finish together: the order changes nothing else.
MODULE_SECONDS = {
    "test_drill.py": 220,
    "test_backup.py": 185,
    "test_recover_kill.py": 180,
    "test_repositories.py": 140,
    "test_recover.py": 120,
    "test_backup_kill.py": 90,
    "test_testbed_stacks.py": 50,
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
