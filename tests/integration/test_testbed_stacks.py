"""The testbed itself: both stacks run on both sites and the verifier compares them."""

from __future__ import annotations

import json

import pytest

from testbed import generator, plans, sites, stacks, verifier

pytestmark = pytest.mark.integration

WEB = {"campus": "web", "helpdesk": "glpi"}  # the service whose pages are checked


def _nonempty(fp: dict) -> bool:
    def walk(v):
        if isinstance(v, dict):
            if "rows" in v:
                return v["rows"] > 0
            if "files" in v:
                return v["files"] > 0
            if "keys" in v:
                return v["keys"] > 0
            return bool(v) and all(walk(x) for x in v.values())
        return True

    return all(walk(v) for v in fp.values())


@pytest.mark.parametrize("kind", ["campus", "helpdesk"])
def test_stack_runs_on_both_sites_with_equal_data(testbed, unique_name, tmp_path, kind):
    name = unique_name(kind)
    # the stack's compose file with free host ports: a fixed one may be held by another stack
    tp = plans.adapt(kind, tmp_path, name=name, docker_hosts=list(testbed.values()))
    port = tp.port(WEB[kind])
    prints = {}
    for site in ("primary", "recovery"):
        url = testbed[site]
        plans.deploy(url, tp)
        try:
            client = sites.client(url)
            generator.populate(client, kind, name, generator.Size.small(), seed=42)
            status, body = sites.http_get(site, port, "/api/summary")
            assert status == 200, body
            summary = json.loads(body)
            assert all(n >= generator.Size.small().rows for n in summary["rows"].values())
            status, page = sites.http_get(site, port, "/")
            assert status == 200 and "<table>" in page
            prints[site] = verifier.fingerprint(client, kind, name)
            if site == "recovery":
                # The oracle must see a difference when there is one.
                writer = generator.WRITERS[kind][0]
                generator.run(client, name, writer, ["--rows", "1"])
                generator.touch_files(client, name, writer, percent=1)
                changed = verifier.differences(
                    prints[site], verifier.fingerprint(client, kind, name)
                )
                assert any(f"{writer}/files" in d for d in changed), changed
                assert len(changed) >= 2, changed
        finally:
            stacks.remove(url, name)
    assert set(prints["primary"]) == set(verifier.LAYOUT[kind]) or len(prints["primary"]) == sum(
        len(v) for v in verifier.LAYOUT[kind].values()
    )
    assert _nonempty(prints["primary"]), prints["primary"]
    assert verifier.differences(prints["primary"], prints["recovery"]) == []
