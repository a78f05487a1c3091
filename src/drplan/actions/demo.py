"""`drplan demo`: protect, destroy, recover and verify a demo stack on one Docker engine.

The same actions a user runs (backup, recover) on the demo `campus` stack: deploy it,
write data through its application, back it up into a local repository, destroy the stack
and its volumes (the disaster), recover it, and verify it against the backup's
fingerprints and against what the application showed before the disaster.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from drplan.actions import backup as backup_action
from drplan.actions import recover as recover_action
from drplan.actions.context import load_plan
from drplan.errors import OperationError
from drplan.plan.compose import published_by_service
from drplan.platform.docker import DockerEngine

STACK = "campus"
IMAGES = ["drplan-tb/postgres:15", "drplan-tb/redis:7", "drplan-tb/app:latest"]
WRITERS = {"web": 1, "exam": 2}


@dataclass
class DemoResult:
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    backup: object = None
    recovery: object = None
    timings: dict[str, float] = field(default_factory=dict)
    plan_path: Path | None = None


def default_docker_host() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    testbed = Path("/run/drplan/primary/docker.sock")
    if testbed.exists():
        return f"unix://{testbed}"
    return "unix:///var/run/docker.sock"


def prepare(workdir: Path, docker_host: str) -> Path:
    """Write the demo's compose file and a plan pointing at this engine and a local repo."""
    workdir.mkdir(parents=True, exist_ok=True)
    src = resources.files("drplan.demo").joinpath("campus")
    (workdir / "compose.yml").write_text(src.joinpath("compose.yml").read_text())
    plan = yaml.safe_load(src.joinpath("drplan.yml").read_text())
    for site in plan["sites"].values():
        site["docker_host"] = docker_host
    pw = workdir / "repo.password"
    if not pw.exists():
        pw.write_text(secrets.token_urlsafe(24) + "\n")
        pw.chmod(0o600)
    repo = next(r for r in plan["repositories"].values() if r["role"] == "primary")
    repo["url"] = str(workdir / "repo")
    repo["password"] = {"file": "repo.password"}
    path = workdir / "drplan.yml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _summary(engine: DockerEngine, stack: str, service: str) -> dict:
    c = engine.wait_running(stack, service, time.monotonic() + 120)
    out = engine.exec_run(
        c,
        ["curl", "-fsS", "http://127.0.0.1:8080/api/summary"],
        what=f"demo: reading {service}'s page",
    ).stdout
    return json.loads(out)


def destroy(engine: DockerEngine, stack: str) -> None:
    """The disaster: the stack's services and every one of its volumes are gone."""
    engine.remove_stack(stack, volumes=True)


def check_ports(engine: DockerEngine, compose: Path) -> None:
    """The demo publishes its web pages on fixed ports: say who holds one, before Swarm
    leaves the service pending for ever."""
    taken = engine.published_ports(exclude_stack=STACK)
    for name, port in published_by_service(yaml.safe_load(compose.read_text()) or {}):
        if port in taken:
            raise OperationError(
                f"the demo's service {name} publishes port {port}, which {taken[port]} "
                "already publishes on this engine: remove it, or run the demo on another "
                "engine (--docker-host)",
                where=engine.where,
            )


def run_demo(
    workdir: Path,
    docker_host: str,
    say: Callable[[str], None],
    on_event=lambda e: None,
    on_bytes=lambda t, n: None,
) -> DemoResult:
    res = DemoResult()
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        res.timings[name] = round(now - t, 1)
        t = now

    plan_path = prepare(workdir, docker_host)
    res.plan_path = plan_path
    pc = load_plan(plan_path)
    engine = DockerEngine("primary", docker_host)
    missing = [i for i in IMAGES if engine.image_id(i) is None]
    if missing:
        raise OperationError(
            f"the demo's images are not on this engine ({', '.join(missing)}); "
            "`scripts/setup demo` builds them (no registry is needed)",
            where=engine.where,
        )
    engine.ensure_swarm()
    say(f"1/6 deploying the demo stack {STACK!r} on {docker_host}")
    destroy(engine, STACK)  # a previous demo's stack and volumes: start from nothing
    check_ports(engine, workdir / "compose.yml")
    engine.stack_deploy(STACK, [str(workdir / "compose.yml")])
    for name in ("db", "redis", "web", "exam"):
        engine.wait_running(STACK, name, time.monotonic() + 300)
    lap("deploy")
    say("2/6 writing data through the application (records, uploads, sessions)")
    for service, seed in WRITERS.items():
        c = engine.wait_running(STACK, service, time.monotonic() + 60)
        engine.exec_run(
            c,
            [
                "python3",
                "/opt/app/generate.py",
                "--seed",
                str(seed),
                "--rows",
                "2000",
                "--files",
                "200",
                "--file-size",
                "65536",
                "--keys",
                "500",
            ],
            what=f"demo: writing data in {service}",
        )
    res.before = {s: _summary(engine, STACK, s) for s in WRITERS}
    lap("write")
    say("3/6 backing up: native dumps, RDB, files, images and the plan, into restic")
    pc.repository().init()
    res.backup = backup_action.run_backup(
        pc, backup_action.BackupOptions(), on_event=on_event, on_bytes=on_bytes
    )
    if not res.backup.complete:
        raise OperationError("the demo's backup is incomplete: " + "; ".join(res.backup.errors))
    lap("backup")
    say("4/6 disaster: the stack and all its volumes are destroyed")
    destroy(engine, STACK)
    lap("destroy")
    say("5/6 recovering from the repository, in dependency order")
    res.recovery = recover_action.recover(
        pc,
        pc.repository(),
        recover_action.RecoverOptions(site="recovery"),
        on_event=on_event,
        on_bytes=on_bytes,
    )
    lap("recover")
    say("6/6 verifying: fingerprints of every source, and the application's own pages")
    res.after = {s: _summary(engine, STACK, s) for s in WRITERS}
    lap("verify")
    return res
