"""Published ports: what a compose file takes on a site, and the site's port mapping."""

from __future__ import annotations

import pytest

from drplan.plan import model as m
from drplan.plan.compose import long_port, published_ports, zero_compose


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("8080:80", {"target": 80, "published": 8080}),
        (
            "127.0.0.1:8080:80/udp",
            {"target": 80, "published": 8080, "host_ip": "127.0.0.1", "protocol": "udp"},
        ),
        ("80", {"target": 80}),
        (80, {"target": 80}),
        ("9000-9001:80-81", {"target": "80-81", "published": "9000-9001"}),
        (
            {"target": 80, "published": 81, "mode": "host"},
            {"target": 80, "published": 81, "mode": "host"},
        ),
        (None, None),
    ],
)
def test_long_port(entry, expected):
    assert long_port(entry) == expected


def test_published_ports_of_both_syntaxes():
    ports = [
        "8080:80",
        "80",
        81,
        "127.0.0.1:9000-9002:90-92/tcp",
        {"target": 80, "published": 8443, "mode": "host"},
        {"target": 5432},
        {"target": 1, "published": "7000"},
    ]
    assert published_ports(ports) == [8080, 9000, 9001, 9002, 8443, 7000]


def test_the_sites_port_mapping_is_by_container_port_in_both_syntaxes():
    doc = {
        "services": {
            "glpi": {"image": "glpi", "ports": ["8080:80", "8443:443"]},
            "grafana": {
                "image": "g",
                "ports": [{"target": 3000, "published": 3000, "mode": "host"}],
            },
        }
    }
    site = m.Site(
        role="recovery",
        docker_host="unix:///x.sock",
        services={"glpi": {"ports": {80: 18080}}, "grafana": {"ports": {3000: 13000}}},
    )
    out = zero_compose(doc, ["glpi", "grafana"], site, drop_ports=False)
    assert out["services"]["glpi"]["ports"] == [{"target": 80, "published": 18080}, "8443:443"]
    assert out["services"]["grafana"]["ports"] == [
        {"target": 3000, "published": 13000, "mode": "host"}
    ]
    assert published_ports(out["services"]["glpi"]["ports"]) == [18080, 8443]


def test_published_by_service():
    from drplan.plan.compose import published_by_service

    doc = {
        "services": {
            "web": {"ports": ["8080:80", "443"]},
            "db": {},
            "x": None,
            "exam": {"ports": [{"target": 80, "published": 8081}]},
        }
    }
    assert published_by_service(doc) == [("web", 8080), ("exam", 8081)]
    assert published_by_service({}) == []


def test_a_sites_volume_options_replace_the_compose_files_driver_opts():
    doc = {
        "services": {"web": {"image": "w", "volumes": ["files:/srv"]}},
        "volumes": {
            "files": {"driver": "local", "driver_opts": {"type": "nfs", "device": ":/prod"}},
            "cache": None,
        },
    }
    site = m.Site(
        role="recovery",
        docker_host="unix:///x.sock",
        volume_options={"files": {"type": "none", "o": "bind", "device": "/dr/files"}},
    )
    out = zero_compose(doc, ["web"], site, drop_ports=False)
    assert out["volumes"]["files"] == {
        "driver": "local",
        "driver_opts": {"type": "none", "o": "bind", "device": "/dr/files"},
    }
    assert out["volumes"]["cache"] is None  # untouched
