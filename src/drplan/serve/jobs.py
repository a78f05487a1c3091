"""One job of the daemon: the very command a user would type, in a child process.

`drplan backup PLAN --json` run by the daemon is the same code path as run by hand or by
the tests, and a child process keeps the daemon small and safe: a job's memory is given
back when it ends, a job that hangs or crashes cannot take the scheduler down, and its
own SIGTERM handling (drplan.interrupt: helpers removed, run recorded as interrupted)
applies when the daemon stops. Secrets reach the child through the inherited
environment, never its argv.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.plan import model as m

# how long a stopped child has after SIGTERM before SIGKILL (its own clean-up included)
TERM_GRACE_S = 60.0


@dataclass
class Outcome:
    """How a child ended: its exit status, its JSON document, its error line."""

    exit_code: int
    document: Any = None
    error: str | None = None
    interrupted: bool = False
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.interrupted

    @property
    def ref(self) -> str | None:
        doc = self.document if isinstance(self.document, dict) else {}
        return doc.get("run_id") or doc.get("drill_id")

    @property
    def nbytes(self) -> int | None:
        doc = self.document if isinstance(self.document, dict) else {}
        sources = doc.get("sources")
        if isinstance(sources, list):
            return sum(int(s.get("bytes") or 0) for s in sources if isinstance(s, dict))
        return None


def command() -> list[str]:
    """drplan itself, with the interpreter the daemon runs on."""
    return [sys.executable, "-m", "drplan"]


def argv(job: str, plan_path: Path, plan: m.Plan, report_dir: Path) -> list[str]:
    """The command line of `job` for this plan (no secret in it)."""
    path = str(plan_path)
    if job == "check":
        extra = []
        if plan.backup.check.read_data_subset:
            extra = ["--read-data-subset", plan.backup.check.read_data_subset]
        return [*command(), "check", path, *extra, "--json"]
    if job == "drill":
        extra = ["--report-dir", str(report_dir)]
        if plan.drills.site:
            extra += ["--site", plan.drills.site]
        if plan.drills.profile != "full":
            extra += ["--profile", plan.drills.profile]
        return [*command(), "drill", path, *extra, "--json"]
    if job in ("backup", "copy", "prune"):
        return [*command(), job, path, "--json"]
    raise ValueError(f"unknown job {job!r}")


def error_line(stderr: str) -> str | None:
    """The `error: WHERE: MESSAGE` line drplan prints for a failed command."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    marker = "Traceback (most recent call last):"
    if marker in stderr:  # a bug, not a user error: the exception's own line says what
        for line in stderr.rsplit(marker, 1)[1].splitlines()[1:]:
            if line.strip() and not line.startswith((" ", "\t")):
                return f"internal error: {line.strip()[:500]}"
    return lines[-1][:500] if lines else None


class Child:
    """A running job. `stop()` (from another thread) asks it to end: SIGTERM, then
    SIGKILL after the grace period."""

    def __init__(self, args: list[str], on_pid=None) -> None:
        self.args = args
        # a process group of its own: a stop reaches the job's own children too (restic,
        # docker), which would otherwise outlive a killed job, hold its output pipes
        # open and keep the daemon waiting; and a Ctrl-C on the daemon's terminal is the
        # daemon's to handle, not every job's
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
            start_new_session=True,
        )
        self.stopped = threading.Event()
        if on_pid is not None:
            on_pid(self.proc.pid)

    def wait(self, timeout: float | None = None) -> Outcome:
        """Wait for the end (`timeout`: stop it past that many seconds)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            out, err = self.proc.communicate()
        text_out = out.decode("utf-8", "replace")
        text_err = err.decode("utf-8", "replace")
        document = None
        for line in reversed(text_out.strip().splitlines()):
            try:
                document = json.loads(line)
                break
            except ValueError:
                continue
        if document is None and text_out.strip():
            try:
                document = json.loads(text_out)
            except ValueError:
                document = None
        code = self.proc.returncode
        return Outcome(
            exit_code=code if code >= 0 else 128 - code,
            document=document,
            error=error_line(text_err),
            interrupted=self.stopped.is_set(),
            stderr_tail=text_err.splitlines()[-20:],
        )

    def stop(self, grace: float = TERM_GRACE_S) -> None:
        """SIGTERM to the job's process group now (drplan's orderly stop; its restic
        stops too); SIGKILL to the group if the job still runs after `grace` seconds (in
        a thread, so the caller is not held)."""
        if self.proc.poll() is not None:
            return
        self.stopped.set()
        if not self._signal(signal.SIGTERM):
            return

        def kill_later() -> None:
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)

        threading.Thread(target=kill_later, daemon=True, name="drplan-kill").start()

    def _signal(self, sig: signal.Signals) -> bool:
        """`sig` to the job's process group (it leads it); False when it is gone."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:  # a group member we cannot signal: the job itself still
            self.proc.send_signal(sig)
        return True
