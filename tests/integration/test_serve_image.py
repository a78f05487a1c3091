"""Deploying `drplan serve` (issue 16): the image of deploy/Dockerfile built on the primary
testbed engine with no registry (deploy/offline-build: the engine's namespace has no
network either), run as the Swarm service of deploy/serve-stack.yml as it is (only its
variables set), with the engine's socket, a state volume and Docker secrets; and the
systemd unit deploy/drplan-serve.service, checked by `systemd-analyze verify` and against
the daemon's stop sequence (no systemd runs here).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import random
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from drplan.serve import jobs
from testbed import plans, sites, stacks
from testbed.plans import PASSWORD
from testbed.serve import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "drplan-serve.service"
STACK = DEPLOY / "serve-stack.yml"
TAG = "drplan/serve:test"


def grace_of(argv: list[str]) -> float:
    """The daemon's --grace in a command line (its default when absent)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--grace="):
            return float(arg.split("=", 1)[1])
        if arg == "--grace":
            return float(argv[i + 1])
    return 30.0


def seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min|m)?", text.strip())
    assert m, text
    return float(m.group(1)) * (60 if m.group(2) in ("m", "min") else 1)


# -- the systemd unit (no engine needed) ----------------------------------------------------


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(UNIT.read_text())
    return cp


def test_the_unit_stops_after_the_daemon_and_keeps_secrets_out_of_argv():
    svc = unit()["Service"]
    argv = shlex.split(svc["ExecStart"])
    assert argv[1:2] == ["serve"] and Path(argv[0]).name == "drplan"
    assert svc["Type"] == "simple" and svc["Restart"] == "on-failure"
    assert svc["KillSignal"] == "SIGTERM"
    # systemd must not SIGKILL the daemon while a job makes its orderly stop
    assert seconds(svc["TimeoutStopSec"]) > grace_of(argv) + jobs.TERM_GRACE_S + 5
    assert svc["StateDirectory"] == "drplan"
    assert argv[argv.index("--state-dir") + 1] == "/var/lib/drplan"
    assert "--token-env" in argv and "--token-file" not in argv
    assert svc["EnvironmentFile"].startswith("/etc/drplan/")
    assert argv[argv.index("--listen") + 1].startswith("127.0.0.1:")
    # hardening that would cut the engine's socket off is absent
    assert "PrivateNetwork" not in svc and "AF_UNIX" in svc["RestrictAddressFamilies"]
    assert svc.get("ProtectSystem") != "strict" or "/run" in svc.get("ReadWritePaths", "")
    # every option given is one `drplan serve` has
    help_text = plans.ok("serve", "--help", password=None).stdout
    for opt in (a for a in argv if a.startswith("--")):
        assert opt.split("=")[0] in help_text, opt


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # verify checks that ExecStart's program exists: point it at this checkout's drplan
    text = UNIT.read_text().replace("/opt/drplan/bin/drplan", plans.DRPLAN)
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if UNIT.name in line]
    assert proc.returncode == 0 and not said, proc.stdout + proc.stderr


def test_the_stack_stops_after_the_daemon():
    doc = yaml.safe_load(STACK.read_text())
    (svc,) = doc["services"].values()
    assert seconds(svc["stop_grace_period"]) > grace_of(svc["command"]) + jobs.TERM_GRACE_S + 5
    assert svc["deploy"]["replicas"] == 1
    assert svc["deploy"]["placement"]["constraints"] == ["node.role == manager"]
    assert "--token-file=/run/secrets/drplan_token" in svc["command"]


# -- the image and the Swarm service (the primary testbed engine) -----------------------------


@pytest.fixture(scope="module")
def image(testbed) -> Iterator[str]:
    """deploy/offline-build on the primary engine. Afterwards, the images this module made
    are removed: the drplan image, its build stages, and the helper image the service's
    drplan made from the image's own binaries (the Debian base stays, as the testbed's
    images do)."""
    client = docker.DockerClient(base_url=testbed["primary"])
    before = {i.id for i in client.images.list()}
    python = str(Path(plans.DRPLAN).parent / "python")
    env = {**os.environ, "DOCKER_HOST": testbed["primary"], "PYTHON": python}
    proc = subprocess.run(
        [str(DEPLOY / "offline-build"), TAG], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    try:
        yield TAG
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(TAG)  # with its untagged parent layers
        for img in client.images.list():  # top-level images: the build's other stages
            tags = img.tags or []
            if img.id not in before and all(t.startswith("drplan/helper:") for t in tags):
                with contextlib.suppress(docker.errors.APIError):  # in use by another run
                    client.images.remove(img.id)
        client.close()


def run_in(url: str, image: str, *args: str, entrypoint: str | None = None) -> str:
    client = docker.DockerClient(base_url=url)
    try:
        out = client.containers.run(image, list(args), entrypoint=entrypoint, remove=True)
        return out.decode()
    finally:
        client.close()


def test_the_image_runs_drplan_restic_and_docker(testbed, image):
    url = testbed["primary"]
    assert (
        run_in(url, image, "version").strip() == plans.ok("version", password=None).stdout.strip()
    )
    help_text = run_in(url, image, "serve", "--help")
    assert "--token-file" in help_text and "--state-dir" in help_text
    assert run_in(url, image, "version", entrypoint="restic").startswith("restic ")
    assert "Docker version" in run_in(url, image, "--version", entrypoint="docker")
    assert "3.1" in run_in(url, image, "--version", entrypoint="python3")


def free_site_port() -> int:
    """A port nothing answers on inside the primary site's namespace."""
    rng = random.Random()
    while True:
        port = rng.randrange(30000, 40000)
        if sites.http_get("primary", port, "/", timeout=1)[0] == 0:
            return port


@pytest.fixture
def campus(testbed, tmp_path) -> Iterator[plans.TestPlan]:
    tp = plans.adapt("campus", tmp_path / "campus", name=f"srvimg{os.urandom(3).hex()}")
    plans.deploy(testbed["primary"], tp)
    try:
        plans.ok("repo", "init", tp.path)
        yield tp
    finally:
        plans.remove(testbed["primary"], tp)


def test_the_stack_serves_and_backs_up_with_secrets_from_swarm(testbed, image, campus, tmp_path):
    url = testbed["primary"]
    socket_path = url.removeprefix("unix://")
    # the plans' folder is mounted at the same path in the container; the plan the service
    # reads takes its password from the Swarm secret, the host's copy from the environment
    plans_dir = campus.dir
    host_plan = plans_dir / "host.yml"
    host_plan.write_text(campus.path.read_text())
    doc = yaml.safe_load(campus.path.read_text())
    doc["repositories"]["local"]["password"] = {"file": "/run/secrets/drplan_repo_password"}
    doc["backup"] = {"schedule": {"every": "1m"}, "retention": {"keep_last": 3}}
    doc["objectives"] = {"rpo": "10m", "rto": "30m"}
    campus.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    token = "img-token-" + os.urandom(8).hex()
    (secrets_dir / "token").write_text(token + "\n")
    (secrets_dir / "repo-password").write_text(PASSWORD + "\n")
    port = free_site_port()
    name = f"{campus.name}serve"
    env = {
        **os.environ,
        "DOCKER_HOST": url,
        "DRPLAN_IMAGE": image,
        "DRPLAN_PLANS": str(plans_dir),
        "DOCKER_SOCKET": socket_path,
        "DRPLAN_PORT": str(port),
        "DRPLAN_TOKEN_FILE": str(secrets_dir / "token"),
        "DRPLAN_PASSWORD_FILE": str(secrets_dir / "repo-password"),
    }
    before = len(plans.ok_json("runs", host_plan)["runs"])
    deploy = ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(STACK), name]
    proc = subprocess.run(deploy, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    client = docker.DockerClient(base_url=url)
    try:
        healthz = wait_for(
            "the service's /healthz",
            lambda: (r := sites.http_get("primary", port, "/healthz"))[0] == 200 and r[1],
            120,
        )
        assert campus.name in healthz
        # without the token, the API is closed; an action too
        assert sites.http_get("primary", port, "/api/plans")[0] == 401

        def service_log() -> str:
            (svc,) = client.services.list(filters={"name": f"{name}_serve"})
            return b"".join(svc.logs(stdout=True, stderr=True)).decode(errors="replace")

        def backed_up() -> list[dict]:
            runs = plans.ok_json("runs", host_plan)["runs"][before:]
            return [r for r in runs if r["complete"]]

        try:
            complete = wait_for("a complete backup run by the service", backed_up, 150, every=3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the service said:\n{service_log()[-4000:]}") from None
        assert complete
        # the daemon records the run once its child has exited, just after the repository
        said = f"plan {campus.name}: backup ok"
        logs = wait_for(
            "the service's log of the backup", lambda: said in (t := service_log()) and t, 30
        )
        (svc,) = client.services.list(filters={"name": f"{name}_serve"})
        assert PASSWORD not in logs and token not in logs
        spec = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert token not in " ".join(spec.get("Args", [])) + " ".join(spec.get("Env", []) or [])
        volumes = client.volumes.list(filters={"name": f"{name}_state"})
        assert volumes, "the state volume"
    finally:
        stacks.remove(url, name)
        for secret in client.secrets.list(filters={"label": f"com.docker.stack.namespace={name}"}):
            secret.remove()
        client.close()
