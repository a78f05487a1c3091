"""A recovery killed with SIGKILL at random moments completes when run again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from testbed import sites, stacks, verifier
from testbed.plans import DRPLAN, PASSWORD, ok, ok_json
from tests.integration.recovery_helpers import backed_fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backed(testbed, tmp_path_factory):
    yield from backed_fixture(testbed, tmp_path_factory, ("helpdesk",))


# ten trials, each a whole run: the hang guard scales with that work, not one test's
@pytest.mark.timeout(3600)
def test_sigkill_at_random_moments_then_the_same_command_completes(testbed, backed, tmp_path):
    b = backed["helpdesk"]
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    env = {**os.environ, "DRPLAN_REPO_PASSWORD": PASSWORD}
    # how long an uninterrupted recovery takes, to spread the kills over it
    t0 = time.monotonic()
    ok("recover", str(b.plan), "--prefix", "k0", "--json", "--report-dir", str(tmp_path))
    duration = time.monotonic() - t0
    stacks.remove_recovered(testbed["recovery"], f"k0{b.name}", b.name)
    for trial in range(1, 11):
        stack = f"k{trial}{b.name}"
        args = ["recover", str(b.plan), "--prefix", f"k{trial}", "--report-dir", str(tmp_path)]
        delay = rng.uniform(0.3, duration * 0.95)
        proc = subprocess.Popen(
            [DRPLAN, *args, "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        try:
            again = ok_json(*args)  # the same command again
            assert again["ok"] and again["verified"], (trial, delay, again)
            client = sites.client(testbed["recovery"])
            got = verifier.fingerprint(client, "helpdesk", stack)
            assert verifier.differences(b.expected, got) == [], (trial, delay)
        finally:
            stacks.remove_recovered(testbed["recovery"], stack, b.name)
