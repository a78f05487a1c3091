"""The recovery journal, kept on the target site itself.

A recovery interrupted anywhere (crash, SIGKILL, lost connection) is resumed by running
the same command again: the journal says which steps finished, so they are not redone.
It lives in a volume on the target engine (not on the operator's laptop, which may be
gone too) and is appended to through one helper container held for the recovery.
"""

from __future__ import annotations

import contextlib
import json
import threading

from drplan.executor import now_iso
from drplan.platform import helper as helper_image
from drplan.platform.docker import Engine

VOLUME = "drplan-journal"


class TargetJournal:
    def __init__(self, engine: Engine, stack: str, plan: str) -> None:
        self.engine = engine
        self.stack = stack
        self.plan = plan
        self.path = f"/journal/{stack}.jsonl"
        self.lock = threading.Lock()
        self.container = None

    def __enter__(self) -> TargetJournal:
        self.engine.create_volume(VOLUME, labels={"org.drplan.journal": "1"})
        self.container = self.engine.start_helper(
            helper_image.ensure(self.engine),
            mounts=[Engine.volume_mount(VOLUME, "/journal")],
            labels={"org.drplan.plan": self.plan, "org.drplan.run": "journal"},
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)

    def read(self) -> list[dict]:
        res = self.engine.exec_run(
            self.container,
            ["sh", "-c", f"cat {self.path} 2>/dev/null || true"],
            what="reading the recovery journal",
        )
        entries = []
        for line in res.stdout.decode(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
        return entries

    def append(self, **entry: object) -> None:
        line = json.dumps({"ts": now_iso(), **entry}) + "\n"
        with self.lock:
            self.engine.exec_in(
                self.container,
                ["sh", "-c", f"cat >> {self.path} && sync"],
                [line.encode()],
                what="writing the recovery journal",
            )

    def reset(self) -> None:
        with self.lock:
            self.engine.exec_run(
                self.container, ["rm", "-f", self.path], what="resetting the recovery journal"
            )

    def remove(self) -> None:
        self.reset()

    @staticmethod
    def state(entries: list[dict], run_id: str) -> tuple[bool, set[str]]:
        """(this run's journal exists, steps it recorded as done)."""
        begun = [e for e in entries if e.get("event") == "begin"]
        if not begun or begun[-1].get("run_id") != run_id:
            return False, set()
        last = entries.index(begun[-1])
        done = {e["step"] for e in entries[last:] if e.get("event") == "done"}
        return True, done
