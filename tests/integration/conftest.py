"""Integration fixtures: the real two-site testbed (scripts/testbed), shared by all tests."""

from __future__ import annotations

import uuid

import pytest

from testbed import sites


@pytest.fixture(scope="session")
def testbed() -> dict[str, str]:
    """{site: DOCKER_HOST} for the running primary and recovery engines."""
    found = sites.up()
    assert set(found) == {"primary", "recovery"}, f"testbed up printed {found}"
    return found


@pytest.fixture
def unique_name():
    """A stack name no other test uses (stacks are named per test, cleaned in fixtures)."""

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:6]}"

    return make
