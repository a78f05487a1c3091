"""Runs a DAG of tasks: ready tasks in parallel (bounded), events for every transition.

Backup, recovery, drills and the demo are the same machinery with different task lists.
A critical task that fails stops the scheduling of new tasks (running ones finish); an
optional one that fails only skips what depends on it. Nothing sleeps a fixed time: the
executor waits on task completion.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drplan.errors import DrplanError
from drplan.interrupt import Interrupted


@dataclass
class Task:
    id: str
    run: Callable[[], Any]
    after: frozenset[str] = frozenset()
    critical: bool = True
    service: str | None = None
    kind: str = ""
    # a task done in an earlier, interrupted attempt (resume): not run again
    done: bool = False
    # seconds before the step is given up on (None: no limit)
    timeout_s: float | None = None


@dataclass
class Outcome:
    id: str
    status: str = "pending"  # pending | running | ok | failed | skipped | cancelled | done-before
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float = 0.0
    error: str | None = None
    value: Any = None
    t0: float = 0.0
    t1: float = 0.0

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class Event:
    kind: str  # started | finished
    task: Task
    outcome: Outcome


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Executor:
    tasks: list[Task]
    workers: int = 4
    on_event: Callable[[Event], None] = lambda e: None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    t_start: float = 0.0
    # called once when a signal interrupts the run: make the running steps stop soon
    # (remove their helpers, kill their subprocesses); they are then waited for, up to
    # `interrupt_grace_s`, so their clean-up (`finally`) runs before drplan exits
    on_interrupt: Callable[[], None] = lambda: None
    interrupt_grace_s: float = 900.0

    def execute(self) -> dict[str, Outcome]:
        by_id = {t.id: t for t in self.tasks}
        for t in self.tasks:
            missing = set(t.after) - set(by_id)
            if missing:
                raise ValueError(f"task {t.id} depends on unknown {sorted(missing)}")
        self.outcomes = {t.id: Outcome(t.id) for t in self.tasks}
        self.t_start = time.monotonic()
        stop = False
        done_q: queue.Queue[tuple[str, object, BaseException | None]] = queue.Queue()
        running: dict[str, float] = {}  # task id -> deadline (monotonic)

        def work(t: Task) -> None:
            try:
                done_q.put((t.id, t.run(), None))
            except BaseException as exc:  # reported as the step's failure
                done_q.put((t.id, None, exc))

        try:
            while True:
                progressed = False
                for t in self.tasks:
                    o = self.outcomes[t.id]
                    if o.status != "pending":
                        continue
                    deps = [self.outcomes[d] for d in t.after]
                    bad = sorted(
                        d.id for d in deps if d.status in ("failed", "skipped", "cancelled")
                    )
                    if bad:
                        o.status = "skipped"
                        o.error = "a step it needs did not succeed: " + ", ".join(bad)
                        progressed = True
                        self.on_event(Event("finished", t, o))
                        continue
                    if stop or not all(d.status in ("ok", "done-before") for d in deps):
                        continue
                    if t.done:
                        o.status = "done-before"
                        progressed = True
                        self.on_event(Event("finished", t, o))
                        continue
                    if len(running) >= self.workers:
                        continue
                    o.status = "running"
                    o.started_at = now_iso()
                    o.t0 = time.monotonic() - self.t_start
                    self.on_event(Event("started", t, o))
                    running[t.id] = time.monotonic() + (t.timeout_s or 1e9)
                    # daemon: a step abandoned at its timeout never keeps the process alive
                    threading.Thread(target=work, args=(t,), daemon=True, name=t.id).start()
                if not running:
                    pending = [o for o in self.outcomes.values() if o.status == "pending"]
                    if pending and progressed and not stop:
                        continue  # newly unblocked tasks (done-before chains)
                    for o in pending:
                        o.status = "cancelled"
                        o.error = "not started: the run stopped after a critical failure"
                    break
                wait_s = max(0.0, min(running.values()) - time.monotonic())
                try:
                    tid, value, exc = done_q.get(timeout=wait_s)
                except queue.Empty:
                    tid = min(running, key=running.__getitem__)
                    limit = by_id[tid].timeout_s or 0
                    value, exc = (
                        None,
                        TimeoutError(f"step {tid} did not finish within {limit:.0f}s"),
                    )
                t = by_id[tid]
                if tid not in running:
                    continue  # a late result of a step already given up on
                del running[tid]
                o = self.outcomes[tid]
                o.finished_at = now_iso()
                o.t1 = time.monotonic() - self.t_start
                o.seconds = o.t1 - o.t0
                if exc is None:
                    o.status = "ok"
                    o.value = value
                else:
                    o.status = "failed"
                    o.error = (
                        str(exc)
                        if isinstance(exc, DrplanError | TimeoutError)
                        else f"{type(exc).__name__}: {exc}\n"
                        + "".join(traceback.format_exception(exc)[-3:])
                    )
                    if t.critical:
                        stop = True
                self.on_event(Event("finished", t, o))
        except (Interrupted, KeyboardInterrupt):
            self._stop_running(running, done_q)
            raise
        return self.outcomes

    def _stop_running(self, running: dict[str, float], done_q: queue.Queue) -> None:
        """After a signal: nothing new starts; running steps are asked to stop and waited
        for (bounded), and every step is recorded as interrupted."""
        with contextlib.suppress(Exception):
            self.on_interrupt()
        deadline = time.monotonic() + self.interrupt_grace_s
        while running and time.monotonic() < deadline:
            try:
                tid, _, exc = done_q.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            except (Interrupted, KeyboardInterrupt):
                continue  # a second signal: the clean-up goes on
            if running.pop(tid, None) is not None:
                o = self.outcomes[tid]
                o.status, o.finished_at = "failed", now_iso()
                o.error = f"interrupted ({exc})" if exc else "interrupted (after it finished)"
        for tid in running:
            o = self.outcomes[tid]
            o.status, o.error = "failed", "interrupted: still running when drplan stopped"
        for o in self.outcomes.values():
            if o.status == "pending":
                o.status, o.error = "cancelled", "not started: the run was interrupted"

    @property
    def ok(self) -> bool:
        return all(o.status in ("ok", "done-before") for o in self.outcomes.values())
