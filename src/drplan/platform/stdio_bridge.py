"""Remote Docker endpoints (ssh://, tcp:// with TLS), reached the way the docker CLI
reaches them: through `docker system dial-stdio`.

`dial-stdio` speaks the Engine API over its stdin and stdout. For `ssh://user@host` the
command is `ssh ... -- host docker system dial-stdio` (what the docker CLI runs); for a
TLS endpoint (`tcp://host:2376` with the site's `tls` files) it is the local docker CLI,
`docker --tlsverify ... -H tcp://host:2376 system dial-stdio`. drplan puts it behind a
private unix socket (:class:`StdioBridge`): each connection the Docker SDK opens to that
socket is one such process, bytes are pumped both ways, and a half-close is passed on
(an exec's stdin closed here is a closed stdin on the engine's side, so a restore's
replay ends).

Why a bridge and not the SDK's transports:
- ssh: the SDK's needs paramiko, a second SSH implementation that reads the operator's
  configuration its own way (no ProxyJump, no certificates), and its shell-out mode
  hands back a pipe where the platform layer needs a socket (an exec's stdin is
  half-closed with `shutdown(SHUT_WR)`; reads have timeouts).
- TLS: Python's `SSLSocket.shutdown()` drops the TLS layer, so an exec whose stdin was
  half-closed can no longer be read (a replayed dump's output, its exit); Go's TLS, in
  the docker CLI, sends close_notify and keeps reading. requests also lets
  REQUESTS_CA_BUNDLE replace the CA the SDK was given (psf/requests#3829).
Behind the bridge, the SDK and the CLI calls (`docker stack deploy`) talk to a plain
unix socket, as with a local engine: one code path for every scheme.

ssh itself is the operator's: keys, agent, known_hosts, and ProxyJump for nodes that
only a bastion or a manager can reach. drplan adds `BatchMode` (it runs unattended: a
prompt would hang it), a connection timeout, and `-F` when the site names an ssh config.
The processes run in a process group of their own, so a Ctrl-C reaches drplan (which
then stops in order, through them) and not them.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import weakref

from drplan.plan.model import TlsFiles
from drplan.plan.ssh_url import parse_ssh_url

CONNECT_TIMEOUT_S = 30
_CHUNK = 1 << 16


def tls_argv(url: str, tls: TlsFiles) -> list[str]:
    """The docker CLI command line that opens a Docker API stream to a TLS endpoint,
    verifying the engine against `tls.ca` and presenting `tls.cert`/`tls.key`."""
    return [
        "docker",
        "--tlsverify",
        f"--tlscacert={tls.ca}",
        f"--tlscert={tls.cert}",
        f"--tlskey={tls.key}",
        f"--host={url}",
        "system",
        "dial-stdio",
    ]


def ssh_argv(url: str, ssh_config: str | None = None) -> list[str]:
    """The ssh command line that opens a Docker API stream to `url`'s engine.

    ValueError when `url` is not a strict ssh:// URL (see plan/ssh_url.py).
    """
    target = parse_ssh_url(url)
    argv = ["ssh"]
    if ssh_config:
        argv += ["-F", ssh_config]
    argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-T"]
    if target.user:
        argv += ["-l", target.user]
    if target.port:
        argv += ["-p", str(target.port)]
    return [*argv, "--", target.host, "docker system dial-stdio"]


class StdioBridge:
    """A unix socket in a private directory; every connection to it is one process of
    `argv` (a `docker system dial-stdio`, local or through ssh)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        if shutil.which(argv[0]) is None:
            raise FileNotFoundError(f"{argv[0]} is not installed (needed for this endpoint)")
        self._dir = tempfile.mkdtemp(prefix="drplan-engine-")  # mode 0700: ours only
        self.path = os.path.join(self._dir, "docker.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._closed = threading.Event()
        self._finalizer = weakref.finalize(
            self, _release, self._listener, self._dir, self._procs, self._lock, self._closed
        )
        threading.Thread(target=self._accept, name="drplan-bridge-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def error(self) -> str:
        """What the command (ssh, the remote or local `docker`) last said on its stderr."""
        lines = [line for line in list(self._stderr) if line]
        return lines[-1] if lines else ""

    def close(self) -> None:
        self._finalizer()

    # -- one connection ---------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(conn,), name="drplan-bridge-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
            )
        except OSError as exc:
            self._stderr.append(f"cannot run {self.argv[0]}: {exc}")
            conn.close()
            return
        with self._lock:
            if self._closed.is_set():
                proc.kill()
            self._procs.add(proc)
        err = threading.Thread(target=self._drain, args=(proc,), daemon=True)
        up = threading.Thread(target=_upstream, args=(conn, proc), daemon=True)
        err.start()
        up.start()
        try:
            assert proc.stdout is not None
            while data := proc.stdout.read1(_CHUNK):
                conn.sendall(data)
        except OSError:
            pass  # the SDK closed its end: the upstream pump ends too
        finally:
            # what the command said (ssh's "Host key verification failed.") is kept
            # before the SDK sees the end of the stream and asks for it
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
            err.join(1)
            # the engine's end is done: the SDK reads what was sent, then end of stream;
            # the upstream pump's recv returns and it closes the command's stdin
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            up.join()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.join(5)
            conn.close()
            with self._lock:
                self._procs.discard(proc)

    def _drain(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace").strip())


def _upstream(conn: socket.socket, proc: subprocess.Popen) -> None:
    """The SDK's bytes to the command's stdin; its half-close (the end of an exec's stdin)
    closes it."""
    stdin = proc.stdin
    assert stdin is not None
    try:
        while data := conn.recv(_CHUNK):
            stdin.write(data)
            stdin.flush()
    except OSError:
        pass  # the remote end went away (BrokenPipe) or the connection was shut down
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


def _release(listener, directory, procs, lock, closed) -> None:
    """Stop accepting, end every ssh process, remove the socket's directory (also at exit
    when close() was not called)."""
    closed.set()
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
    with contextlib.suppress(OSError):
        listener.close()
    with lock:
        live = list(procs)
    for proc in live:
        with contextlib.suppress(OSError):
            proc.terminate()
    shutil.rmtree(directory, ignore_errors=True)
