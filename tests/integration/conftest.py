"""Integration fixtures: the real two-site testbed (scripts/testbed), shared by all tests.

Test sessions share the engines. Each holds a shared lock on the suite's lock file for as
long as it runs; a test marked `exclusive` (it stops or restarts an engine) takes the lock
exclusively, so it runs only once no other session is using the engines. That lets the
README's test command start the exclusive tests beside the parallel ones: they prepare
(deploy, back up) at the same time and stop engines only when the others are done.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

import pytest
import pytest_timeout

from testbed import sites

SUITE_LOCK = Path(os.environ.get("DRPLAN_TESTBED_RUN", "/run/drplan")) / ".suite.lock"


@pytest.fixture(scope="session")
def suite_lock():
    SUITE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(SUITE_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        yield fh


@pytest.fixture(scope="session")
def testbed(suite_lock) -> dict[str, str]:
    """{site: DOCKER_HOST} for the running primary and recovery engines."""
    found = sites.up()
    assert set(found) == {"primary", "recovery"}, f"testbed up printed {found}"
    return found


@pytest.fixture(autouse=True)
def _engines_alone(request, suite_lock):
    """An `exclusive` test waits until every other test session has finished."""
    if request.node.get_closest_marker("exclusive") is None:
        yield
        return
    fcntl.flock(suite_lock, fcntl.LOCK_UN)  # released first: two such tests cannot deadlock
    # The wait for the others is not the test's time: its hang guard (pytest-timeout)
    # is stopped while waiting and started afresh once the engines are its alone. On a
    # slow machine the parallel pass alone takes longer than one test's guard.
    hook = request.config.hook
    timed = hasattr(hook, "pytest_timeout_set_timer")
    if timed:
        hook.pytest_timeout_cancel_timer(item=request.node)
    fcntl.flock(suite_lock, fcntl.LOCK_EX)
    if timed:
        hook.pytest_timeout_set_timer(
            item=request.node, settings=pytest_timeout._get_item_settings(request.node)
        )
    try:
        yield
    finally:
        fcntl.flock(suite_lock, fcntl.LOCK_SH)


@pytest.fixture
def unique_name():
    """A stack name no other test uses (stacks are named per test, cleaned in fixtures)."""

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:6]}"

    return make
