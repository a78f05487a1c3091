"""An exec's exit status is read only once the engine says the process has ended; an
unknown status is a failure, never a success (threat model, class 4).

The Engine API can report `ExitCode: null` while `Running` is still true just after an
exec's output stream has ended; reading that as 0 stored truncated dumps as complete.
The engine's answers are scripted here (pure logic; the real engine is exercised by the
integration tests)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from drplan.errors import OperationError
from drplan.platform import docker as platform


class ScriptedApi:
    def __init__(self, answers: list[dict]) -> None:
        self.answers = answers
        self.calls = 0

    def exec_inspect(self, exec_id: str) -> dict:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def engine_with(api: ScriptedApi) -> platform.DockerEngine:
    engine = platform.DockerEngine.__new__(platform.DockerEngine)
    engine.site, engine.url, engine.timeout = "test", "unix:///nowhere", 5.0
    engine.manager, engine.hostname, engine._node_id = None, "", ""  # a one-node site
    engine._node_url, engine._node_engines, engine._nodes_seen = None, {}, None
    engine.client = SimpleNamespace(api=api)
    return engine


def test_a_status_not_yet_recorded_is_waited_for():
    api = ScriptedApi(
        [
            {"ExitCode": None, "Running": True},
            {"ExitCode": None, "Running": True},
            {"ExitCode": 3, "Running": False},
        ]
    )
    assert engine_with(api).exit_status("x", grace=10) == 3
    assert api.calls == 3


def test_an_unknown_status_is_a_failure_not_a_success():
    api = ScriptedApi([{"ExitCode": None, "Running": False}])
    with pytest.raises(OperationError, match="no exit status"):
        engine_with(api).exit_status("x", grace=0.5)


def test_a_zero_while_still_running_is_not_taken():
    api = ScriptedApi([{"ExitCode": 0, "Running": True}, {"ExitCode": 1, "Running": False}])
    assert engine_with(api).exit_status("x", grace=10) == 1


def test_the_client_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DRPLAN_ENGINE_TIMEOUT", "7")
    assert platform.client_timeout() == 7.0
    monkeypatch.setenv("DRPLAN_ENGINE_TIMEOUT", "not-a-number")
    assert platform.client_timeout() == 600
