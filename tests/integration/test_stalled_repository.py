"""A repository backend that stalls mid-session never hangs drplan (threat model, class 13).

A real SFTP server (OpenSSH) is reached through a TCP relay on loopback. The relay first
passes a whole `drplan runs` and counts what the server sent on each connection; then it
stalls the first connection half-way through that count: the server's bytes stop coming,
the TCP connection stays open, as when a backend or a link freezes. `drplan runs` and
`drplan status` must then fail, clearly and naming the repository, within their repository
timeout (DRPLAN_REPO_TIMEOUT, made short here), instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid

import pytest

from testbed import plans, servers

pytestmark = pytest.mark.integration
TIMEOUT_S = 15


class StallingRelay:
    """Relays loopback TCP to `target`; counts server bytes per connection; once `stall_at`
    is set, the server's bytes on a connection stop after that many (the socket stays)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server((servers.LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.counts: list[int] = []
        self.stall_at: int | None = None
        self.stalled = threading.Event()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((servers.LOOPBACK, self.target))
            self._socks += [client, server]
            index = len(self.counts)
            self.counts.append(0)
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, index), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, index: int | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(4096):
                if index is not None:
                    limit = self.stall_at
                    if limit is not None and self.counts[index] + len(data) > limit:
                        self.stalled.set()
                        return  # the server's bytes stop here; both sockets stay open
                    self.counts[index] += len(data)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture
def sftp_plan(tmp_path, testbed):
    with servers.sftp_server(tmp_path / "sftp") as sftp:
        relay = StallingRelay(sftp.port)
        config = tmp_path / "relay_ssh_config"
        config.write_text(
            sftp.ssh_config.read_text().replace(f"Port {sftp.port}", f"Port {relay.port}")
        )
        url = sftp.repo_url(tmp_path / "sftp" / "repo")
        options = {"sftp.command": f"ssh -F {config} {servers.SSH_ALIAS} -s sftp"}

        def through_relay(plan: dict) -> None:
            primary = next(r for r in plan["repositories"].values() if r["role"] == "primary")
            primary["options"] = options

        tp = plans.adapt(
            "campus",
            tmp_path / "plan",
            name=f"stall{uuid.uuid4().hex[:6]}",
            repo_url=url,
            edit=through_relay,
        )
        plans.ok("repo", "init", tp.path)
        try:
            yield tp, relay
        finally:
            relay.close()


@pytest.mark.parametrize("command", ["runs", "status"])
def test_a_backend_that_stalls_mid_session_fails_instead_of_hanging(sftp_plan, command):
    tp, relay = sftp_plan
    env = {"DRPLAN_REPO_TIMEOUT": str(TIMEOUT_S)}
    relay.counts.clear()
    plans.ok(command, tp.path, env=env)  # the whole exchange, counted
    assert relay.counts and relay.counts[0] > 0, relay.counts
    relay.stall_at = relay.counts[0] // 2
    relay.counts.clear()
    # a hang would end in the harness's own timeout (an error, not a pass)
    proc = plans.drplan(command, tp.path, env=env, timeout=40 * TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert relay.stalled.is_set(), "the relay never stalled the exchange"
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    assert "stalled" in out and "sftp:" in out, out
