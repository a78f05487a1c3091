"""Sites reached over the network, as operators reach their Swarm managers and nodes:
ssh:// and tcp:// with mutual TLS.

The primary's engine is behind a real OpenSSH server (testbed/servers.docker_ssh_server)
whose one key may run nothing but `docker system dial-stdio`; the recovery site's engine
is behind a mutual-TLS endpoint (testbed/servers.docker_tls_endpoint: socat terminating
TLS, a client certificate required), as `dockerd --tlsverify -H tcp://...` serves it.
The plan names only those URLs, the ssh client configuration and the TLS files.

The backup goes through ssh (dumps streamed out of the database's container, volume
copies in helpers, images saved); the recovery through TLS (images loaded, volumes
restored, dumps replayed into the database's stdin, which needs a half-close through
TLS; the docker CLI's `stack deploy`; verification), and the independent verifier
compares the data. The machine's own CA bundle (`REQUESTS_CA_BUNDLE`, set on many
hosts) must not replace the site's CA. An unknown host key and an engine certificate
from another CA are refused with ssh's or TLS's own words, and nothing is written.
"""

from __future__ import annotations

import os

import pytest

from testbed import plans, servers
from testbed.plans import drplan, ok, ok_json
from tests.integration.recovery_helpers import round_trip

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoints(testbed, tmp_path):
    with (
        servers.docker_ssh_server(tmp_path / "ssh-primary", testbed["primary"]) as ssh,
        servers.docker_tls_endpoint(tmp_path / "tls-recovery", testbed["recovery"]) as tls,
    ):
        yield ssh, tls


def remote(endpoints, *, tls_files: dict | None = None):
    """The plan's primary reached over ssh, its recovery site over TLS. Its local
    repository is declared shared: the testbed's engines see this host's files at the
    same paths, as nodes that mount the same NFS export do."""
    ssh, tls = endpoints

    def edit(plan: dict) -> None:
        plan["sites"]["primary"].update(docker_host=ssh.url, ssh_config=str(ssh.ssh_config))
        plan["sites"]["recovery"].update(docker_host=tls.url, tls=tls_files or tls.tls)
        for repo in plan["repositories"].values():
            if repo["role"] == "primary":
                repo["shared"] = True

    return edit


def sshd_sessions(ssh: servers.SshEngine) -> int:
    return (ssh.ssh_config.parent / "sshd.log").read_text().count("Accepted publickey")


def test_backup_over_ssh_and_recovery_over_tls(testbed, endpoints, tmp_path, monkeypatch):
    # a CA bundle of the machine's, which knows nothing of the recovery site's CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    round_trip(testbed, tmp_path, f"rmt{os.urandom(3).hex()}", remote(endpoints), "tls")
    assert sshd_sessions(endpoints[0]) > 0


def refused_backup(tmp_path, edit) -> str:
    tp = plans.adapt("campus", tmp_path / "plan", name=f"rmk{os.urandom(3).hex()}", edit=edit)
    ok("repo", "init", str(tp.path))
    done = drplan("backup", str(tp.path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert ok_json("runs", str(tp.path))["runs"] == []
    return done.stderr


def test_an_unknown_host_key_is_refused_with_ssh_words_and_nothing_written(
    testbed, endpoints, tmp_path
):
    ssh, _ = endpoints
    # the server's key is no longer one the client knows: a man in the middle, to ssh
    (ssh.ssh_config.parent / "known_hosts").write_text("")
    said = refused_backup(tmp_path, remote(endpoints))
    assert "site primary" in said and ssh.url in said
    assert "Host key verification failed" in said, said


def test_an_engine_signed_by_another_ca_is_refused_and_nothing_written(
    testbed, endpoints, tmp_path
):
    _, tls = endpoints
    other = tmp_path / "other-ca"
    other.mkdir()
    files = servers.make_certificates(other, ca_name="another CA")
    wrong = {k: str(files[k]) for k in ("ca", "cert", "key")}

    def primary_over_tls(plan: dict) -> None:
        remote(endpoints)(plan)
        plan["sites"]["primary"] = {
            "role": "primary", "docker_host": tls.url, "tls": wrong
        }

    said = refused_backup(tmp_path, primary_over_tls)
    assert "site primary" in said and tls.url in said
    assert "certificate signed by unknown authority" in said, said
