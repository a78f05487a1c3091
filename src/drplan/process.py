"""The one door for subprocesses (restic, the docker CLI where the Engine API has no call).

Rules kept here so no caller can forget them: argv lists, never a shell string; secrets
only through the environment (never argv); the exit status and stderr always checked; a
failure raises :class:`OperationError` naming the command (without its secret values).
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping

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
    inherit_env: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv to completion, capturing stdout and stderr.

    `env` is added to this process's environment (secrets go there), or is the whole
    environment with `inherit_env` False. `what` names the
    operation in error messages (e.g. "restic backup of campus/db"). The command runs in
    a process group of its own: at its timeout the whole group is killed (restic's ssh
    child too, which would otherwise keep its pipes open and hang the wait).
    """
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise OperationError(f"{argv[0]} is not installed or not on PATH", where=what) from exc
    with _children_lock:
        _children.add(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_tree(proc)
        proc.communicate()
        raise OperationError(
            f"{_describe(argv)} did not finish within {timeout:.0f}s (stalled?)", where=what
        ) from exc
    except BaseException:
        kill_tree(proc)
        raise
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise OperationError(
            f"{_describe(argv)} exited with status {proc.returncode}: {tail(err) or tail(out)}",
            where=what,
        )
    return result


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child started here and everything in its process group."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


_children: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()
_children_lock = threading.Lock()


def kill_children() -> int:
    """SIGKILL every streaming child still running (on SIGINT/SIGTERM: a restic reading a
    dump stops at once, and restic writes no snapshot of a stream it did not finish)."""
    with _children_lock:
        live = [p for p in _children if p.poll() is None]
    for proc in live:
        kill_tree(proc)
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
            start_new_session=True,  # its own group: `kill_tree` reaches restic's ssh too
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


def read_chunks(
    proc: subprocess.Popen[bytes], *, idle_s: float, what: str, size: int = 1 << 20
) -> Iterator[bytes]:
    """proc's stdout as it comes; a process that gives no byte for `idle_s` seconds
    when asked for one (a stalled network backend) is killed and reported, so a read
    never hangs forever. Time the caller spends between chunks does not count."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], idle_s)
        if not ready:
            kill_tree(proc)
            proc.wait()
            raise OperationError(
                f"{_describe(list(map(str, proc.args)))} gave nothing for "
                f"{idle_s:.0f}s: stalled, stopped",
                where=what,
            )
        chunk = os.read(fd, size)
        if not chunk:
            return
        yield chunk


def read_lines(proc: subprocess.Popen[bytes], *, idle_s: float, what: str) -> Iterator[bytes]:
    """proc's stdout line by line (see `read_chunks`), never held whole in memory."""
    rest = b""
    for chunk in read_chunks(proc, idle_s=idle_s, what=what):
        data = rest + chunk
        *lines, rest = data.split(b"\n")
        yield from lines
    if rest:
        yield rest


class Collected:
    """Output of a pipe read by a background thread; `result()` waits for its end.

    With `keep`, only the lines it accepts are kept (e.g. restic's final summary among
    its JSON status lines), so a long run's output never piles up in memory."""

    def __init__(self, pipe, keep: Callable[[bytes], bool] | None = None) -> None:
        self._data = b""
        self._keep = keep
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        if self._keep is None:
            self._data = pipe.read()
            return
        kept = [line for line in pipe if self._keep(line)]
        self._data = b"".join(kept)

    def result(self) -> bytes:
        self._thread.join()
        return self._data


def drain_in_background(
    proc: subprocess.Popen[bytes], keep: Callable[[bytes], bool] | None = None
) -> tuple[Collected, Collected]:
    """Read stdout (the lines `keep` accepts) and stderr concurrently, so a chatty
    process never blocks its feeder."""
    return Collected(proc.stdout, keep), Collected(proc.stderr)


def repo_timeout() -> float:
    """Seconds a repository call that should be quick (listing, locks) may take, or a
    stream may stay silent, before it is taken as stalled (DRPLAN_REPO_TIMEOUT)."""
    try:
        return float(os.environ.get("DRPLAN_REPO_TIMEOUT", 600))
    except ValueError:
        return 600.0


def tail(data: bytes | str | None, limit: int = 600) -> str:
    """The last, most telling part of an error output, on one line."""
    if not data:
        return ""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    text = " ".join(text.strip().split())
    return text if len(text) <= limit else "..." + text[-limit:]
