"""A real `drplan serve` for the tests: the process, its log, its HTTP side, its state.

    d = serve.Serve([tp.path], tmp_path / "state", token="t0ken")
    serve.wait_for("a backup", lambda: d.runs(tp.name), 120)
    status, body, headers = d.call("POST", "/plans/NAME/pause", d.bearer())
    d.stop()                    # SIGTERM, the daemon's exit status

The daemon runs as the console script a user runs, on a free loopback port, with the
repository password (and the token, when given) in its environment only; its state file
is read in read-only mode, as an operator would with `sqlite3`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from testbed import plans
from testbed.plans import PASSWORD, PASSWORD_ENV

TOKEN_ENV = "DRPLAN_TEST_SERVE_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, cond: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """`cond()`'s first true value, polled every `every` seconds; AssertionError past
    `timeout` (a deadline on a condition, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """See the 303 an action answers, instead of following it."""

    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Serve:
    """A running `drplan serve PLAN...`."""

    def __init__(
        self,
        plan_paths: Sequence[Path],
        state_dir: Path,
        *,
        token: str | None = None,
        refresh: float = 10,
        grace: float = 20,
        env: dict[str, str] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log = state_dir / f"serve-{time.monotonic_ns()}.log"
        full = {**os.environ, PASSWORD_ENV: PASSWORD, **(env or {})}
        self.argv = [plans.DRPLAN, "serve", *map(str, plan_paths), "--state-dir", str(state_dir)]
        self.argv += ["--listen", f"127.0.0.1:{self.port}", "--refresh", f"{refresh:g}"]
        self.argv += ["--grace", f"{grace:g}", *extra]
        if token is not None:
            full[TOKEN_ENV] = token
            self.argv += ["--token-env", TOKEN_ENV]
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT, env=full)
        wait_for("the daemon's /healthz", self.healthy, 60, every=0.3)

    def text(self) -> str:
        return self.log.read_text()

    def bearer(self) -> dict[str, str]:
        assert self.token is not None
        return {"Authorization": f"Bearer {self.token}"}

    def call(
        self, method: str, path: str, headers: dict | None = None, body: str | None = None
    ) -> tuple[int, bytes, dict]:
        """(status, body, headers) of one request; redirects are not followed."""
        data = body.encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=headers or {}
        )
        try:
            with _OPENER.open(req, timeout=15) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def request(self, method: str, path: str) -> int:
        """The status of an authenticated request."""
        return self.call(method, path, self.bearer())[0]

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"drplan serve exited {self.proc.returncode}:\n{self.text()}")
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.call("GET", "/healthz")[1])["up"] is True
        return False

    def plan(self, name: str, headers: dict | None = None) -> dict:
        """The plan's entry of /api/plans."""
        status, body, _ = self.call("GET", "/api/plans", headers)
        assert status == 200, (status, body)
        return next(p for p in json.loads(body) if p["plan"] == name)

    def runs(self, plan: str | None = None) -> list[dict]:
        """The daemon's runs (its SQLite file, read-only), oldest first."""
        db = sqlite3.connect(f"file:{self.state_dir / 'serve.sqlite'}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            query, args = "SELECT * FROM runs", ()
            if plan:
                query, args = query + " WHERE plan = ?", (plan,)
            return [dict(r) for r in db.execute(query + " ORDER BY id", args)]
        finally:
            db.close()

    def metric(self, name: str, headers: dict | None = None, **labels: str) -> float | None:
        """One sample of /metrics, by name and exact labels."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        status, body, _ = self.call("GET", "/metrics", headers)
        assert status == 200, (status, body)
        for line in body.decode().splitlines():
            key, _, value = line.rpartition(" ")
            if key == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Signal the daemon and wait for its exit status (killed past `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            tail = "\n".join(self.text().splitlines()[-30:])
            raise AssertionError(
                f"drplan serve did not stop within {timeout:.0f}s; its log ends:\n{tail}"
            ) from None
