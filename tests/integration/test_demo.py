"""`drplan demo`, the README's main job, run as a user runs it: on one engine it deploys the
demo stack, writes data, backs it up, destroys it, recovers it and verifies it.

It runs on the testbed's recovery engine: a demo a user left running on the primary
(`scripts/setup demo` keeps its stack up to look at) holds the demo's fixed ports there.
"""

from __future__ import annotations

import json

import pytest

from testbed import plans, stacks

pytestmark = pytest.mark.integration


def test_the_demo_recovers_its_stack_and_finds_the_data_identical(testbed, tmp_path):
    url = testbed["recovery"]
    stacks.remove_recovered(url, "campus")  # what an interrupted earlier run left
    try:
        proc = plans.drplan(
            "demo",
            "--docker-host",
            url,
            "--workdir",
            str(tmp_path / "demo"),
            "--json",
            password=None,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout)
        assert result["ok"] is True and result["pages_identical"] is True
        before, after = result["before"], result["after"]
        assert set(before) == {"web", "exam"} and before == after
        assert all(sum(b["rows"].values()) > 0 and b["files"] > 0 for b in before.values())
        report = result["report"]
        assert report["verified"] is True, report["verification"]
        assert set(report["verification"]) == {"db", "redis", "web", "exam"}
        assert report["rto"]["measured_s"] > 0
        assert {"json", "markdown", "gantt"} <= set(result["reports"])
    finally:
        stacks.remove_recovered(url, "campus")
