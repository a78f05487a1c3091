"""Off-site repository servers for tests, on this host's loopback only.

    with servers.rest_server(tmp / "rest", append_only=True) as rest:   # rclone serve restic
        url = rest.url                                                  # rest:http://127.0.0.1:P/
    with servers.sftp_server(tmp / "sftp") as sftp:                     # a real OpenSSH sshd
        url = sftp.repo_url("/abs/path/repo")                           # sftp:drplan-offsite:/...
        options = sftp.restic_options                                   # {"sftp.command": ...}
    with servers.docker_ssh_server(tmp / "ssh", engine_url) as ssh:     # sshd before an engine
        site = {"docker_host": ssh.url, "ssh_config": str(ssh.ssh_config)}

Each server is started with its own files under the given directory (config, host key,
client key, authorized_keys, known_hosts) and stopped (by its own pid) when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
SSH_ALIAS = "drplan-offsite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class RestServer:
    root: Path
    port: int
    append_only: bool
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"rest:http://{LOOPBACK}:{self.port}/"


@contextlib.contextmanager
def rest_server(root: Path, *, append_only: bool = True) -> Iterator[RestServer]:
    """`rclone serve restic` on a local directory (the role of rest-server --append-only)."""
    root = Path(root)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "rclone.log"
    argv = ["rclone", "serve", "restic", str(data), "--addr", f"{LOOPBACK}:{port}",
            "--config", "/dev/null"]
    if append_only:
        argv.append("--append-only")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, log)
        yield RestServer(root=data, port=port, append_only=append_only, proc=proc)
    finally:
        _stop(proc)


@dataclass
class SftpServer:
    root: Path
    port: int
    ssh_config: Path
    proc: subprocess.Popen

    def repo_url(self, path: str | Path) -> str:
        return f"sftp:{SSH_ALIAS}:{Path(path).resolve()}"

    @property
    def restic_options(self) -> dict[str, str]:
        return {"sftp.command": f"ssh -F {self.ssh_config} {SSH_ALIAS} -s sftp"}


@dataclass
class SshEngine:
    url: str  # ssh://USER@127.0.0.1:PORT, the site's docker_host
    ssh_config: Path  # the client's configuration: key, known host, batch mode
    proc: subprocess.Popen


def _user() -> str:
    return os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name


def _keys(root: Path) -> tuple[Path, Path]:
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True, capture_output=True)
    client_key.chmod(0o600)
    return host_key, client_key


@contextlib.contextmanager
def _sshd(root: Path, port: int, host_key: Path, extra: str) -> Iterator[subprocess.Popen]:
    """A real OpenSSH server on 127.0.0.1:port, keys only, its files under root."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {LOOPBACK}\nHostKey {host_key}\nPidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\n{extra}"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    log = root / "sshd.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, log)
        yield proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def sftp_server(root: Path) -> Iterator[SftpServer]:
    """A real OpenSSH server on 127.0.0.1 with its own config, host key and client key.

    The client side is one ssh_config file (key, known host, port, batch mode) that restic
    reaches through `-o sftp.command="ssh -F CONFIG drplan-offsite -s sftp"`.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    host_key, client_key = _keys(root)
    (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
    pub = (root / "host_ed25519.pub").read_text().split()
    (root / "known_hosts").write_text(f"{SSH_ALIAS} {pub[0]} {pub[1]}\n")
    port = free_port()
    client = root / "ssh_config"
    client.write_text(
        f"Host {SSH_ALIAS}\n  HostName {LOOPBACK}\n  Port {port}\n"
        f"  User {_user()}\n"
        f"  IdentityFile {client_key}\n  IdentitiesOnly yes\n  HostKeyAlias {SSH_ALIAS}\n"
        f"  UserKnownHostsFile {root}/known_hosts\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  ConnectTimeout 10\n"
    )
    with _sshd(root, port, host_key, "Subsystem sftp internal-sftp\n") as proc:
        yield SftpServer(root=root, port=port, ssh_config=client, proc=proc)


@contextlib.contextmanager
def docker_ssh_server(root: Path, docker_host: str) -> Iterator[SshEngine]:
    """A real OpenSSH server in front of one engine, as an operator exposes a Swarm node:
    its one key may run nothing but `docker system dial-stdio` against `docker_host`
    (a forced command, no tty, no forwarding). The client side is an ssh_config file that
    holds the key and the server's host key; no other file of this machine is touched."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    host_key, client_key = _keys(root)
    forced = f"DOCKER_HOST={docker_host} exec docker system dial-stdio"
    (root / "authorized_keys").write_text(
        f'restrict,command="{forced}" {(root / "client_ed25519.pub").read_text()}'
    )
    port = free_port()
    pub = (root / "host_ed25519.pub").read_text().split()
    (root / "known_hosts").write_text(f"[{LOOPBACK}]:{port} {pub[0]} {pub[1]}\n")
    client = root / "ssh_config"
    client.write_text(
        f"Host {LOOPBACK}\n  IdentityFile {client_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {root}/known_hosts\n  StrictHostKeyChecking yes\n"
    )
    with _sshd(root, port, host_key, "") as proc:
        yield SshEngine(url=f"ssh://{_user()}@{LOOPBACK}:{port}", ssh_config=client, proc=proc)


@dataclass
class TlsEngine:
    url: str  # tcp://127.0.0.1:PORT, the site's docker_host
    ca: Path
    cert: Path  # the client's certificate and key, as the site's `tls` names them
    key: Path
    proc: subprocess.Popen

    @property
    def tls(self) -> dict[str, str]:
        return {"ca": str(self.ca), "cert": str(self.cert), "key": str(self.key)}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(root: Path, *, ca_name: str = "drplan test CA") -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd
    --tlsverify` setups have them (openssl, EC P-256 keys)."""
    files = {k: root / f"{k}.pem" for k in ("ca", "ca-key", "server", "server-key", "cert", "key")}
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "2", "-subj", f"/CN={ca_name}", "-keyout", str(files["ca-key"]),
             "-out", str(files["ca"]))
    for cert, key, cn, ext in (
        ("server", "server-key", "127.0.0.1",
         "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("cert", "key", "drplan", "extendedKeyUsage=clientAuth"),
    ):
        csr, extfile = root / f"{cert}.csr", root / f"{cert}.ext"
        extfile.write_text(ext + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-subj", f"/CN={cn}", "-keyout", str(files[key]), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca"]), "-CAkey",
                 str(files["ca-key"]), "-CAcreateserial", "-days", "2", "-extfile",
                 str(extfile), "-out", str(files[cert]))
    for f in files.values():
        f.chmod(0o600)
    return files


@contextlib.contextmanager
def docker_tls_endpoint(root: Path, docker_host: str) -> Iterator[TlsEngine]:
    """One engine behind mutual TLS on 127.0.0.1, as `dockerd --tlsverify -H tcp://...`
    serves it: socat terminates TLS (client certificate required, signed by this CA)
    and passes each connection on to the engine's socket, a half-close included (`-t`:
    an exec's output may go on long after its input ended)."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    files = make_certificates(root)
    port = free_port()
    socket_path = docker_host.removeprefix("unix://")
    listen = (f"OPENSSL-LISTEN:{port},bind={LOOPBACK},reuseaddr,fork,cert={files['server']},"
              f"key={files['server-key']},cafile={files['ca']},verify=1")
    log = root / "socat.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(["socat", "-t", "3600", listen, f"UNIX-CONNECT:{socket_path}"],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, log)
        yield TlsEngine(url=f"tcp://{LOOPBACK}:{port}", ca=files["ca"], cert=files["cert"],
                        key=files["key"], proc=proc)
    finally:
        _stop(proc)
