"""Stacks backed up on the primary, shared by the recovery test modules."""

from __future__ import annotations

import os
from pathlib import Path

from testbed import generator, plans, sites, stacks, verifier
from testbed.plans import ok, ok_json


class Backed:
    """A stack deployed on the primary, filled, backed up; what the verifier saw then."""

    def __init__(
        self, kind: str, name: str, plan: Path, expected: dict, run_id: str, report: dict
    ):
        self.kind, self.name, self.plan = kind, name, plan
        self.expected, self.run_id, self.report = expected, run_id, report

    @property
    def services(self) -> set[str]:
        return set(verifier.LAYOUT[self.kind])


def backed_up(testbed, kind: str, dest: Path, edit_compose=None, edit=None) -> Backed:
    name = f"{kind}{os.urandom(3).hex()}"
    tp = plans.adapt(kind, dest, name=name, edit_compose=edit_compose, edit=edit)
    plan = tp.path
    plans.deploy(testbed["primary"], tp)
    client = sites.client(testbed["primary"])
    generator.populate(client, kind, name, generator.Size.small(), seed=11)
    ok("repo", "init", str(plan))
    # every volume's restore shared between two restic processes, as big ones are
    report = ok_json("backup", str(plan), env={"DRPLAN_RESTORE_SPLIT_MIN_BYTES": "1"})
    assert report["complete"] is True
    volumes = [s for s in report["sources"] if s["engine"] == "files"]
    assert volumes and all(s["stats"].get("restore_split") for s in volumes), volumes
    expected = verifier.fingerprint(client, kind, name)
    return Backed(kind, name, plan, expected, report["run_id"], report)


def backed_fixture(testbed, tmp_path_factory, kinds: tuple[str, ...], edit_compose=None):
    """Generator body of a module fixture: `kinds` backed up, removed from the primary
    at the end. `edit_compose` maps a kind to a function changing its compose file."""
    edits = edit_compose or {}
    made = {k: backed_up(testbed, k, tmp_path_factory.mktemp(k), edits.get(k)) for k in kinds}
    yield made
    for b in made.values():
        stacks.remove(testbed["primary"], b.name)


def recovered_services(url: str, stack: str) -> set[str]:
    client = sites.client(url)
    return {s.name.removeprefix(f"{stack}_") for s in stacks.services(client, stack)}


def round_trip(testbed, dest: Path, name: str, edit, prefix: str) -> None:
    """Campus deployed on the primary (by the testbed, directly), then backed up and
    recovered on the recovery site by drplan through the plan as `edit` makes it, the
    recovered data found equal by the verifier. Everything is removed at the end."""
    tp = plans.adapt("campus", dest, name=name, edit=edit)
    plans.deploy(testbed["primary"], tp)
    stack = f"{prefix}{name}"
    try:
        client = sites.client(testbed["primary"])
        generator.populate(client, "campus", name, generator.Size.small(), seed=5)
        ok("repo", "init", str(tp.path))
        report = ok_json("backup", str(tp.path))
        assert report["complete"] is True, report
        expected = verifier.fingerprint(client, "campus", name)
        rec = ok_json(
            "recover", str(tp.path), "--site", "recovery", "--prefix", prefix,
            "--report-dir", str(dest),
        )
        assert rec["ok"] and rec["verified"], rec
        got = verifier.fingerprint(sites.client(testbed["recovery"]), "campus", stack)
        assert verifier.differences(expected, got) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, name)
        plans.remove(testbed["primary"], tp)

