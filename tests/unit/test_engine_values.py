"""platform/docker.py keeps the Docker SDK to itself: callers get typed values and
OperationError, never an SDK object or exception, and importing it does not import the
SDK (commands that never talk to an engine start fast).

The engine's answers are scripted here (pure logic); the integration tests drive real
engines through the same methods."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import docker.errors
import docker.types
import pytest
import requests.exceptions

from drplan.errors import OperationError
from drplan.platform import docker as platform
from drplan.platform.docker import STACK_LABEL, Container, DockerEngine, SwarmService


def test_importing_the_platform_does_not_import_the_sdk():
    code = "import sys, drplan.platform.docker; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_service_document_becomes_a_typed_value():
    doc = {
        "ID": "s1",
        "Spec": {
            "Name": "shop_web",
            "Labels": {STACK_LABEL: "shop"},
            "Mode": {"Replicated": {"Replicas": 0}},
            "TaskTemplate": {"ContainerSpec": {"Image": f"app:1@sha256:{'2' * 64}"}},
        },
    }
    assert platform._service_of(doc) == SwarmService(
        "s1", "shop_web", 0, "app:1", labels={STACK_LABEL: "shop"}
    )
    assert platform._service_of(doc).stack == "shop"
    glob = {"ID": "s2", "Spec": {"Name": "agent", "Mode": {"Global": {}}}}
    assert platform._service_of(glob) == SwarmService("s2", "agent", None)
    assert platform._service_of(glob).stack is None


def test_a_listed_container_becomes_a_typed_value():
    doc = {"Id": "c1", "Names": ["/by-hand"], "ImageID": "sha256:1", "State": "exited"}
    assert platform._listed_container(doc) == Container("c1", "by-hand", "sha256:1", "exited")


def engine_with(client: object) -> DockerEngine:
    engine = DockerEngine.__new__(DockerEngine)
    engine.site, engine.url, engine.timeout = "test", "unix:///nowhere", 5.0
    engine.manager, engine.hostname, engine._node_id = None, "", ""  # a one-node site
    engine._node_url, engine._node_engines, engine._nodes_seen = None, {}, None
    engine.client = client
    return engine


def _raise(exc: BaseException):
    def call(*args, **kwargs):
        raise exc

    return call


@pytest.mark.parametrize(
    "exc",
    [
        docker.errors.APIError("500 Server Error: no space left on device"),
        requests.exceptions.ConnectionError("Connection aborted."),
    ],
)
def test_what_the_sdk_raises_reaches_callers_as_an_operation_error(exc):
    client = SimpleNamespace(volumes=SimpleNamespace(get=_raise(exc)))
    with pytest.raises(OperationError) as err:
        engine_with(client).volume_exists("data")
    assert err.value.where == "site test"
    assert "the Docker engine at unix:///nowhere failed" in str(err.value)
    assert isinstance(err.value.__cause__, type(exc))


def test_a_streaming_method_is_translated_too():
    api = SimpleNamespace(exec_create=_raise(requests.exceptions.ConnectionError("gone")))
    stream = engine_with(SimpleNamespace(api=api)).exec_out(
        Container("c1", "db"), ["pg_dumpall"], what="dump"
    )
    with pytest.raises(OperationError, match=r"failed.*gone"):
        next(stream)


def test_an_operation_error_passes_unchanged():
    api = SimpleNamespace(exec_inspect=lambda exec_id: {"ExitCode": None, "Running": False})
    with pytest.raises(OperationError, match="no exit status") as err:
        engine_with(SimpleNamespace(api=api)).exit_status("x", grace=0)
    assert err.value.__cause__ is None


def test_a_helper_is_started_from_typed_mounts_and_comes_back_typed():
    made: dict = {}

    def create(image, command, **kwargs):
        made.update(kwargs, image=image)
        return SimpleNamespace(
            id="h1",
            name="helper-1",
            labels=kwargs["labels"],
            start=lambda: None,
            put_archive=lambda path, data: True,
        )

    engine = engine_with(SimpleNamespace(containers=SimpleNamespace(create=create)))
    helper = engine.start_helper(
        "drplan/helper:x",
        mounts=[
            DockerEngine.volume_mount("data", "/v", read_only=True),
            DockerEngine.bind_mount("/srv/repo", "/repo"),
        ],
        labels={"org.drplan.plan": "p"},
    )
    assert isinstance(helper, Container) and (helper.id, helper.name) == ("h1", "helper-1")
    assert helper.labels["org.drplan.plan"] == "p"
    assert made["mounts"] == [
        docker.types.Mount("/v", "data", type="volume", read_only=True),
        docker.types.Mount("/repo", "/srv/repo", type="bind", read_only=False),
    ]


def test_removing_a_container_already_gone_is_no_error():
    removed: list[str] = []

    def remove_container(cid, force):
        removed.append(cid)
        raise docker.errors.NotFound("no such container")

    engine = engine_with(SimpleNamespace(api=SimpleNamespace(remove_container=remove_container)))
    engine.remove_container(Container("h1", "helper-1"))
    assert removed == ["h1"]


def test_a_nodes_engine_asks_its_manager_about_the_cluster_and_execs_go_to_the_holder():
    """Cluster questions (services, scale, tasks) go to the manager whoever is asked; a
    container carries its node, and an exec or a removal reaches that node's engine."""
    calls: list[tuple[str, str]] = []

    class Api:
        def __init__(self, who: str) -> None:
            self.who = who

        def remove_container(self, cid, force=False):
            calls.append((self.who, cid))

    manager = engine_with(SimpleNamespace(api=Api("manager")))
    manager._node_id = "n-manager"
    worker = engine_with(SimpleNamespace(api=Api("worker")))
    worker._node_id, worker.manager, worker.hostname = "n-worker", manager, "w1"
    manager._node_engines["n-worker"] = worker
    manager.services = lambda stack: ["asked the manager"]  # type: ignore[method-assign]
    assert worker.services("s") == ["asked the manager"]
    assert worker.where == "site test, node w1"
    manager.remove_container(Container("c1", "db.1", node="n-worker"))
    worker.remove_container(Container("c2", "helper", node="n-manager"))
    manager.remove_container(Container("c3", "own", node=""))
    assert calls == [("worker", "c1"), ("manager", "c2"), ("manager", "c3")]
