"""The one door for subprocesses (restic, the docker CLI where the Engine API has no call,
secret and probe commands, ldd, rsvg-convert).

Rules kept here so no caller can forget them: argv lists, never a shell string; secrets
only through the environment (never argv); every child in a process group of its own,
killed whole at its timeout (a grandchild holding the pipes would otherwise hang the
wait); the exit status and stderr always checked. :func:`run` raises
:class:`OperationError` naming the command; :func:`capture` returns a :class:`Finished`
saying how it ended (exit status, or why there is none), for callers whose failures are
answers (a probe) or their own kind of error (a secret command is the user's input).
Messages name the command by its first words only (`shown`), never its output unless
asked: a secret command's stdout is the secret.
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from drplan.errors import DrplanError, OperationError

# re-exported so callers of `start` need not import subprocess themselves
PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
Completed = subprocess.CompletedProcess

Unfinished = Literal["not-found", "not-executable", "cannot-start", "timeout"]


def _describe(argv: Sequence[str], shown: int = 6) -> str:
    return shlex.join(argv[:shown]) + (" ..." if len(argv) > shown else "")


@dataclass(frozen=True)
class Finished:
    """How a command run by :func:`capture` ended."""

    argv: tuple[str, ...]
    code: int | None
    """Its exit status; None when it could not start or did not finish in time."""
    stdout: bytes
    stderr: bytes
    why: Unfinished | None = None
    """Why there is no exit status."""
    problem: str | None = None
    """The same in words: "not installed or not on PATH", "timed out after 30s"..."""
    shown: int = 6
    """How many words of argv messages show."""

    @property
    def ok(self) -> bool:
        return self.problem is None and self.code == 0

    @property
    def text(self) -> str:
        """stdout as text (undecodable bytes replaced)."""
        return self.stdout.decode(errors="replace")

    def failure(self, *, output: bool = True) -> str | None:
        """What went wrong, naming the command; None when it exited 0. With `output`
        False the message leaves out what the command printed."""
        name = _describe(self.argv, self.shown)
        if self.problem is not None:
            return f"{name}: {self.problem}"
        if self.code == 0:
            return None
        said = (tail(self.stderr) or tail(self.stdout)) if output else ""
        return f"{name} exited with status {self.code}" + (f": {said}" if said else "")

    def check(
        self,
        *,
        what: str | None = None,
        error: type[DrplanError] = OperationError,
        output: bool = True,
    ) -> Finished:
        """Itself when the command exited 0; else raise `error` (where=`what`)."""
        message = self.failure(output=output)
        if message is not None:
            raise error(message, where=what)
        return self


def capture(
    argv: Sequence[str],
    *,
    timeout: float | None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    terminal: bool = False,
    shown: int = 6,
) -> Finished:
    """Run argv to completion with its output captured; never raise for the command's
    own failure (not installed, not executable, timed out, non-zero exit): the result
    says which, and `Finished.check` turns it into an error when the caller wants one.

    `timeout` None means none: only for a command that cannot stall (give one otherwise).
    `env` is added to this process's environment, or is the whole environment with
    `inherit_env` False. With `terminal` the command keeps drplan's standard input and
    controlling terminal, so it may prompt (a secret command calling sudo or gpg); it
    then stays in drplan's process group and only it is killed at its timeout. Without
    `terminal`, stdin is `input` or nothing, and at its timeout its whole process group
    is killed.
    """
    argv = list(argv)
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}

    def ended(
        code: int | None, out: bytes, err: bytes, why: Unfinished | None, problem: str | None
    ) -> Finished:
        return Finished(tuple(argv), code, out, err, why, problem, shown)

    def unstarted(why: Unfinished, problem: str) -> Finished:
        return ended(None, b"", b"", why, problem)

    if terminal:
        stdin = subprocess.PIPE if input is not None else None
    else:
        stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=not terminal,
        )
    except FileNotFoundError:
        return unstarted("not-found", "not installed or not on PATH")
    except PermissionError:
        return unstarted("not-executable", "not executable")
    except OSError as exc:
        return unstarted("cannot-start", f"cannot be started ({exc.strerror or exc})")
    with _children_lock:
        _children.add(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        out, err = _leftovers(proc)
        return ended(None, out, err, "timeout", f"timed out after {timeout:g}s")
    except BaseException:
        kill_tree(proc)
        raise
    return ended(proc.returncode, out, err, None, None)


def _leftovers(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What a killed child had printed. A grandchild outside its process group may still
    hold the pipes open: after a short wait they are closed rather than waited for."""
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        proc.wait()
        return b"", b""


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
    done = capture(argv, timeout=timeout, input=input, env=env, inherit_env=inherit_env)
    if done.why == "not-found":
        raise OperationError(f"{argv[0]} is not installed or not on PATH", where=what)
    if done.why == "timeout":
        raise OperationError(
            f"{_describe(argv)} did not finish within {timeout:.0f}s (stalled?)", where=what
        )
    if done.code is None:
        raise OperationError(done.failure() or "did not run", where=what)
    result = subprocess.CompletedProcess(argv, done.code, done.stdout, done.stderr)
    if check and done.code != 0:
        raise OperationError(
            f"{_describe(argv)} exited with status {done.code}: "
            f"{tail(done.stderr) or tail(done.stdout)}",
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
