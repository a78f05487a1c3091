"""`drplan backup` killed with SIGKILL at random moments never harms the repository.

The run's duration is measured first, then each trial kills the real CLI process after a
random delay within it. After every trial: earlier runs are still listed, complete, with
every snapshot present; the interrupted run is never listed as complete unless it had
already committed its manifest (the last snapshot of a run). At the end `drplan check`
passes and the next backup succeeds, as drplan removes what killed runs leave (helper
containers, stale restic locks; the host lock is an flock that dies with its process).
"""

from __future__ import annotations

import uuid

import pytest

from testbed import generator, plans, sites
from tests.integration.kill_trials import TRIALS, backup_trials

pytestmark = pytest.mark.integration


# ten trials, each a whole run: the hang guard scales with that work, not one test's
@pytest.mark.timeout(3600)
def test_sigkill_at_random_moments_leaves_earlier_runs_intact(testbed, tmp_path):
    url = testbed["primary"]
    tp = plans.adapt("helpdesk", tmp_path, name=f"bkkill{uuid.uuid4().hex[:6]}")
    plans.deploy(url, tp)
    try:
        generator.populate(sites.client(url), "helpdesk", tp.name, generator.Size.small())
        plans.ok("repo", "init", tp.path)
        plans.ok("backup", tp.path)  # the first run stores the images once
        backup_trials(url, tp, TRIALS)
    finally:
        plans.remove(url, tp)
