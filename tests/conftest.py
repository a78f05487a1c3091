"""Suite-wide hooks."""

from __future__ import annotations

import os
import time

import pytest


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
