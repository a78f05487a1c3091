"""A recovery killed with SIGKILL at random moments completes when run again."""

from __future__ import annotations

import pytest

from tests.integration.kill_trials import TRIALS, recovery_trials
from tests.integration.recovery_helpers import backed_fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backed(testbed, tmp_path_factory):
    yield from backed_fixture(testbed, tmp_path_factory, ("helpdesk",))


# ten trials, each a whole run: the hang guard scales with that work, not one test's
@pytest.mark.timeout(3600)
def test_sigkill_at_random_moments_then_the_same_command_completes(testbed, backed, tmp_path):
    recovery_trials(testbed, backed["helpdesk"], tmp_path, TRIALS)
