"""The recovery journal, kept on the target site itself.

A recovery interrupted anywhere (crash, SIGKILL, lost connection) is resumed by running
the same command again: the journal says which steps finished, so they are not redone.
It lives in a volume on the target engine (not on the operator's laptop, which may be
gone too) and is appended to through one helper container held for the recovery.

A journal is also an authorisation: a resumed recovery skips the target check (the stack
it defined and the volumes it half-filled are its own) and empties the volumes of the
restores it had not finished. So a journal only ever resumes the very attempt that wrote
it: same run, plan, stack, site and profile (:class:`ResumeKey`). Any other journal
found for the stack (another run, another plan or site of the same name, an older drplan
that recorded less) is not resumed: the recovery starts afresh with the full target check,
and --force is needed to overwrite anything.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import asdict, dataclass

from drplan import labels as lbl
from drplan.executor import now_iso
from drplan.platform import helper as helper_image
from drplan.platform.docker import DockerEngine

VOLUME = "drplan-journal"


@dataclass(frozen=True)
class ResumeKey:
    """What identifies one recovery attempt: a journal resumes only an equal key."""

    run_id: str
    plan: str
    stack: str
    site: str
    profile: str

    def fields(self) -> dict[str, str]:
        return asdict(self)

    def matches(self, entry: dict) -> bool:
        """The `begin` entry was written by this very attempt (every field equal; an
        entry missing one, e.g. from an older drplan, does not match)."""
        return all(entry.get(k) == v for k, v in self.fields().items())


class ResumeJournal:
    def __init__(self, engine: DockerEngine, stack: str, plan: str) -> None:
        self.engine = engine
        self.stack = stack
        self.plan = plan
        self.path = f"/journal/{stack}.jsonl"
        self.lock = threading.Lock()
        self.container = None

    def __enter__(self) -> ResumeJournal:
        self.engine.create_volume(VOLUME, labels={lbl.JOURNAL: "1"})
        self.container = self.engine.start_helper(
            helper_image.ensure(self.engine),
            mounts=[DockerEngine.volume_mount(VOLUME, "/journal")],
            labels=lbl.owned_by(self.plan, "journal"),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.engine.remove_container(self.container)

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

    def begin(self, key: ResumeKey) -> None:
        """Start the journal of a fresh attempt (after its target check passed)."""
        self.append(event="begin", **key.fields())

    @staticmethod
    def state(entries: list[dict], key: ResumeKey) -> tuple[bool, set[str]]:
        """(the journal is this very attempt's, steps it recorded as done).

        Only the newest `begin` counts, and only when it matches `key` in full: a journal
        of another run, plan, site or profile never makes a recovery a resume."""
        begun = [e for e in entries if e.get("event") == "begin"]
        if not begun or not key.matches(begun[-1]):
            return False, set()
        last = entries.index(begun[-1])
        done = {e["step"] for e in entries[last:] if e.get("event") == "done"}
        return True, done
