"""The executor: DAG order, bounded parallelism, error policies, resume, timeouts."""

from __future__ import annotations

import threading
import time

from drplan.errors import OperationError
from drplan.executor import Executor, Task


def _recorder():
    order: list[str] = []
    lock = threading.Lock()

    def make(name: str, sleep: float = 0.0, fail: bool = False):
        def run():
            time.sleep(sleep)
            with lock:
                order.append(name)
            if fail:
                raise OperationError(f"{name} broke", where=f"step {name}")
            return name

        return run

    return order, make


def test_dependencies_are_honoured_and_values_returned():
    order, make = _recorder()
    tasks = [
        Task("c", make("c"), after=frozenset({"a", "b"})),
        Task("a", make("a", 0.05)),
        Task("b", make("b")),
    ]
    ex = Executor(tasks, workers=4)
    out = ex.execute()
    assert ex.ok
    assert order.index("c") > order.index("a") and order.index("c") > order.index("b")
    assert out["c"].value == "c" and out["c"].status == "ok"
    assert out["c"].t0 >= out["a"].t1


def test_parallelism_is_bounded():
    live, peak = [0], [0]
    lock = threading.Lock()

    def run():
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1

    Executor([Task(str(i), run) for i in range(8)], workers=3).execute()
    assert peak[0] == 3


def test_critical_failure_stops_new_steps_and_skips_dependents():
    order, make = _recorder()
    tasks = [
        Task("db", make("db", fail=True)),
        Task("web", make("web"), after=frozenset({"db"})),
        Task("slow", make("slow", 0.1)),
        Task("later", make("later"), after=frozenset({"slow"})),
    ]
    ex = Executor(tasks, workers=2)
    out = ex.execute()
    assert not ex.ok
    assert out["db"].status == "failed" and "db broke" in out["db"].error
    assert out["web"].status == "skipped" and "db" in out["web"].error
    assert out["slow"].status == "ok"  # already running: it finishes
    assert out["later"].status == "cancelled"
    assert "later" not in order


def test_optional_failure_only_skips_what_depends_on_it():
    _order, make = _recorder()
    tasks = [
        Task("metrics", make("metrics", fail=True), critical=False),
        Task("metrics-check", make("mc"), after=frozenset({"metrics"})),
        Task("web", make("web")),
        Task("web-check", make("wc"), after=frozenset({"web"})),
    ]
    out = Executor(tasks).execute()
    assert out["metrics-check"].status == "skipped"
    assert out["web-check"].status == "ok"


def test_steps_done_before_are_not_run_again():
    order, make = _recorder()
    tasks = [Task("a", make("a"), done=True), Task("b", make("b"), after=frozenset({"a"}))]
    ex = Executor(tasks)
    out = ex.execute()
    assert ex.ok and order == ["b"]
    assert out["a"].status == "done-before"


def test_a_step_past_its_timeout_fails_without_holding_the_run():
    _order, make = _recorder()
    t0 = time.monotonic()
    tasks = [
        Task("stuck", make("stuck", 5.0), timeout_s=0.2),
        Task("next", make("next"), after=frozenset({"stuck"})),
    ]
    ex = Executor(tasks)
    out = ex.execute()
    assert time.monotonic() - t0 < 2
    assert out["stuck"].status == "failed" and "within" in out["stuck"].error
    assert out["next"].status == "skipped"


def test_unexpected_exceptions_are_reported_with_their_type():
    def boom():
        raise KeyError("x")

    out = Executor([Task("a", boom)]).execute()
    assert out["a"].status == "failed" and out["a"].error.startswith("KeyError")
