"""On the real engines: every destructive step of a recovery waits for --force, and a
plan read back from the repository runs nothing of its own.

One campus stack is backed up once (its web service on an image of its own, its plan
carrying a repository secret and a host-side check that would create a canary file);
each test then sets a trap on the recovery site and shows the refusal, and that what the
trap holds is still there. Without these fixes each of them destroyed it (or, for the
stored plan, ran the canary).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from types import SimpleNamespace

import docker.errors
import pytest

from testbed import generator, plans, sites, stacks
from testbed.plans import drplan as run
from testbed.plans import ok, ok_json

pytestmark = pytest.mark.integration
MINE = {"org.drplan.test": "recover-gating"}


def _build(client, tag: str, marker: bytes) -> str:
    """An image `tag` built from the app image with a layer of its own; its id."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (
            (
                "Dockerfile",
                b"FROM drplan-tb/app:latest\nLABEL org.drplan.test=recover-gating\n"
                b"COPY marker /etc/drplan-gating-marker\n",
            ),
            ("marker", marker),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = client.images.build(
        fileobj=context, custom_context=True, tag=tag, rm=True, pull=False
    )
    return image.id


@pytest.fixture(scope="module")
def gating(testbed, tmp_path_factory):
    """campus backed up once, web on an image only the primary has; its plan with a
    `{command:}` repository secret and a host-side check, both touching `canary`."""
    tag = f"drplan-tb/app:gating-{os.urandom(3).hex()}"
    primary = sites.client(testbed["primary"])
    image_id = _build(primary, tag, os.urandom(4096))
    canary = tmp_path_factory.mktemp("canary") / "CANARY"

    def own_image(compose: dict) -> None:
        compose["services"]["web"]["image"] = tag

    def commands(plan: dict) -> None:
        repo = next(r for r in plan["repositories"].values() if r.get("role") == "primary")
        repo["env"] = {"DRPLAN_GATING": {"command": f"sh -c 'touch {canary}; echo on'"}}
        plan["services"]["web"]["checks"].append(
            {"type": "command", "command": f"touch {canary}", "where": "host"}
        )

    name = f"campus{os.urandom(3).hex()}"
    tp = plans.adapt(
        "campus",
        tmp_path_factory.mktemp("campus"),
        name=name,
        edit=commands,
        edit_compose=own_image,
    )
    try:
        plans.deploy(testbed["primary"], tp)
        generator.populate(primary, "campus", name, generator.Size.small(), seed=11)
        ok("repo", "init", str(tp.path))
        report = ok_json("backup", str(tp.path))
        assert report["complete"] is True
        b = SimpleNamespace(
            name=name,
            plan=tp.path,
            run_id=report["run_id"],
            tag=tag,
            image_id=image_id,
            canary=canary,
        )
        yield b
    finally:
        stacks.remove(testbed["primary"], name)
        for url in (testbed["primary"], testbed["recovery"]):
            with contextlib.suppress(docker.errors.ImageNotFound):
                sites.client(url).images.remove(tag, force=True)


def _journal(client, stack: str, entry: dict) -> None:
    """A recovery journal for `stack` on the engine, as an earlier attempt would leave."""
    line = json.dumps({"ts": "2025-01-01T00:00:00Z", **entry})
    client.volumes.create("drplan-journal", labels={"org.drplan.journal": "1"})
    client.containers.run(
        "drplan-tb/app:latest",
        ["sh", "-c", 'printf "%s\\n" "$0" > "/journal/$1.jsonl"', line, stack],
        remove=True,
        network_mode="none",
        labels=MINE,
        volumes={"drplan-journal": {"bind": "/journal"}},
    )


def _precious(client, volume: str):
    vol = client.volumes.create(volume, labels=MINE)
    client.containers.run(
        "drplan-tb/app:latest",
        ["sh", "-c", "echo precious > /v/keep"],
        volumes={vol.name: {"bind": "/v"}},
        remove=True,
        labels=MINE,
    )
    return vol


def _kept(client, volume: str) -> bytes:
    return client.containers.run(
        "drplan-tb/app:latest",
        ["cat", "/v/keep"],
        remove=True,
        volumes={volume: {"bind": "/v"}},
        labels=MINE,
    ).strip()


def test_a_journal_of_another_site_does_not_authorise_a_wipe(testbed, gating):
    """The same run's journal, written for another site: no resume, the full check."""
    b = gating
    client = sites.client(testbed["recovery"])
    stack = f"gj{b.name}"
    _journal(
        client,
        stack,
        {
            "event": "begin",
            "run_id": b.run_id,
            "plan": b.name,
            "stack": stack,
            "site": "primary",
            "profile": "full",
        },
    )
    vol = _precious(client, f"{stack}_db-data")
    try:
        res = run("recover", str(b.plan), "--prefix", "gj")
        assert res.returncode == 2, res.stderr[-2000:]
        assert f"{stack}_db-data" in res.stderr and "--force" in res.stderr
        assert _kept(client, vol.name) == b"precious"
        assert stacks.services(client, stack) == []
    finally:
        stacks.remove_recovered(testbed["recovery"], stack, b.name)
        with contextlib.suppress(docker.errors.NotFound):
            vol.remove(force=True)


def test_a_tag_another_stack_uses_is_not_moved(testbed, gating):
    """The recovery site has the run's web tag on another image, run by a container:
    `docker load` would retag it; refused, naming both, with nothing changed."""
    b = gating
    client = sites.client(testbed["recovery"])
    stack = f"gi{b.name}"
    theirs = _build(client, b.tag, os.urandom(4096))
    assert theirs != b.image_id
    user = client.containers.run(b.tag, ["sleep", "600"], detach=True, labels=MINE)
    try:
        res = run("recover", str(b.plan), "--prefix", "gi")
        assert res.returncode == 2, res.stderr[-2000:]
        assert b.tag in res.stderr and f"container {user.name}" in res.stderr
        assert "--force" in res.stderr
        assert client.images.get(b.tag).id == theirs
        assert stacks.services(client, stack) == []
    finally:
        user.remove(force=True)
        stacks.remove_recovered(testbed["recovery"], stack, b.name)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(b.tag, force=True)


def test_a_profile_resume_does_not_prune_a_running_service(testbed, gating):
    """A resumed exams-only recovery whose stack now runs web (outside the profile):
    `docker stack deploy --prune` would remove it; refused, web still there."""
    b = gating
    client = sites.client(testbed["recovery"])
    stack = f"gp{b.name}"
    _journal(
        client,
        stack,
        {
            "event": "begin",
            "run_id": b.run_id,
            "plan": b.name,
            "stack": stack,
            "site": "recovery",
            "profile": "exams-only",
        },
    )
    web = client.services.create(
        "drplan-tb/app:latest",
        ["sleep", "600"],
        name=f"{stack}_web",
        labels={"com.docker.stack.namespace": stack, **MINE},
    )
    try:
        res = run("recover", str(b.plan), "--prefix", "gp", "--profile", "exams-only")
        assert res.returncode == 2, res.stderr[-2000:]
        assert f"{stack}_web" in res.stderr and "--prune" in res.stderr
        assert "--force" in res.stderr
        assert [s.name for s in stacks.services(client, stack)] == [f"{stack}_web"]
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            web.remove()
        stacks.remove_recovered(testbed["recovery"], stack, b.name)


def test_the_stored_plan_runs_nothing_without_the_flag(testbed, gating, tmp_path):
    """`recover --repo --dry-run` prints the schedule and says what it did not run; a
    real recovery from the repository alone refuses until --trust-stored-plan."""
    b = gating
    client = sites.client(testbed["recovery"])
    repo = b.plan.parent / "repo"
    fresh = tmp_path / "fresh-host"
    fresh.mkdir()
    b.canary.unlink(missing_ok=True)  # local-plan commands (the backup) made it
    dry = run(
        "recover",
        "--repo",
        str(repo),
        "--site",
        "recovery",
        "--prefix",
        "gs",
        "--dry-run",
        cwd=fresh,
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert not b.canary.exists()
    assert "dry run: would recover" in dry.stdout
    assert "--trust-stored-plan" in dry.stderr and "services.web.checks" in dry.stderr
    real = run("recover", "--repo", str(repo), "--site", "recovery", "--prefix", "gs", cwd=fresh)
    assert real.returncode == 2, real.stderr[-2000:]
    assert "--trust-stored-plan" in real.stderr and "nothing was run" in real.stderr
    assert not b.canary.exists()
    assert stacks.services(client, f"gs{b.name}") == []
    assert not [
        c for c in client.containers.list(all=True) if c.labels.get("org.drplan.plan") == b.name
    ]
