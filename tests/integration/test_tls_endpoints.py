"""Sites reached over tcp:// with mutual TLS, as `dockerd --tlsverify` serves them.

Each site's engine is behind a TLS endpoint (testbed/servers.docker_tls_endpoint: socat
terminating TLS, a client certificate required, passing each connection on to the
engine's socket). The plan names the tcp:// URLs and each site's `tls` files; backup
(dumps streamed out), recovery (dumps replayed into the database's stdin: a half-close
through TLS; the docker CLI's `stack deploy`) and verification go through TLS, and the
verifier compares the data. The machine's own CA bundle (`REQUESTS_CA_BUNDLE`, set on
many hosts) must not replace the site's CA. An engine whose certificate another CA
signed is refused with the TLS error, nothing written.
"""

from __future__ import annotations

import os

import pytest

from testbed import plans, servers
from testbed.plans import drplan, ok, ok_json
from tests.integration.recovery_helpers import round_trip

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_sites(testbed, tmp_path):
    with (
        servers.docker_tls_endpoint(tmp_path / "tls-primary", testbed["primary"]) as primary,
        servers.docker_tls_endpoint(tmp_path / "tls-recovery", testbed["recovery"]) as recovery,
    ):
        yield {"primary": primary, "recovery": recovery}


def through(tls_sites, tls=None):
    def edit(plan: dict) -> None:
        for name, endpoint in tls_sites.items():
            plan["sites"][name]["docker_host"] = endpoint.url
            plan["sites"][name]["tls"] = (tls or {}).get(name, endpoint.tls)

    return edit


def test_backup_and_recovery_through_tls_endpoints(testbed, tls_sites, tmp_path, monkeypatch):
    # a CA bundle of the machine's, which knows nothing of the sites' CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    round_trip(testbed, tmp_path, f"tlsc{os.urandom(3).hex()}", through(tls_sites), "tls")


def test_an_engine_signed_by_another_ca_is_refused_and_nothing_written(
    testbed, tls_sites, tmp_path
):
    other = tmp_path / "other-ca"
    other.mkdir()
    files = servers.make_certificates(other, ca_name="another CA")
    wrong = {"ca": str(files["ca"]), "cert": str(files["cert"]), "key": str(files["key"])}
    tp = plans.adapt(
        "campus",
        tmp_path / "plan",
        name=f"tlsk{os.urandom(3).hex()}",
        edit=through(tls_sites, {"primary": wrong}),
    )
    ok("repo", "init", str(tp.path))
    done = drplan("backup", str(tp.path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "site primary" in done.stderr and tls_sites["primary"].url in done.stderr
    assert "certificate signed by unknown authority" in done.stderr, done.stderr
    assert ok_json("runs", str(tp.path))["runs"] == []
