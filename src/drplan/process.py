"""The one door for subprocesses (restic, the docker CLI where the Engine API has no call).

Rules kept here so no caller can forget them: argv lists, never a shell string; secrets
only through the environment (never argv); the exit status and stderr always checked; a
failure raises :class:`OperationError` naming the command (without its secret values).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import threading
import weakref
from collections.abc import Iterable, Mapping

from drplan.errors import OperationError


def _describe(argv: list[str]) -> str:
    return shlex.join(argv[:6]) + (" ..." if len(argv) > 6 else "")


def run(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    what: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv to completion, capturing stdout and stderr.

    `env` is added to this process's environment (secrets go there). `what` names the
    operation in error messages (e.g. "restic backup of campus/db").
    """
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            argv, input=input, capture_output=True, env=full_env, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise OperationError(f"{argv[0]} is not installed or not on PATH", where=what) from exc
    except subprocess.TimeoutExpired as exc:
        raise OperationError(
            f"{_describe(argv)} did not finish within {timeout:.0f}s", where=what
        ) from exc
    if check and proc.returncode != 0:
        raise OperationError(
            f"{_describe(argv)} exited with status {proc.returncode}: "
            f"{tail(proc.stderr) or tail(proc.stdout)}",
            where=what,
        )
    return proc


_children: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()
_children_lock = threading.Lock()


def kill_children() -> int:
    """SIGKILL every streaming child still running (on SIGINT/SIGTERM: a restic reading a
    dump stops at once, and restic writes no snapshot of a stream it did not finish)."""
    with _children_lock:
        live = [p for p in _children if p.poll() is None]
    for proc in live:
        with contextlib.suppress(OSError):
            proc.kill()
    return len(live)


def start(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | None = subprocess.PIPE,
    stdout: int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start argv for streaming (stdin and/or stdout pipes); stderr is captured."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
    except FileNotFoundError as exc:
        raise OperationError(f"{argv[0]} is not installed or not on PATH") from exc
    with _children_lock:
        _children.add(proc)
    return proc


def feed(proc: subprocess.Popen[bytes], chunks: Iterable[bytes]) -> None:
    """Write every chunk to proc's stdin and close it; a consumer that died stops the feed."""
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()


class Collected:
    """Output of a pipe read by a background thread; `result()` waits for its end."""

    def __init__(self, pipe) -> None:
        self._data = b""
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        self._data = pipe.read()

    def result(self) -> bytes:
        self._thread.join()
        return self._data


def drain_in_background(proc: subprocess.Popen[bytes]) -> tuple[Collected, Collected]:
    """Read stdout and stderr concurrently, so a chatty process never blocks its feeder."""
    return Collected(proc.stdout), Collected(proc.stderr)


def tail(data: bytes | str | None, limit: int = 600) -> str:
    """The last, most telling part of an error output, on one line."""
    if not data:
        return ""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    text = " ".join(text.strip().split())
    return text if len(text) <= limit else "..." + text[-limit:]
