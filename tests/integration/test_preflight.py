"""`drplan preflight` on the testbed: what a recovery would meet on each site, found
without changing anything. A plan that can recover passes every check; a recovery site
whose nodes cannot satisfy a service's placement, a repository moved away, a wrong
password and a site whose engine does not answer each fail the check that names them,
with exit 1, while the other checks still run; no helper is left anywhere."""

from __future__ import annotations

import json
import os

import pytest

from testbed import plans, sites
from testbed.plans import drplan, ok, ok_json

pytestmark = pytest.mark.integration


def checks(doc: dict) -> dict[tuple[str, str], dict]:
    return {(c["site"], c["what"]): c for c in doc["checks"]}


def failing(plan, **kw) -> dict:
    done = drplan("preflight", str(plan), "--json", **kw)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is False
    return checks(doc)


def no_helpers(testbed, name: str) -> None:
    for url in (testbed["primary"], testbed["recovery"]):
        left = sites.client(url).containers.list(
            all=True, filters={"label": f"org.drplan.plan={name}"}
        )
        assert left == [], (url, left)


def test_a_plan_that_can_recover_passes_every_check(testbed, tmp_path):
    name = f"pf{os.urandom(3).hex()}"
    tp = plans.adapt("campus", tmp_path / "plan", name=name)
    ok("repo", "init", str(tp.path))
    doc = ok_json("preflight", str(tp.path))
    assert doc["ok"] is True, doc
    got = checks(doc)
    for key in [
        ("primary", "engine"),
        ("primary", "swarm"),
        ("primary", "repository local from primary"),
        ("recovery", "engine"),
        ("recovery", "swarm"),
        ("recovery", "placement"),
        ("recovery", "repository local from recovery"),
    ]:
        assert got[key]["status"] == "ok", got.get(key, sorted(got))
    assert all(c["status"] != "failed" for c in doc["checks"])
    no_helpers(testbed, name)
    # a human reads a table, and the same verdict
    assert "can each site run a recovery now?" in ok("preflight", str(tp.path)).stdout


def test_each_fault_fails_the_check_that_names_it(testbed, tmp_path):
    name = f"pf{os.urandom(3).hex()}"

    def unplaceable(plan: dict) -> None:
        plan["sites"]["recovery"]["placement"] = {"db": ["node.labels.zone == nowhere"]}

    tp = plans.adapt("campus", tmp_path / "plan", name=name, edit=unplaceable)
    ok("repo", "init", str(tp.path))
    got = failing(tp.path)
    assert got[("recovery", "placement")]["status"] == "failed"
    assert "db" in got[("recovery", "placement")]["detail"]
    assert "zone == nowhere" in got[("recovery", "placement")]["detail"]
    assert got[("recovery", "repository local from recovery")]["status"] == "ok"

    got = failing(tp.path, password="not-the-password")
    for site in ("primary", "recovery"):
        check = got[(site, f"repository local from {site}")]
        assert check["status"] == "failed" and "password" in check["detail"], check
    assert "not-the-password" not in str(got)

    (tmp_path / "plan" / "repo").rename(tmp_path / "plan" / "repo-moved")
    got = failing(tp.path)
    check = got[("recovery", "repository local from recovery")]
    assert check["status"] == "failed" and "does not exist on the node" in check["detail"], check
    (tmp_path / "plan" / "repo-moved").rename(tmp_path / "plan" / "repo")

    gone = tmp_path / "no-engine.sock"
    text = tp.path.read_text().replace(testbed["recovery"], f"unix://{gone}")
    tp.path.write_text(text)
    got = failing(tp.path)
    assert got[("recovery", "engine")]["status"] == "failed"
    assert str(gone) in got[("recovery", "engine")]["detail"]
    assert got[("primary", "engine")]["status"] == "ok"  # the other site is still checked
    no_helpers(testbed, name)
