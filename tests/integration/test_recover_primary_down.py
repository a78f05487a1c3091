"""Whole stacks recovered on the recovery site while the primary's engine is stopped.

Stopping an engine disturbs every other test, so this module runs in the suite's second,
exclusive pass.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed import nodes, sites, stacks, verifier
from testbed.plans import ok_json
from tests.integration.recovery_helpers import backed_fixture, recovered_services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backed(testbed, tmp_path_factory):
    yield from backed_fixture(testbed, tmp_path_factory, ("campus", "helpdesk"))


@pytest.mark.exclusive  # stops the primary engine under every other test's feet
def test_whole_stacks_recover_with_the_primary_engine_stopped(testbed, backed, tmp_path):
    def recover(b) -> dict:
        return ok_json(
            "recover", str(b.plan), "--site", "recovery", "--report-dir", str(tmp_path / b.kind)
        )

    nodes.stop_engine("primary")
    try:
        with ThreadPoolExecutor(2) as pool:  # both stacks at once, as the site's team would
            reports = dict(zip(backed, pool.map(recover, backed.values()), strict=True))
        client = sites.client(testbed["recovery"])
        for kind, b in backed.items():
            report = reports[kind]
            assert report["ok"] and report["verified"], report
            assert report["run_id"] == b.run_id
            assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
            assert report["rto"]["measured_s"] > 0
            assert report["rpo"]["measured_s"] >= 0
            stacks.wait_healthy(client, b.name, timeout=60)
            assert recovered_services(testbed["recovery"], b.name) == b.services
            got = verifier.fingerprint(client, b.kind, b.name)
            assert verifier.differences(b.expected, got) == []
            for f in ("report.json", "report.md", "gantt.svg"):
                assert any((tmp_path / kind).rglob(f)), f
    finally:
        for b in backed.values():
            stacks.remove_recovered(testbed["recovery"], b.name)
        sites.up()
