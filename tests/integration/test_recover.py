"""Recovery on the recovery site (degraded profile, refusals, from the repository alone)
and into another name, checked by the independent verifier."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile

import docker.errors
import pytest
import yaml

from testbed import sites, stacks, verifier
from testbed.plans import drplan as run
from testbed.plans import ok_json
from tests.integration.recovery_helpers import backed_fixture, recovered_services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def primary_only_image(testbed):
    """(tag, id) of an image only the primary has: the app image plus a layer and a label
    of its own, so a recovery must load it from the run (no registry here)."""
    tag = f"drplan-tb/app:primary-only-{os.urandom(3).hex()}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (
            (
                "Dockerfile",
                b"FROM drplan-tb/app:latest\nLABEL org.drplan.test=images\n"
                b"COPY marker /etc/drplan-test-marker\n",
            ),
            ("marker", os.urandom(64 * 1024)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = sites.client(testbed["primary"]).images.build(
        fileobj=context, custom_context=True, tag=tag, rm=True, pull=False
    )
    yield tag, image.id
    for url in (testbed["primary"], testbed["recovery"]):
        with contextlib.suppress(docker.errors.ImageNotFound):
            sites.client(url).images.remove(tag, force=True)


@pytest.fixture(scope="module")
def backed(testbed, tmp_path_factory, primary_only_image):
    """campus and helpdesk, each backed up once on the primary (shared by this module);
    helpdesk's metrics service runs an image the recovery site lacks."""

    def metrics_on_own_image(compose: dict) -> None:
        compose["services"]["metrics"]["image"] = primary_only_image[0]

    yield from backed_fixture(
        testbed,
        tmp_path_factory,
        ("campus", "helpdesk"),
        edit_compose={"helpdesk": metrics_on_own_image},
    )


def test_degraded_profile_brings_back_exactly_its_services(testbed, backed, tmp_path):
    b = backed["campus"]
    stack = f"dg{b.name}"
    report = ok_json(
        "recover",
        str(b.plan),
        "--profile",
        "exams-only",
        "--prefix",
        "dg",
        "--report-dir",
        str(tmp_path),
    )
    try:
        assert report["ok"], report
        assert set(report["services"]) == {"exam", "db", "redis"}
        assert recovered_services(testbed["recovery"], stack) == {"exam", "db", "redis"}
        client = sites.client(testbed["recovery"])
        got = verifier.fingerprint(client, "campus", stack, services=["exam", "db", "redis"])
        want = {k: v for k, v in b.expected.items() if k.split("/")[0] in ("exam", "db", "redis")}
        assert verifier.differences(want, got) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)


def test_refusals_leave_the_target_untouched(testbed, backed, tmp_path):
    b = backed["campus"]
    client = sites.client(testbed["recovery"])
    stack = f"rf{b.name}"

    def untouched() -> None:
        assert stacks.services(client, stack) == []
        assert not [
            v
            for v in client.volumes.list()
            if v.name.startswith(f"{stack}_") and v.name != f"{stack}_db-data"
        ]

    wrong = run("recover", str(b.plan), "--prefix", "rf", password="not-the-password")
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr
    untouched()

    missing = run("recover", str(b.plan), "--prefix", "rf", "--run", "20000101T000000Z-dead")
    assert missing.returncode == 1 and "no complete run" in missing.stderr, missing.stderr
    untouched()

    unreachable = run(
        "recover", str(b.plan), "--prefix", "rf", "--docker-host", "unix:///nonexistent/docker.sock"
    )
    assert unreachable.returncode == 1 and "unreachable" in unreachable.stderr
    assert "site recovery" in unreachable.stderr
    untouched()

    mine = {"org.drplan.test": "refusals"}  # not the business of other tests' inventories

    # a host port the stack publishes, held by something else on the site
    compose = yaml.safe_load((b.plan.parent / "compose.yml").read_text())
    port = compose["services"]["web"]["ports"][0]["published"]
    squatter = client.containers.run(
        "drplan-tb/app:latest", ["sleep", "600"], detach=True, ports={"8080/tcp": port}, labels=mine
    )
    try:
        taken = run("recover", str(b.plan))
        assert taken.returncode == 2, taken.stderr
        assert f"port {port} of service web" in taken.stderr, taken.stderr
        assert f"container {squatter.name}" in taken.stderr, taken.stderr
        assert stacks.services(client, b.name) == []
        assert not [v for v in client.volumes.list() if v.name.startswith(f"{b.name}_")]
    finally:
        squatter.remove(force=True)

    # a target volume that already holds data
    vol = client.volumes.create(f"{stack}_db-data", labels=mine)
    client.containers.run(
        "drplan-tb/app:latest",
        ["sh", "-c", "echo precious > /v/keep"],
        volumes={vol.name: {"bind": "/v"}},
        remove=True,
        labels=mine,
    )
    try:
        busy = run("recover", str(b.plan), "--prefix", "rf")
        assert busy.returncode == 2, busy.stderr
        assert f"{stack}_db-data" in busy.stderr and "--force" in busy.stderr
        untouched()
        kept = client.containers.run(
            "drplan-tb/app:latest",
            ["cat", "/v/keep"],
            volumes={vol.name: {"bind": "/v"}},
            remove=True,
            labels=mine,
        )
        assert kept.strip() == b"precious"
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)
        vol.remove(force=True)


def test_recover_from_the_repository_alone_into_another_name(
    testbed, backed, primary_only_image, tmp_path
):
    """A fresh host with drplan, an engine and the repository's password: nothing else
    (not even the images: the run's own are loaded)."""
    b = backed["helpdesk"]
    tag, image_id = primary_only_image
    with pytest.raises(docker.errors.ImageNotFound):
        sites.client(testbed["recovery"]).images.get(tag)
    repo = b.plan.parent / "repo"
    empty = tmp_path / "fresh-host"
    empty.mkdir()
    report = ok_json(
        "recover",
        "--repo",
        str(repo),
        "--site",
        "recovery",
        "--prefix",
        "copy",
        "--report-dir",
        str(tmp_path),
        cwd=empty,
    )
    stack = f"copy{b.name}"
    try:
        assert report["ok"] and report["verified"]
        assert report["stack"] == stack
        steps = {s["id"]: s for s in report["steps"]}
        assert steps["load-images"]["status"] == "ok", steps
        assert sites.client(testbed["recovery"]).images.get(tag).id == image_id
        got = verifier.fingerprint(sites.client(testbed["recovery"]), "helpdesk", stack)
        assert verifier.differences(b.expected, got) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)


def test_a_training_copy_beside_production_on_the_same_engine(testbed, backed, tmp_path):
    """Production data into another name on production's own engine (Pegase's test
    environment): production is untouched, the copy equals the backup."""
    b = backed["campus"]
    stack = f"train{b.name}"
    client = sites.client(testbed["primary"])
    stacks.wait_healthy(client, b.name, timeout=240)  # e.g. after the primary's restart
    before = verifier.fingerprint(client, "campus", b.name)
    report = ok_json(
        "recover",
        str(b.plan),
        "--site",
        "primary",
        "--prefix",
        "train",
        "--report-dir",
        str(tmp_path),
    )
    try:
        assert report["ok"] and report["verified"]
        assert verifier.differences(b.expected, verifier.fingerprint(client, "campus", stack)) == []
        assert verifier.differences(before, verifier.fingerprint(client, "campus", b.name)) == []
        # the copy published no port of production's
        for svc in stacks.services(client, stack):
            assert not svc.attrs["Spec"].get("EndpointSpec", {}).get("Ports")
    finally:
        stacks.remove_recovered(testbed["primary"], stack, b.name)
