"""Drills without an engine: grading, markers, step history, teardown of images, reports."""

from __future__ import annotations

import pytest

from drplan.actions import drill as dr
from drplan.reports import drill as report
from drplan.store import records
from tests.unit.drill_helpers import drill_record


@pytest.mark.parametrize(
    ("measured", "objective", "verdict"),
    [
        (10, 10, "met"),
        (10.01, 10, "exceeded"),
        (20, 10, "exceeded"),
        (20.01, 10, "severely exceeded"),
        (None, 10, None),
        (5, None, None),
    ],
)
def test_grade_boundaries(measured, objective, verdict):
    assert dr.grade(measured, objective) == verdict


def test_marker_round_trips_through_labels():
    m = dr.Marker(
        drill_id="ab12cd",
        plan="campus",
        stack="drill-ab12cd-campus",
        started_at="2026-01-01T00:00:00Z",
        host="h",
        pid=1,
        plan_dir="/p",
        volumes_absent=["drplan-journal"],
        images_before={"a:1": None, "b:2": "sha256:9"},
        helper_absent="drplan/helper:x",
        swarm_was_active=False,
        gwbridge_absent=True,
    )
    labels = m.labels()
    assert labels[dr.MARKER_LABEL] == "ab12cd" and labels[dr.PLAN_LABEL] == "campus"
    assert dr.Marker.from_labels(labels) == m
    assert m.volume == "drplan-drill-ab12cd"


def test_step_history_takes_the_newest_ok_measure():
    old = drill_record(
        "a",
        steps={
            "start:db": {"status": "ok", "seconds": 9.0},
            "health:db": {"status": "ok", "seconds": 4.0},
        },
    )
    new = drill_record(
        "b",
        steps={
            "start:db": {"status": "ok", "seconds": 2.0},
            "health:db": {"status": "failed", "seconds": 300.0},
        },
    )
    assert records.step_history(None, "campus", [old, new]) == {"start:db": 2.0, "health:db": 4.0}
    assert records.step_history(None, "campus", []) == {}


class FakeEngine:
    """Images by name → id, containers using ids; records removals and tags."""

    def __init__(self, tags: dict[str, str], used: set[str], node_name: str = "m"):
        self.tags, self.used, self.log = dict(tags), used, []
        self.node_name, self.others = node_name, []

    def node_engines(self):
        return [self, *self.others]

    def image_id(self, ref):
        return self.tags.get(ref) or (ref if ref in self.tags.values() else None)

    def image_users(self, image_id):
        return ["prod_web.1"] if image_id in self.used else []

    def remove_image(self, ref):
        self.log.append(("rm", ref))
        return self.tags.pop(ref, None) is not None

    def tag_image(self, image_id, name):
        self.log.append(("tag", image_id, name))
        self.tags[name] = image_id


def test_loaded_images_go_and_moved_tags_point_back():
    m = dr.Marker(
        drill_id="x",
        plan="p",
        stack="s",
        started_at="",
        host="h",
        pid=1,
        plan_dir="/",
        images_before={
            "new:1": None,
            "moved:1": "sha256:old",
            "same:1": "sha256:same",
            "prod:1": None,
        },
    )
    eng = FakeEngine(
        {
            "new:1": "sha256:n",
            "moved:1": "sha256:m",
            "same:1": "sha256:same",
            "prod:1": "sha256:p",
            "keep:old": "sha256:old",
        },
        used={"sha256:p"},
    )
    td = dr.Teardown()
    dr._images(eng, m, td)
    assert "new:1" not in eng.tags
    assert eng.tags["moved:1"] == "sha256:old"  # the name points where it did before
    assert eng.tags["same:1"] == "sha256:same" and ("rm", "same:1") not in eng.log
    assert eng.tags["prod:1"] == "sha256:p"  # production uses it: kept, and said so
    assert any("prod:1" in k for k in td.kept)


def test_images_copied_to_the_other_nodes_go_too():
    """A recovery copies the run's images to every node of a multi-node site: the drill's
    teardown removes them there as well, by what each node held before."""
    m = dr.Marker(
        drill_id="x",
        plan="p",
        stack="s",
        started_at="",
        host="h",
        pid=1,
        plan_dir="/",
        images_before={"app:1": "sha256:a"},
        node_images_before={"w1": {"app:1": None}, "w2": {"app:1": "sha256:a"}},
    )
    manager = FakeEngine({"app:1": "sha256:a"}, used=set())
    w1 = FakeEngine({"app:1": "sha256:a"}, used=set(), node_name="w1")
    w2 = FakeEngine({"app:1": "sha256:a"}, used=set(), node_name="w2")
    w3 = FakeEngine({"app:1": "sha256:a"}, used=set(), node_name="w3")  # joined since
    manager.others = [w1, w2, w3]
    td = dr.Teardown()
    dr._images(manager, m, td)
    assert manager.tags == {"app:1": "sha256:a"}  # it was there before the drill
    assert w1.tags == {} and w1.log == [("rm", "app:1")]  # the drill brought it
    assert w2.log == [] and w3.log == []  # there before / unknown to the drill: kept


def test_sparkline_and_trend():
    assert report.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert report.sparkline([5, None, 5]) == "▄·▄"
    assert report.sparkline([]) == ""
    data = report.history([drill_record("a", rto=100), drill_record("b", rto=50)])
    assert data["trend"]["rto"]["direction"] == "better"
    assert data["trend"]["rto"]["values_s"] == [100, 50]
    text = report.history_text("campus", data)
    assert "better" in text and "a " in text and "b " in text


def test_failed_drill_report_says_why():
    rec = drill_record(
        "f", passed=False, rto=None, failure="validate:web: response body does not contain 'never'"
    )
    rec.rto.verdict = None
    md = report.markdown(rec)
    assert "FAILED" in md and "does not contain 'never'" in md
    data = report.history([rec])
    assert data["drills"][0]["failure"].startswith("validate:web")
    assert "FAILED" in report.history_text("campus", data)


def test_a_drill_copy_shares_no_network_volume_or_port_with_production():
    from drplan.plan import model as m
    from drplan.plan.compose import zero_compose

    doc = {
        "services": {
            "web": {
                "image": "app",
                "ports": ["8080:8080"],
                "depends_on": ["db"],
                "networks": ["prod", "own"],
                "volumes": ["shared:/s", "files:/f"],
            },
            "db": {"image": "pg", "deploy": {"replicas": 2}},
            "other": {"image": "x"},
        },
        "networks": {
            "prod": {"external": True, "name": "production_net"},
            "own": {"driver": "overlay"},
        },
        "volumes": {"shared": {"external": True}, "files": {}},
    }
    site = m.Site(role="recovery", docker_host="unix:///x.sock")
    out = zero_compose(doc, ["web", "db"], site, drop_ports=True, isolate=True)
    assert set(out["services"]) == {"web", "db"}
    assert out["services"]["db"]["deploy"]["replicas"] == 0
    assert "ports" not in out["services"]["web"] and "depends_on" not in out["services"]["web"]
    assert out["networks"]["prod"] == {"driver": "overlay"}  # the copy's own, not production's
    assert out["volumes"]["shared"] == {}
    assert out["networks"]["own"] == {"driver": "overlay"}
