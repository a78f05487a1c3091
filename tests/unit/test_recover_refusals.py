"""Every destructive step of a recovery is gated by --force; a stored plan runs nothing.

No engine here: a fake engine records what the recovery would have done to the target,
and the real recovery journal, checks and runner work against it. Each refusal is shown
(with what it names), and so is what --force or the very same attempt still allows.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from drplan.actions import context as ctxmod
from drplan.actions import recover as rc
from drplan.actions import resume as jmod
from drplan.actions.context import load_plan
from drplan.actions.resume import ResumeJournal
from drplan.errors import InputError
from drplan.platform.docker import STACK_LABEL, Container, ExecResult, SwarmService
from drplan.schedule.steps import Step, StepKind

ROOT = Path(__file__).resolve().parents[2]
CAMPUS = ROOT / "testbed" / "stacks" / "campus"
RUN_ID = "20250101T000000Z-abcd"
APP = "drplan-tb/app:latest"
OLD = "sha256:" + "0" * 64
NEW = "sha256:" + "1" * 64


# -- a fake target engine ------------------------------------------------------------------


def FakeService(stack: str, name: str, replicas: int = 1, image: str = APP) -> SwarmService:
    return SwarmService(
        id=f"{stack}_{name}",
        name=f"{stack}_{name}",
        replicas=replicas,
        image=image.split("@", 1)[0],
        labels={STACK_LABEL: stack},
    )


class FakeEngine:
    """What the recovery asks of an Engine, recorded; nothing real happens."""

    site = "recovery"
    where = "site recovery"
    url = "unix:///fake.sock"

    def __init__(self) -> None:
        self.journal: dict[str, str] = {}
        self.volumes: set[str] = set()
        self.images: dict[str, str] = {}
        self.plain_containers: list[dict] = []
        self.all_services: list[FakeService] = []
        self.running: set[str] = set()  # "stack_service" with a running container
        self.deploys: list[dict] = []
        self.loaded = False
        self.archive = {APP: NEW}
        self.writes: list[str] = []  # anything that changes the target's data

    def nodes(self):
        return []  # a one-node site (not a swarm manager's answer)

    def distribute_images(self, names):
        return []

    def all_containers(self):
        return [
            Container(c["Names"][0], c["Names"][0].lstrip("/"), c["ImageID"], labels=c["Labels"])
            for c in self.plain_containers
        ]

    def swarm_services(self):
        return list(self.all_services)

    # journal helper
    def remove_helpers(self, labels):
        return 0

    def start_helper(self, image, **kw):
        return Container("helper", "helper")

    def remove_container(self, container):
        pass

    def exec_run(self, container, argv, *, what, env=None, check=True):
        if argv[0] == "rm":
            self.journal.pop(argv[-1], None)
        elif argv[:2] == ["sh", "-c"] and argv[2].startswith("cat /journal/"):
            path = argv[2].split()[1]
            return ExecResult(0, self.journal.get(path, "").encode(), b"")
        elif "-delete" in argv:
            self.writes.append(f"wipe {what}")
        return ExecResult(0, b"", b"")

    def exec_in(self, container, argv, chunks, *, what, env=None, check=True):
        path = argv[2].split(">>")[1].split("&&")[0].strip()
        self.journal[path] = self.journal.get(path, "") + b"".join(chunks).decode()
        return ExecResult(0, b"", b"")

    # target
    def swarm_state(self):
        return "active"

    def ensure_swarm(self):
        return False

    def published_ports(self, *, exclude_stack=None):
        return {}

    def services(self, stack):
        return [s for s in self.all_services if s.name.startswith(f"{stack}_")]

    def containers(self, stack, name, *, running=True):
        return ["c"] if f"{stack}_{name}" in self.running else []

    def wait_running(self, stack, name, deadline, *, healthy=True):
        return SimpleNamespace(id=f"{stack}_{name}.1", name=f"{stack}_{name}.1")

    def scale(self, stack, name, replicas):
        self.writes.append(f"scale {stack}_{name}={replicas}")

    def wait_stopped(self, stack, name, deadline):
        pass

    def volume_exists(self, name):
        return name in self.volumes

    def create_volume(self, name, labels=None, **storage):
        self.volumes.add(name)

    def image_id(self, name):
        return self.images.get(name)

    def load_images(self, chunks):
        for _ in chunks:
            pass
        self.loaded = True
        self.images.update(self.archive)  # docker load (re)tags what the archive names
        self.writes.append("docker load")

    def stack_deploy(self, stack, compose_files, *, prune=True, inherit_env=True, variables=None):
        files = {}
        for f in compose_files:
            st = os.stat(f)
            files[f] = {
                "mode": stat.S_IMODE(st.st_mode),
                "dir_mode": stat.S_IMODE(os.stat(Path(f).parent).st_mode),
                "doc": yaml.safe_load(Path(f).read_text()),
            }
        self.deploys.append({"stack": stack, "files": files, "prune": prune})
        self.writes.append(f"deploy {stack}")


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def plan_dir(tmp_path: Path) -> Path:
    d = tmp_path / "plan"
    d.mkdir()
    shutil.copy(CAMPUS / "compose.yml", d / "compose.yml")
    shutil.copy(CAMPUS / "drplan.yml", d / "drplan.yml")
    return d


@pytest.fixture
def pc(plan_dir):
    return load_plan(plan_dir / "drplan.yml")


def fake_run(images: dict[str, str] | None = None):
    return SimpleNamespace(
        run_id=RUN_ID,
        timings={},
        images=images if images is not None else {APP: NEW},
        images_snapshot="abcdef0123",
        config_snapshot="abcdef0124",
        plan_file="drplan.yml",
        plan_dir=None,
        source=lambda svc, src: None,
        rpo_point="2025-01-01T00:00:00Z",
    )


class FakeRepo:
    where = "repository repo"

    def __init__(self, config_tar: bytes = b"") -> None:
        self.config_tar = config_tar

    def open(self):
        pass

    def dump(self, snapshot, path, what=""):
        yield b"images"

    def read_file(self, snapshot, path, what=""):
        return self.config_tar


@pytest.fixture
def engine(monkeypatch):
    """The fake engine every Engine(...) of the recovery becomes; the executor records its
    tasks instead of running them, and volume helpers answer from the fake."""
    fake = FakeEngine()
    monkeypatch.setattr(rc, "open_engine", lambda site_name, site: fake)
    monkeypatch.setattr(jmod.helper_image, "ensure", lambda e: "helper")
    monkeypatch.setattr(rc.vol, "is_empty", lambda e, v, labels: v not in fake.volumes)

    @contextlib.contextmanager
    def holding(e, volume, labels, read_only):
        yield "holder", None

    monkeypatch.setattr(rc.vol, "holding", holding)
    import drplan.store.records as records

    monkeypatch.setattr(records, "step_history", lambda repo, plan, *a, **k: {})
    fake.tasks = {}

    class Recorder:
        def __init__(self, tasks, workers, on_event):
            fake.tasks = {t.id: t for t in tasks}
            self.ok = False

        def execute(self):
            return {}

    monkeypatch.setattr(rc, "Executor", Recorder)
    return fake


def run_recover(pc, engine, monkeypatch, *, run=None, **opts):
    run = run or fake_run()
    monkeypatch.setattr(rc.mf, "find_run", lambda *a, **k: run)
    return rc.recover(pc, FakeRepo(), rc.RecoverOptions(site="recovery", **opts))


def begin(engine, stack: str = "campus", **fields) -> None:
    entry = {
        "event": "begin",
        "run_id": RUN_ID,
        "plan": "campus",
        "stack": stack,
        "site": "recovery",
        "profile": "full",
        **fields,
    }
    done = {"event": "done", "step": "restore:db/pg"}
    engine.journal[f"/journal/{stack}.jsonl"] = json.dumps(entry) + "\n" + json.dumps(done) + "\n"


def fill_target(engine, stack: str = "campus") -> None:
    """The stack's volumes exist and hold data (what a wipe would destroy)."""
    for v in ("db-data", "redis-data", "files", "exam-files"):
        engine.volumes.add(f"{stack}_{v}")


# -- (a) the journal authorises only the very same attempt --------------------------------


def _key():
    return jmod.ResumeKey(
        run_id=RUN_ID, plan="campus", stack="campus", site="recovery", profile="full"
    )


def test_journal_state_resumes_only_the_same_run_plan_stack_site_and_profile():
    KEY = _key()
    entries = [{"event": "begin", **KEY.fields()}, {"event": "done", "step": "restore:db/pg"}]
    assert ResumeJournal.state(entries, KEY) == (True, {"restore:db/pg"})
    for field, other in [
        ("run_id", "20250101T000000Z-ffff"),
        ("plan", "other"),
        ("stack", "dr-campus"),
        ("site", "primary"),
        ("profile", "exams-only"),
    ]:
        changed = [{**entries[0], field: other}, entries[1]]
        assert ResumeJournal.state(changed, KEY) == (False, set()), field
    # a journal of an older drplan (no site recorded) is not this attempt's
    old = [{k: v for k, v in entries[0].items() if k != "site"}, entries[1]]
    assert ResumeJournal.state(old, KEY) == (False, set())


@pytest.mark.parametrize(
    "other",
    [{"site": "primary"}, {"plan": "campus-old"}, {"run_id": "20240101T000000Z-0000"}, {}],
    ids=["another-site", "another-plan", "another-run", "older-drplan-no-site"],
)
def test_a_journal_not_of_this_attempt_never_authorises_a_wipe(pc, engine, monkeypatch, other):
    begin(engine, **other)
    if not other:  # as written by drplan before the site was recorded
        path = "/journal/campus.jsonl"
        lines = engine.journal[path].splitlines()
        first = json.loads(lines[0])
        del first["site"]
        engine.journal[path] = "\n".join([json.dumps(first), *lines[1:]]) + "\n"
    fill_target(engine)
    with pytest.raises(InputError) as exc:
        run_recover(pc, engine, monkeypatch)
    assert "is not empty" in str(exc.value) and "--force" in str(exc.value)
    assert engine.writes == [] and engine.tasks == {}


def test_the_same_attempt_resumes_and_keeps_what_it_restored(pc, engine, monkeypatch):
    begin(engine)
    fill_target(engine)
    engine.all_services = [FakeService("campus", s, 0) for s in ("db", "redis", "web", "exam")]
    rec = run_recover(pc, engine, monkeypatch)
    assert rec.resumed
    engine.tasks["create-volumes"].run()
    wiped = [w for w in engine.writes if w.startswith("wipe")]
    # db/pg was recorded done: kept; the others restart from empty
    assert not any("campus_db-data" in w for w in wiped)
    assert any("campus_files" in w for w in wiped)


def test_a_fresh_recovery_records_its_full_key(pc, engine, monkeypatch):
    run_recover(pc, engine, monkeypatch)
    entry = json.loads(engine.journal["/journal/campus.jsonl"].splitlines()[0])
    fields = _key().fields()
    assert {k: entry.get(k) for k in fields} == fields


# -- (b) docker load never moves a tag another stack uses, without --force ----------------


def runner(pc, engine, *, force=False, services=None, profile=None, run=None):
    opts = rc.RecoverOptions(site="recovery", force=force, profile=profile)
    site = pc.plan.sites["recovery"]
    services = services or list(pc.plan.services)
    return rc._Runner(
        pc,
        FakeRepo(),
        engine,
        run or fake_run(),
        "campus",
        services,
        opts,
        None,
        lambda t, n: None,
        site,
    )


def test_load_images_refuses_to_retag_an_image_another_stack_runs(pc, engine):
    engine.images[APP] = OLD
    engine.plain_containers = [
        {"Names": ["/shop_web.1.x"], "ImageID": OLD, "Labels": {STACK_LABEL: "shop"}}
    ]
    engine.all_services = [FakeService("shop", "web", image=f"{APP}@sha256:{'2' * 64}")]
    with pytest.raises(InputError) as exc:
        runner(pc, engine).load_images()
    msg = str(exc.value)
    assert APP in msg and "--force" in msg
    assert "container shop_web.1.x (stack shop)" in msg and "service shop_web" in msg
    assert not engine.loaded


def test_load_images_retags_when_allowed(pc, engine):
    # tag absent: loaded
    runner(pc, engine).load_images()
    assert engine.loaded
    # tag elsewhere, but only this stack's own containers use the old id: loaded
    engine.loaded, engine.images[APP] = False, OLD
    engine.plain_containers = [
        {"Names": ["/campus_web.1"], "ImageID": OLD, "Labels": {STACK_LABEL: "campus"}}
    ]
    runner(pc, engine).load_images()
    assert engine.loaded
    # another stack uses it, and --force says go
    engine.loaded, engine.images[APP] = False, OLD
    engine.all_services = [FakeService("shop", "web")]
    runner(pc, engine, force=True).load_images()
    assert engine.loaded
    # the tag already points at the run's id: nothing to load
    engine.loaded, engine.images[APP] = False, NEW
    runner(pc, engine).load_images()
    assert not engine.loaded


def test_a_fresh_recovery_refuses_a_retag_before_writing_anything(pc, engine, monkeypatch):
    engine.images[APP] = OLD
    engine.plain_containers = [{"Names": ["/by-hand"], "ImageID": OLD, "Labels": {}}]
    with pytest.raises(InputError, match="container by-hand"):
        run_recover(pc, engine, monkeypatch)
    assert engine.writes == [] and engine.tasks == {}


def test_image_references_compare_as_docker_resolves_them():
    assert rc._normal_ref("postgres") == rc._normal_ref("docker.io/library/postgres:latest")
    assert rc._normal_ref("reg:5000/a/b") == "reg:5000/a/b:latest"
    assert rc._normal_ref("a/b:1@sha256:" + "3" * 64) == "a/b:1"


# -- (c) a profile's deploy prunes nothing running, without --force ----------------------


PROFILE = ["exam", "db", "redis"]


def test_a_profile_deploy_refuses_to_prune_running_services(pc, engine):
    engine.all_services = [FakeService("campus", "db", 0), FakeService("campus", "web", 2)]
    with pytest.raises(InputError) as exc:
        runner(pc, engine, services=PROFILE, profile="exams-only").deploy_at_zero()
    msg = str(exc.value)
    assert "campus_web" in msg and "--prune" in msg and "--force" in msg
    assert engine.deploys == []


def test_a_profile_deploy_keeps_idle_services_and_prunes_only_with_force(pc, engine):
    engine.all_services = [FakeService("campus", "web", 0)]
    runner(pc, engine, services=PROFILE, profile="exams-only").deploy_at_zero()
    assert engine.deploys[-1]["prune"] is False
    engine.all_services = [FakeService("campus", "web", 3)]
    runner(pc, engine, services=PROFILE, profile="exams-only", force=True).deploy_at_zero()
    assert engine.deploys[-1]["prune"] is True
    engine.all_services = []  # nothing outside the profile: the deploy as it always was
    runner(pc, engine, services=PROFILE, profile="exams-only").deploy_at_zero()
    assert engine.deploys[-1]["prune"] is True


def test_a_resumed_profile_recovery_refuses_before_anything(pc, engine, monkeypatch):
    begin(engine, profile="exams-only")
    engine.all_services = [FakeService("campus", "web", 1)]
    with pytest.raises(InputError, match="outside profile exams-only"):
        run_recover(pc, engine, monkeypatch, profile="exams-only")
    assert engine.writes == [] and engine.tasks == {}


# -- 3. compose copies are private, never beside the plan ---------------------------------


def test_deploy_copies_are_0600_in_a_private_directory_with_absolute_paths(pc, engine, plan_dir):
    compose = yaml.safe_load((plan_dir / "compose.yml").read_text())
    compose["secrets"] = {"token": {"file": "./token.txt"}}
    compose["services"]["db"]["env_file"] = ["db.env"]
    compose["services"]["db"]["volumes"].append("./init:/docker-entrypoint-initdb.d:ro")
    (plan_dir / "compose.yml").write_text(yaml.safe_dump(compose))
    runner(pc, engine).deploy_at_zero()
    [deploy] = engine.deploys
    [(path, info)] = deploy["files"].items()
    assert info["mode"] == 0o600 and info["dir_mode"] == 0o700
    assert Path(path).parent != plan_dir and not Path(path).parent.exists()
    assert not list(plan_dir.glob(".drplan-deploy-*"))
    doc = info["doc"]
    assert doc["secrets"]["token"]["file"] == str(plan_dir / "token.txt")
    assert doc["services"]["db"]["env_file"] == [str(plan_dir / "db.env")]
    assert f"{plan_dir / 'init'}:/docker-entrypoint-initdb.d:ro" in doc["services"]["db"]["volumes"]
    assert "db-data:/data" in doc["services"]["db"]["volumes"]
    assert doc["services"]["web"]["deploy"]["replicas"] == 0


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x: 1\n", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _special(name: str, kind: bytes, target: str = ""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_the_stored_config_unpacks_private(tmp_path, plan_dir):
    into = tmp_path / "into"
    into.mkdir(mode=0o700)
    sub = tarfile.TarInfo("conf")
    sub.type, sub.mode = tarfile.DIRTYPE, 0o777
    tar = _tar(
        _file("drplan.yml", (plan_dir / "drplan.yml").read_bytes(), 0o666),
        _file("compose.yml", (plan_dir / "compose.yml").read_bytes()),
        (sub, None),
        _file("conf/extra.yml"),
    )
    path = rc.load_run_config(FakeRepo(tar), fake_run(), into)
    assert path == into / "drplan.yml"
    for p in into.rglob("*"):
        want = 0o700 if p.is_dir() else 0o600
        assert stat.S_IMODE(p.stat().st_mode) == want, p


@pytest.mark.parametrize(
    "member",
    [
        _file("/etc/drplan-evil.yml"),
        _file("../evil.yml"),
        _file("conf/../../evil.yml"),
        _special("link.yml", tarfile.SYMTYPE, "/etc/passwd"),
        _special("inside-link.yml", tarfile.SYMTYPE, "drplan.yml"),
        _special("hard.yml", tarfile.LNKTYPE, "drplan.yml"),
        _special("fifo", tarfile.FIFOTYPE),
        _special("dev", tarfile.CHRTYPE),
    ],
    ids=[
        "absolute",
        "dotdot",
        "nested-dotdot",
        "symlink-out",
        "symlink-in",
        "hardlink",
        "fifo",
        "device",
    ],
)
def test_the_stored_config_refuses_anything_but_plain_files_inside(tmp_path, member):
    into = tmp_path / "into"
    into.mkdir(mode=0o700)
    tar = _tar(_file("drplan.yml"), member)
    with pytest.raises(InputError, match="the run's plan holds"):
        rc.load_run_config(FakeRepo(tar), fake_run(), into)
    assert list(into.iterdir()) == []  # refused before anything was written
    assert not (tmp_path / "evil.yml").exists()


def test_the_stored_plan_file_must_be_inside(tmp_path):
    into = tmp_path / "into"
    into.mkdir(mode=0o700)
    (tmp_path / "outside.yml").write_text("x: 1\n")
    run = fake_run()
    run.plan_file = "../outside.yml"
    with pytest.raises(InputError, match="plan file"):
        rc.load_run_config(FakeRepo(_tar(_file("drplan.yml"))), run, into)


# -- 2. a stored plan runs nothing of its own ---------------------------------------------


def _stored_plan(plan_dir: Path, canary: Path) -> bytes:
    """The campus plan as a repository would hold it, carrying commands that would
    create `canary`: a repository env secret, a database password and a host-side check."""
    plan = yaml.safe_load((plan_dir / "drplan.yml").read_text())
    touch = f"sh -c 'touch {canary}; echo value'"
    plan["repositories"]["local"]["env"] = {"AWS_PROFILE": {"command": touch}}
    plan["services"]["db"]["data"]["pg"]["password"] = {"command": touch}
    plan["services"]["web"]["checks"].append(
        {"type": "command", "command": f"touch {canary}", "where": "host"}
    )
    return _tar(
        _file("drplan.yml", yaml.safe_dump(plan).encode()),
        _file("compose.yml", (plan_dir / "compose.yml").read_bytes()),
    )


@pytest.fixture
def stored(monkeypatch, plan_dir, tmp_path):
    """`recover --repo` against a fake repository holding the stored plan; the engine
    must never be reached."""
    from drplan.actions import recovery_source as source
    from drplan.cli import recover as cmd

    canary = tmp_path / "CANARY"
    repo = FakeRepo(_stored_plan(plan_dir, canary))
    monkeypatch.setattr(source, "repository_from_url", lambda *a: repo)
    monkeypatch.setattr(source.mf, "find_run", lambda *a, **k: fake_run())
    import drplan.store.records as records

    monkeypatch.setattr(records, "step_history", lambda *a, **k: {})
    monkeypatch.setenv("DRPLAN_REPO_PASSWORD", "pw")

    def no_engine(*a, **k):
        raise AssertionError("the target engine was reached")

    monkeypatch.setattr(rc, "open_engine", no_engine)
    out: list[str] = []

    def call(*, dry_run: bool, trust: bool = False):
        opts = rc.RecoverOptions(site="recovery", dry_run=dry_run)
        if trust:
            opts.trust_stored_plan = True
        return cmd.run_recover(
            None,
            repo_url="/srv/repo",
            repository=None,
            plan_name=None,
            docker_host=None,
            opts=opts,
            password_env=None,
            password_file=None,
            password_command=None,
            report_dir=str(tmp_path / "reports"),
            as_json=False,
            out=out.append,
        )

    return SimpleNamespace(call=call, canary=canary, out=out)


def test_a_dry_run_from_the_repository_runs_nothing_of_the_stored_plan(stored, capsys):
    assert stored.call(dry_run=True) == 0
    assert not stored.canary.exists()
    err = capsys.readouterr().err
    assert "--trust-stored-plan" in err
    assert "services.db.data.pg.password" in err and "services.web.checks[1]" in err
    assert any("dry run: would recover run" in line for line in stored.out)


def test_a_recovery_from_the_repository_refuses_the_stored_plans_commands(stored):
    with pytest.raises(InputError) as exc:
        stored.call(dry_run=False)
    msg = str(exc.value)
    assert "--trust-stored-plan" in msg and "nothing was run" in msg
    assert "services.db.data.pg.password" in msg and "host-side command" in msg
    assert not stored.canary.exists()
    # trusted on the operator's word: the recovery goes on (to the engine, here)
    with pytest.raises(AssertionError, match="engine was reached"):
        stored.call(dry_run=False, trust=True)


def test_env_and_file_secrets_of_a_stored_plan_still_resolve(tmp_path, monkeypatch):
    from drplan.plan import model as m

    monkeypatch.setenv("SOME_SECRET", "from-env")
    (tmp_path / "pw").write_text("from-file\n")
    base = tmp_path
    get = ctxmod.resolve_secret
    assert get(m.Secret(env="SOME_SECRET"), base=base, what="x", trusted=False) == "from-env"
    assert get(m.Secret(file="pw"), base=base, what="x", trusted=False) == "from-file"
    canary = tmp_path / "CANARY"
    with pytest.raises(InputError, match="--trust-stored-plan") as exc:
        get(m.Secret(command=f"touch {canary}"), base=base, what="services.db.x", trusted=False)
    assert exc.value.where == "services.db.x"
    assert not canary.exists()


def test_compose_files_outside_the_stored_plans_folder_are_listed(plan_dir):
    compose = yaml.safe_load((plan_dir / "compose.yml").read_text())
    compose["secrets"] = {"k": {"file": "/root/.ssh/id_rsa"}, "ok": {"file": "compose.yml"}}
    compose["services"]["web"]["env_file"] = "../../etc/environment"
    (plan_dir / "compose.yml").write_text(yaml.safe_dump(compose))
    pc = load_plan(plan_dir / "drplan.yml", trusted=False)
    found = "\n".join(pc.host_actions())
    assert "secrets.k.file: host file /root/.ssh/id_rsa" in found
    assert "services.web.env_file[0]" in found
    assert "secrets.ok" not in found


def test_host_side_checks_of_an_untrusted_plan_never_run(pc, engine, tmp_path):
    from drplan.plan import model as m

    canary = tmp_path / "CANARY"
    pc.trusted = False
    pc.plan.services["web"].checks = [
        m.CommandCheck(type="command", command=f"touch {canary}", where="host")
    ]
    step = Step("validate:web", StepKind.VALIDATE, service="web", timeout_s=5)
    with pytest.raises(InputError, match="--trust-stored-plan"):
        runner(pc, engine).validate(step)
    assert not canary.exists()


# -- 3. relative bind mounts of a recovery from the repository alone ----------------------


def _with_uploads(plan_dir: Path, paths: dict[str, str] | None = None) -> bytes:
    """The campus plan as a repository holds it, its web service binding `./uploads`
    (a `bind:` source of the plan, drafted from /srv/campus on the primary)."""
    compose = yaml.safe_load((plan_dir / "compose.yml").read_text())
    compose["services"]["web"]["volumes"].append("./uploads:/srv/uploads")
    compose["services"]["exam"]["volumes"].append(
        {"type": "bind", "source": "./uploads", "target": "/srv/uploads", "read_only": True}
    )
    plan = yaml.safe_load((plan_dir / "drplan.yml").read_text())
    plan["services"]["web"]["data"]["uploads"] = {
        "engine": "files",
        "bind": "/srv/campus/uploads",
        "path": "/srv/uploads",
    }
    if paths is not None:
        plan["sites"]["recovery"]["paths"] = paths
    (plan_dir / "compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    (plan_dir / "drplan.yml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return _tar(
        _file("drplan.yml", (plan_dir / "drplan.yml").read_bytes()),
        _file("compose.yml", (plan_dir / "compose.yml").read_bytes()),
    )


def _recover_from(monkeypatch, tmp_path, tar: bytes, run=None, *, dry_run: bool = False):
    from drplan.actions import recovery_source as source
    from drplan.cli import recover as cmd

    monkeypatch.setattr(source, "repository_from_url", lambda *a: FakeRepo(tar))
    monkeypatch.setattr(source.mf, "find_run", lambda *a, **k: run or fake_run())
    import drplan.store.records as records

    monkeypatch.setattr(records, "step_history", lambda *a, **k: {})
    monkeypatch.setenv("DRPLAN_REPO_PASSWORD", "pw")

    def no_engine(*a, **k):
        raise AssertionError("the target engine was reached")

    monkeypatch.setattr(rc, "open_engine", no_engine)
    return cmd.run_recover(
        None,
        repo_url="/srv/repo",
        repository=None,
        plan_name=None,
        docker_host=None,
        opts=rc.RecoverOptions(site="recovery", dry_run=dry_run),
        password_env=None,
        password_file=None,
        password_command=None,
        report_dir=str(tmp_path / "reports"),
        as_json=False,
        out=lambda line: None,
    )


@pytest.mark.parametrize("dry_run", [False, True], ids=["recover", "dry-run"])
def test_an_unmapped_relative_bind_from_the_repository_is_refused(
    monkeypatch, plan_dir, tmp_path, dry_run
):
    """Resolved in the temporary folder the stored files are unpacked into, `./uploads`
    would be a vanished directory: refused before the engine is reached, naming the
    service, the bind and the key to add."""
    tar = _with_uploads(plan_dir)
    with pytest.raises(InputError) as exc:
        _recover_from(monkeypatch, tmp_path, tar, dry_run=dry_run)
    msg = str(exc.value)
    assert "nothing was changed" in msg
    assert "service web binds ./uploads (relative to compose.yml) at /srv/uploads" in msg
    assert "service exam binds ./uploads" in msg  # shares the plan's source's key
    assert "`sites.recovery.paths: {/srv/campus/uploads: DIR}`" in msg


def test_a_relative_bind_mapped_by_the_site_goes_on(monkeypatch, plan_dir, tmp_path):
    tar = _with_uploads(plan_dir, paths={"/srv/campus/uploads": "/srv/dr/uploads"})
    with pytest.raises(AssertionError, match="engine was reached"):
        _recover_from(monkeypatch, tmp_path, tar)


def test_the_primarys_absolute_path_maps_it_too(monkeypatch, plan_dir, tmp_path):
    """A run that recorded the plan's folder on the primary: that absolute path is a key,
    even for a bind no source of the plan names (and it is the one the refusal names)."""
    tar = _with_uploads(plan_dir)
    run = fake_run()
    run.plan_dir = "/home/ops/campus"
    with pytest.raises(InputError, match=r"\{/srv/campus/uploads: DIR\}"):
        _recover_from(monkeypatch, tmp_path, tar, run)
    tar = _with_uploads(plan_dir, paths={"/home/ops/campus/uploads": "/srv/dr/uploads"})
    with pytest.raises(AssertionError, match="engine was reached"):
        _recover_from(monkeypatch, tmp_path, tar, run)


def test_the_deployed_stack_binds_the_mapped_directory(plan_dir, engine):
    """The zero-replica documents bind the site's directory, not the unpacked folder's."""
    from drplan.actions import stored_binds

    _with_uploads(plan_dir, paths={"/srv/campus/uploads": "/srv/dr/uploads"})
    pc = load_plan(plan_dir / "drplan.yml", trusted=False)
    binds = stored_binds.relative_binds(pc, list(pc.plan.services), None)
    assert {(b.service, b.keys) for b in binds} == {
        ("web", ("/srv/campus/uploads",)),
        ("exam", ("/srv/campus/uploads",)),
    }
    r = runner(pc, engine)
    r.stored_binds = binds
    r.deploy_at_zero()
    [deploy] = engine.deploys
    [doc] = [f["doc"] for f in deploy["files"].values()]
    assert "/srv/dr/uploads:/srv/uploads" in doc["services"]["web"]["volumes"]
    [exam] = [v for v in doc["services"]["exam"]["volumes"] if isinstance(v, dict)]
    assert exam["source"] == "/srv/dr/uploads" and exam["read_only"] is True
    assert str(plan_dir) not in yaml.safe_dump(doc)


def test_a_local_plans_relative_binds_need_no_mapping(plan_dir, engine):
    """With the operator's checkout, `./uploads` is a directory that stays: as before."""
    _with_uploads(plan_dir)
    pc = load_plan(plan_dir / "drplan.yml")
    runner(pc, engine).deploy_at_zero()
    [deploy] = engine.deploys
    [doc] = [f["doc"] for f in deploy["files"].values()]
    assert f"{plan_dir}/uploads:/srv/uploads" in doc["services"]["web"]["volumes"]
