"""Remote Docker endpoints: ssh URLs read strictly, the dial-stdio command lines (ssh,
TLS), the bridge's pump, which engines see this host's paths (tests/integration/
test_remote_sites.py drives real servers and engines)."""

from __future__ import annotations

import socket

import pytest
from plan_helpers import PLAN, assert_problem_lines, write_stack

from drplan.cli import app
from drplan.plan.model import TlsFiles, engine_on_this_host
from drplan.plan.ssh_url import SshTarget, parse_ssh_url
from drplan.platform.stdio_bridge import StdioBridge, ssh_argv, tls_argv


def run(runner, path):
    return runner.invoke(app, ["validate", str(path)])


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("ssh://manager1", SshTarget("manager1")),
        ("ssh://root@10.0.3.7", SshTarget("10.0.3.7", "root")),
        (
            "ssh://drplan@db-7.dc2.example.org:2222",
            SshTarget("db-7.dc2.example.org", "drplan", 2222),
        ),
        ("ssh://ops@[fd00::7]:22", SshTarget("fd00::7", "ops", 22)),
        ("ssh://[fd00::7]", SshTarget("fd00::7")),
    ],
)
def test_ssh_urls_that_name_a_host(url, target):
    assert parse_ssh_url(url) == target


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ssh://-oProxyCommand=touch%20x", "is not a host name"),
        ("ssh://root@-oProxyCommand=x", "is not a host name"),
        ("ssh://-l@host", "is not a user name"),
        ("ssh://root@host:22x", "is not a port"),
        ("ssh://root@host:70000", "is not a port"),
        ("ssh://root@host/var/run/docker.sock", "no path"),
        ("ssh://root:secret@host", "no path, no options"),
        ("ssh://root@host?x=1", "no path, no options"),
        ("ssh://root@[fd00::7;rm]", "IPv6 address"),
        ("ssh://root@ho st", "is not a host name"),
        ("ssh://", "is not a host name"),
    ],
)
def test_ssh_urls_ssh_could_read_as_options_are_refused(url, said):
    with pytest.raises(ValueError, match=said):
        parse_ssh_url(url)


def test_the_command_line_is_the_docker_clis_never_prompting():
    assert ssh_argv("ssh://drplan@10.0.3.7:2222", "/etc/drplan/ssh_config") == [
        "ssh",
        "-F",
        "/etc/drplan/ssh_config",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=30",
        "-T",
        "-l",
        "drplan",
        "-p",
        "2222",
        "--",
        "10.0.3.7",
        "docker system dial-stdio",
    ]
    assert ssh_argv("ssh://m1")[-3:] == ["--", "m1", "docker system dial-stdio"]
    assert "-F" not in ssh_argv("ssh://m1")


def test_a_tls_endpoint_is_dialled_by_the_docker_cli_with_the_sites_files():
    tls = TlsFiles(ca="/etc/drplan/dr/ca.pem", cert="/etc/drplan/dr/c.pem", key="/etc/drplan/k")
    assert tls_argv("tcp://10.0.3.7:2376", tls) == [
        "docker",
        "--tlsverify",
        "--tlscacert=/etc/drplan/dr/ca.pem",
        "--tlscert=/etc/drplan/dr/c.pem",
        "--tlskey=/etc/drplan/k",
        "--host=tcp://10.0.3.7:2376",
        "system",
        "dial-stdio",
    ]


def test_the_bridge_pumps_both_ways_and_passes_a_half_close_on():
    """What a restore's replay needs: the bytes written, then the end of the input, reach
    the remote command, whose whole output comes back before the end of the stream."""
    bridge = StdioBridge(["sh", "-c", "wc -c; echo done >&2"])  # stands in for dial-stdio
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(bridge.path)
            s.sendall(b"x" * 300_000)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
        assert got.strip() == b"300000"
    finally:
        bridge.close()
    assert bridge.error() == "done"  # the command's stderr, kept for the error message
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as s:
        s.connect(bridge.path)  # closed: the socket and its directory are gone


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://localhost:2375", True),
        ("tcp://10.0.0.5:2376", False),
        ("ssh://root@127.0.0.1", False),  # ssh may land anywhere (a forwarded port...)
    ],
)
def test_which_engines_see_this_hosts_paths(url, local):
    assert engine_on_this_host(url) is local


def test_a_local_repository_with_an_ssh_site_is_a_located_warning_unless_shared(runner, tmp_path):
    remote = PLAN.replace(
        'docker_host: "tcp://127.0.0.1:23750"', 'docker_host: "ssh://drplan@dr.example.org"'
    )
    assert remote != PLAN
    result = run(runner, write_stack(tmp_path, remote))
    assert result.exit_code == 0, result.stdout  # a warning: drafts use such placeholders
    lines = assert_problem_lines(result.stdout.split("\nOK: ")[0])
    [line] = [x for x in lines if "repositories.main.url" in x]
    assert "warning: a local path, and site(s) b are reached over the network" in line
    assert "shared: true" in line
    shared = remote.replace("main: {url:", "main: {shared: true, url:")
    assert shared != remote
    assert "reached over the network" not in run(runner, write_stack(tmp_path, shared)).stdout


def test_shared_is_only_for_a_local_path(runner, tmp_path):
    plan = PLAN.replace('copy: {url: "sftp:', 'copy: {shared: true, url: "sftp:')
    assert plan != PLAN
    result = run(runner, write_stack(tmp_path, plan))
    assert result.exit_code == 2
    assert "shared applies to a local path, not to a sftp repository" in result.stdout


def test_tls_files_are_for_tcp_endpoints_and_absolute(runner, tmp_path):
    tls = ", tls: {ca: /etc/d/ca.pem, cert: /etc/d/cert.pem, key: /etc/d/key.pem}}"
    on_tcp = PLAN.replace(
        'docker_host: "tcp://127.0.0.1:23750"}', f'docker_host: "tcp://127.0.0.1:23750"{tls}'
    )
    assert on_tcp != PLAN
    assert run(runner, write_stack(tmp_path, on_tcp)).exit_code == 0
    on_unix = PLAN.replace(
        'docker_host: "unix:///var/run/docker.sock"}',
        f'docker_host: "unix:///var/run/docker.sock"{tls}',
    )
    assert on_unix != PLAN
    result = run(runner, write_stack(tmp_path, on_unix))
    assert result.exit_code == 2
    assert "tls applies to tcp:// endpoints, and this site has none" in result.stdout
    relative = on_tcp.replace("ca: /etc/d/ca.pem", "ca: certs/ca.pem")
    result = run(runner, write_stack(tmp_path, relative))
    assert result.exit_code == 2
    assert "'certs/ca.pem' must be an absolute host path" in result.stdout


@pytest.mark.parametrize(
    ("files", "directory", "copy"),
    [
        (("/etc/d/ca.pem", "/etc/d/cert.pem", "/etc/d/key.pem"), "/etc/d", ""),
        (
            ("/etc/d/ca.crt", "/etc/d/cert.pem", "/etc/d/key.pem"),
            "/path/to/a/private/dir",
            "/etc/d/ca.crt as ca.pem, /etc/d/cert.pem as cert.pem, /etc/d/key.pem as key.pem",
        ),
    ],
)
def test_the_runbook_gives_the_docker_cli_the_sites_tls_files(files, directory, copy):
    from drplan.runbook import _tls_env

    ca, cert, key = files
    assert _tls_env(TlsFiles(ca=ca, cert=cert, key=key)) == {"dir": directory, "copy": copy}
    assert _tls_env(None) is None


def test_plain_tcp_to_another_host_is_a_located_warning(runner, tmp_path):
    plain = PLAN.replace('"tcp://127.0.0.1:23750"', '"tcp://dr.example.org:2375"')
    assert plain != PLAN
    result = run(runner, write_stack(tmp_path, plain))
    assert result.exit_code == 0, result.stdout
    lines = assert_problem_lines(result.stdout.split("\nOK: ")[0])
    [line] = [x for x in lines if "sites.b.docker_host" in x]
    assert "warning: tcp://dr.example.org:2375 is plain TCP" in line
    # loopback (the engine of this host) and TLS sites are not warned about
    assert "plain TCP" not in run(runner, write_stack(tmp_path)).stdout
    tls = ', tls: {ca: /etc/d/ca.pem, cert: /etc/d/cert.pem, key: /etc/d/key.pem}}'
    with_tls = plain.replace('"tcp://dr.example.org:2375"}', f'"tcp://dr.example.org:2375"{tls}')
    assert with_tls != plain
    assert "plain TCP" not in run(runner, write_stack(tmp_path, with_tls)).stdout
