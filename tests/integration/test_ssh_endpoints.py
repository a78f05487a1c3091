"""Sites reached over ssh://, as operators reach their Swarm managers and nodes.

Each site's engine is behind a real OpenSSH server (testbed/servers.docker_ssh_server)
whose one key may run nothing but `docker system dial-stdio`; the plan names only the
ssh:// URLs and the ssh client configuration. Backup (dumps streamed out of the
database's container, volume copies, images saved), recovery (images loaded, volumes
restored, dumps replayed into the database's stdin, the stack deployed by the docker
CLI) and verification all go through ssh, and the independent verifier compares the
data. A host key ssh does not know is refused with ssh's own words, and nothing is
written to the repository.
"""

from __future__ import annotations

import os

import pytest

from testbed import plans, servers
from testbed.plans import drplan, ok, ok_json
from tests.integration.recovery_helpers import round_trip

pytestmark = pytest.mark.integration


@pytest.fixture
def ssh_sites(testbed, tmp_path):
    with (
        servers.docker_ssh_server(tmp_path / "ssh-primary", testbed["primary"]) as primary,
        servers.docker_ssh_server(tmp_path / "ssh-recovery", testbed["recovery"]) as recovery,
    ):
        yield {"primary": primary, "recovery": recovery}


def through(ssh_sites):
    """The plan's sites reached over ssh only. Its local repository is declared shared:
    the testbed's engines see this host's files at the same paths, as nodes that mount
    the same NFS export do."""

    def edit(plan: dict) -> None:
        for name, ssh in ssh_sites.items():
            plan["sites"][name]["docker_host"] = ssh.url
            plan["sites"][name]["ssh_config"] = str(ssh.ssh_config)
        for repo in plan["repositories"].values():
            if repo["role"] == "primary":
                repo["shared"] = True

    return edit


def sessions(ssh: servers.SshEngine) -> int:
    return (ssh.ssh_config.parent / "sshd.log").read_text().count("Accepted publickey")


def test_backup_and_recovery_through_ssh_endpoints(testbed, ssh_sites, tmp_path):
    round_trip(testbed, tmp_path, f"sshc{os.urandom(3).hex()}", through(ssh_sites), "ssh")
    # drplan reached both engines through ssh: each sshd let its key in
    assert all(sessions(ssh) > 0 for ssh in ssh_sites.values())


def test_an_unknown_host_key_is_refused_with_ssh_words_and_nothing_written(
    testbed, ssh_sites, tmp_path
):
    name = f"sshk{os.urandom(3).hex()}"
    tp = plans.adapt(
        "campus",
        tmp_path / "plan",
        name=name,
        edit=through(ssh_sites),
        docker_hosts=[testbed["primary"], testbed["recovery"]],
    )
    ok("repo", "init", str(tp.path))
    # the server's key is no longer the one the client knows: a man in the middle, to ssh
    known = ssh_sites["primary"].ssh_config.parent / "known_hosts"
    known.write_text("")
    done = drplan("backup", str(tp.path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "site primary" in done.stderr and ssh_sites["primary"].url in done.stderr
    assert "Host key verification failed" in done.stderr, done.stderr
    assert ok_json("runs", str(tp.path))["runs"] == []
