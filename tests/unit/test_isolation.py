"""A drill's copy of the stack shares no storage with production (without an engine).

A drill deploys the stack again under another name, possibly on the primary site. The
stack prefix namespaces only plain volumes and networks: a volume with an explicit
`name:`, an external one, one with driver options (NFS, a `local` bind), a writable
bind mount, would still be production's, and the drill's restore would overwrite it.
These tests run `run_drill` with a fake engine and repository and look at the compose
documents the recovery would deploy (what `recover` reads from the drill's plan, at zero
replicas as `zero_compose` makes them): each kind is remapped to the drill's own, or the
drill is refused before anything is touched.
"""

from __future__ import annotations

import copy
import posixpath
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from drplan.actions import drill as dr
from drplan.actions import recover as rc
from drplan.actions.context import load_plan
from drplan.errors import InputError
from drplan.plan import isolation
from drplan.plan.compose import _mount
from drplan.plan.graph import profile_services
from drplan.store import manifest as mf
from tests.unit.drill_helpers import CAMPUS

SHARING_KEYS = {"name", "external", "driver", "driver_opts"}


class FakeEngine:
    """Answers like an empty engine; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        def call(*args, **kw):
            self.calls.append((name, args, kw))
            if name == "node_engines":  # a one-node site
                return [self]
            return {
                "inventory": {"volumes": [], "networks": [], "containers": []},
                "volumes_labelled": [],
                "swarm_state": "active",
                "image_users": [],
                "volume_exists": False,
            }.get(name)

        return call


class FakeRepo:
    def __init__(self) -> None:
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def backup_stream(self, *a, **kw) -> dict:
        return {"snapshot_id": "f" * 64}


@pytest.fixture
def drill(tmp_path, monkeypatch):
    """Run a drill of a campus plan whose compose `edit` changes; returns what the
    recovery would deploy, the engine's calls, and the drill's result."""
    engine = FakeEngine()
    monkeypatch.setattr(dr, "open_engine", lambda site_name, site: engine)
    monkeypatch.setattr(dr, "LOCK_DIR", tmp_path / "locks")
    monkeypatch.setattr(dr.helper_image, "image_name", lambda: "drplan/helper:test")
    run_found = SimpleNamespace(
        run_id="20260101T000000Z-abcd",
        rpo_point="2026-01-01T00:00:00Z",
        images={"drplan-tb/app:latest": "sha256:" + "1" * 64},
    )
    monkeypatch.setattr(mf, "find_run", lambda repo, plan, run, **kw: run_found)
    deployed: dict = {}

    def recover(pc, repo, opts, on_event=None, on_bytes=None):
        _, site = pc.site(opts.site, role="recovery")
        services, _ = profile_services(pc.plan, opts.profile)
        deployed["files"] = [pc.dir / rel for rel in pc.plan.stack.compose]
        deployed["modes"] = {f.stat().st_mode & 0o777 for f in deployed["files"]}
        deployed["docs"] = [
            rc.zero_compose(
                yaml.safe_load((pc.dir / rel).read_text()) or {},
                services,
                site,
                drop_ports=True,
                isolate=opts.isolate,
            )
            for rel in pc.plan.stack.compose
        ]
        deployed["stack"] = f"{opts.prefix}{pc.name}"
        return None

    monkeypatch.setattr(rc, "recover", recover)

    def run(edit=None, profile=None):
        compose = yaml.safe_load((CAMPUS / "compose.yml").read_text())
        if edit:
            edit(compose)
        (tmp_path / "compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
        plan = yaml.safe_load((CAMPUS / "drplan.yml").read_text())
        plan["repositories"]["local"]["url"] = str(tmp_path / "repo")
        (tmp_path / "drplan.yml").write_text(yaml.safe_dump(plan, sort_keys=False))
        pc = load_plan(tmp_path / "drplan.yml")
        repo = FakeRepo()
        run.repo = repo
        result = dr.run_drill(pc, dr.DrillOptions(profile=profile), repo=repo)
        return compose, deployed, engine, result

    run.engine = engine
    return run


def production_binds(documents: list[dict]) -> set[str]:
    """The host paths production mounts writable (read here, not with drill's own code)."""
    declared = {k for d in documents for k in d.get("volumes") or {}}
    mounts = [
        _mount(raw, declared)
        for d in documents
        for spec in (d.get("services") or {}).values()
        for raw in spec.get("volumes") or []
    ]
    return {
        posixpath.normpath(mt.source)
        for mt in mounts
        if mt and mt.type == "bind" and not mt.read_only
    }


def assert_shares_nothing(production: list[dict], deployed: list[dict]) -> None:
    """No volume, network or writable host path of the deployed documents is production's."""
    declared: set[str] = set()
    for data in deployed:
        for key, spec in (data.get("volumes") or {}).items():
            declared.add(key)
            assert not SHARING_KEYS & set(spec or {}), (key, spec)
        for key, spec in (data.get("networks") or {}).items():
            assert not {"name", "external"} & set(spec or {}), (key, spec)
    rw = production_binds(production)
    for data in deployed:
        for sname, spec in (data.get("services") or {}).items():
            for raw in spec.get("volumes") or []:
                mt = _mount(raw, declared)
                assert mt.type in ("volume", "tmpfs", "bind"), (sname, raw)
                if mt.type == "volume":
                    assert mt.source in declared, (sname, raw)
                if mt.type == "bind":
                    assert mt.read_only, (sname, raw)
                    assert posixpath.normpath(mt.source) not in rw, (sname, raw)


def volume(spec):
    def edit(compose):
        compose["volumes"]["files"] = spec

    return edit


def web_mounts(*mounts):
    """web mounts its data volume (the plan backs it up) and `mounts`."""

    def edit(compose):
        compose["services"]["web"]["volumes"] = ["files:/srv/files", *mounts]

    return edit


KINDS = {
    "name": volume({"name": "campus-files-prod"}),
    "external": volume({"external": True}),
    "external-named": volume({"external": True, "name": "prod_files"}),
    "driver_opts-nfs": volume(
        {
            "driver": "local",
            "driver_opts": {
                "type": "nfs",
                "o": "addr=nfs.example,rw,nfsvers=4",
                "device": ":/export/files",
            },
        }
    ),
    "driver_opts-local-bind": volume(
        {
            "driver": "local",
            "driver_opts": {"type": "none", "o": "bind", "device": "/srv/campus/files"},
        }
    ),
    "plugin-driver": volume({"driver": "rexray/ebs"}),
    "bind-short-relative": web_mounts("./uploads:/srv/uploads"),
    "bind-short-absolute": web_mounts("/srv/campus/uploads:/srv/uploads:rw"),
    "bind-long": web_mounts(
        {"type": "bind", "source": "/srv/campus/uploads", "target": "/srv/uploads"}
    ),
    "bind-writable-and-read-only": lambda c: (
        c["services"]["web"]["volumes"].append("./shared:/srv/shared"),
        c["services"]["exam"]["volumes"].append("./shared:/srv/shared:ro"),
    ),
    "named-network": lambda c: c["networks"]["backend"].update(name="prod-backend"),
}


@pytest.mark.parametrize("edit", KINDS.values(), ids=KINDS.keys())
def test_the_drill_deploys_nothing_of_production(drill, edit):
    production, deployed, _, result = drill(edit)
    assert_shares_nothing([production], deployed["docs"])
    assert result.record.passed, result.record.failure
    # the isolated files were written in a private directory, not the plan's folder, and
    # removed by the teardown with that directory
    assert all(f.parent == deployed["files"][0].parent for f in deployed["files"])
    assert deployed["files"][0].parent.name.startswith("drplan-drill-")
    assert deployed["modes"] == {0o600}
    assert not deployed["files"][0].parent.exists()
    assert not any(f.exists() for f in deployed["files"])


def test_a_named_volume_becomes_the_drills_and_is_what_the_restore_fills(drill):
    _, deployed, _, result = drill(volume({"name": "campus-files-prod", "labels": {"a": "b"}}))
    [doc] = deployed["docs"]
    assert doc["volumes"]["files"] == {"labels": {"a": "b"}}
    assert "files:/srv/files" in doc["services"]["web"]["volumes"]
    # no name: the stack prefix namespaces it, as `<stack>_files`, the volume the recovery
    # restores into (PlanContext.volume_name)
    assert any(
        "volume files has an explicit name (campus-files-prod)" in m and "isolated copy" in m
        for m in result.record.isolated
    )


def test_a_writable_bind_becomes_one_drill_volume_per_host_path(drill):
    def edit(c):
        c["services"]["web"]["volumes"].append("./shared:/srv/shared")
        c["services"]["exam"]["volumes"] += [
            {"type": "bind", "source": "./shared/", "target": "/srv/shared", "read_only": True},
            "./conf/app.ini:/etc/app.ini:ro",
        ]

    _, deployed, _, _ = drill(edit)
    [doc] = deployed["docs"]
    key = isolation.bind_volume("./shared")
    assert doc["services"]["web"]["volumes"] == [
        "files:/srv/files",
        {"type": "volume", "source": key, "target": "/srv/shared", "read_only": False},
    ]
    *volumes, kept = doc["services"]["exam"]["volumes"]
    assert volumes == [
        "exam-files:/srv/files",
        {"type": "volume", "source": key, "target": "/srv/shared", "read_only": True},
    ]
    # read-only everywhere: kept, read-only, its path made absolute (the drill's compose
    # file is elsewhere than the plan's folder)
    source, target, mode = kept.split(":")
    assert source.startswith("/") and source.endswith("/conf/app.ini"), kept
    assert (target, mode) == ("/etc/app.ini", "ro")
    assert doc["volumes"][key] == {"labels": {isolation.BIND_VOLUME_LABEL: "./shared"}}


@pytest.mark.parametrize(
    "mount",
    [
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        {
            "type": "bind",
            "source": "/run/postgresql",
            "target": "/run/postgresql",
            "read_only": True,
        },
        "./app.sock:/tmp/app.sock",
        {"type": "cluster", "source": "group:pg", "target": "/data"},
    ],
)
def test_what_cannot_be_isolated_is_refused_before_anything_is_touched(drill, mount):
    with pytest.raises(InputError) as err:
        drill(web_mounts(mount))
    text = str(err.value)
    assert "service web" in text and "nothing was changed" in text
    source = mount if isinstance(mount, str) else mount["source"]
    assert source.split(":")[0] in text or "cluster" in text


def test_refusal_comes_before_any_engine_call_or_file(drill, tmp_path):
    with pytest.raises(InputError, match=r"docker\.sock"):
        drill(web_mounts("/var/run/docker.sock:/var/run/docker.sock"))
    assert drill.engine.calls == []  # not even asked what it holds
    assert drill.repo.opened is False
    assert not list(Path(tmp_path).glob(".drplan-*"))


def test_a_profile_without_the_refused_service_can_be_drilled(drill):
    def edit(c):
        c["services"]["web"]["volumes"].append("/var/run/docker.sock:/var/run/docker.sock:ro")

    _, deployed, _, result = drill(edit, profile="exams-only")
    assert result.record.passed, result.record.failure
    assert "web" not in deployed["docs"][0]["services"]


def test_isolate_compose_leaves_the_originals_alone_and_merges_files():
    first = {
        "services": {"web": {"volumes": ["uploads:/u", "./media:/m"]}},
        "volumes": {"uploads": {"name": "prod_uploads"}},
    }
    second = {"volumes": {"uploads": {"external": True}}}
    before = copy.deepcopy([first, second])
    out = isolation.isolate_compose([first, second], ["web"])
    assert [first, second] == before
    assert out[0]["volumes"]["uploads"] == {} and out[1]["volumes"]["uploads"] == {}
    assert_shares_nothing(before, out)


def test_shared_storage_says_what_and_where():
    doc = {
        "services": {
            "web": {"volumes": ["uploads:/u", "./media:/m", "./c.ini:/c:ro", "plain:/p", "/data"]}
        },
        "volumes": {"uploads": {"name": "prod_uploads"}, "plain": None},
    }
    found = {s.subject: s for s in isolation.shared_storage([doc])}
    assert set(found) == {"uploads", "./media", "./c.ini"}
    assert found["uploads"].loc == ("services", "web", "volumes", 0)
    assert found["uploads"].action == "remap"
    assert found["./media"].action == "remap" and found["./c.ini"].action == "keep"
    assert found["./media"].message.startswith("service web: bind mount ./media ")


def test_shared_storage_tolerates_any_shape():
    for junk in (
        None,
        [],
        "x",
        {"services": [1]},
        {"services": {"a": None}},
        {"services": {"a": {"volumes": "x"}}},
        {"volumes": [1, 2]},
        {"services": {"a": {"volumes": [1, None, {"target": 3}, {}]}}},
    ):
        assert isolation.shared_storage([junk]) == []
        isolation.isolate_compose([junk], ["a"])


def test_teardown_removes_the_isolated_files_a_killed_drill_left(tmp_path, monkeypatch):
    monkeypatch.setattr(dr.helper_image, "image_name", lambda: "drplan/helper:test")
    sub = tmp_path / "deploy"
    sub.mkdir()
    mine = sub / ".drplan-drill-ab12cd-compose.yml"
    deployed = sub / ".drplan-deploy-drill-ab12cd-campus-.drplan-drill-ab12cd-compose.yml"
    other = sub / ".drplan-drill-ffffff-compose.yml"
    for f in (mine, deployed, other):
        f.write_text("services: {}\n")
    m = dr.Marker(
        drill_id="ab12cd",
        plan="campus",
        stack="drill-ab12cd-campus",
        started_at="",
        host="h",
        pid=1,
        plan_dir=str(tmp_path),
        files=[str(mine)],
    )
    assert dr.Marker.from_labels(m.labels()) == m
    td = dr.teardown(FakeEngine(), m)
    assert td.clean, td.errors
    assert not mine.exists() and not deployed.exists() and other.exists()
