"""Placement on a multi-node site: Swarm's constraint rules, node choice, refusals, pins,
and the site's per-node engine endpoints (`sites.NAME.nodes`)."""

from __future__ import annotations

import copy
import re

import pytest
from plan_helpers import PLAN, assert_problem_lines, write_stack
from pydantic import ValidationError

from drplan.cli import app
from drplan.plan.model import Site
from drplan.plan.placement import Node, assign, eligible, parse

# the shape of `docker node inspect` on a worker (Engine API 1.47), trimmed of nothing
# drplan reads
WORKER_DOC = {
    "ID": "ktnvsh1ms0rmdsk5ycdtwpwvu",
    "Version": {"Index": 27},
    "CreatedAt": "2026-11-30T17:01:02.123456789Z",
    "UpdatedAt": "2026-11-30T17:01:03.456789012Z",
    "Spec": {"Labels": {"disk": "ssd", "zone": "dr"}, "Role": "worker", "Availability": "active"},
    "Description": {
        "Hostname": "recovery-2",
        "Platform": {"Architecture": "x86_64", "OS": "linux"},
        "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 8348520448},
        "Engine": {
            "EngineVersion": "27.3.1",
            "Labels": {"storage": "nvme"},
            "Plugins": [
                {"Type": "Log", "Name": "json-file"},
                {"Type": "Network", "Name": "overlay"},
                {"Type": "Volume", "Name": "local"},
            ],
        },
        "TLSInfo": {
            "TrustRoot": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n",
            "CertIssuerSubject": "MBMxETAPBgNVBAMTCHN3YXJtLWNh",
            "CertIssuerPublicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        },
    },
    "Status": {"State": "ready", "Addr": "10.0.2.12"},
}


def _manager_doc() -> dict:
    doc = copy.deepcopy(WORKER_DOC)
    doc["ID"] = "p3x1yq8nn0v0q7u3d8ik9e7zs"
    doc["Spec"] = {"Labels": {}, "Role": "manager", "Availability": "drain"}
    doc["Description"]["Hostname"] = "recovery-1"
    del doc["Description"]["Engine"]["Labels"]
    doc["Status"] = {"State": "ready", "Addr": "0.0.0.0"}  # the leader may report this
    doc["ManagerStatus"] = {"Leader": True, "Reachability": "reachable", "Addr": "10.0.2.11:2377"}
    return doc


def node(hostname: str, role: str = "worker", **kw) -> Node:
    return Node(id=f"id-{hostname}", hostname=hostname, role=role, **kw)


# -- Node.from_api ----------------------------------------------------------------------


def test_from_api_reads_every_field_of_a_worker():
    n = Node.from_api(WORKER_DOC)
    assert n == Node(
        id="ktnvsh1ms0rmdsk5ycdtwpwvu",
        hostname="recovery-2",
        role="worker",
        availability="active",
        state="ready",
        addr="10.0.2.12",
        labels={"disk": "ssd", "zone": "dr"},
        engine_labels={"storage": "nvme"},
        os="linux",
        arch="x86_64",
    )
    assert n.usable


def test_from_api_a_leader_reporting_0000_takes_its_manager_address():
    n = Node.from_api(_manager_doc())
    assert (n.role, n.availability, n.addr, n.engine_labels) == (
        "manager",
        "drain",
        "10.0.2.11",
        {},
    )
    assert not n.usable  # drained


def test_from_api_tolerates_null_labels_and_a_missing_status():
    doc = copy.deepcopy(WORKER_DOC)
    doc["Spec"]["Labels"] = None
    del doc["Status"]
    n = Node.from_api(doc)
    assert (n.labels, n.state, n.addr, n.usable) == ({}, "unknown", "", False)


def test_nodes_are_hashable_and_compare_by_value():
    a, b = node("w1", labels={"x": "1"}), node("w1", labels={"x": "1"})
    assert a == b and len({a, b}) == 1
    assert a != node("w1", labels={"x": "2"})


@pytest.mark.parametrize(
    ("state", "availability", "usable"),
    [
        ("ready", "active", True),
        ("down", "active", False),
        ("unknown", "active", False),
        ("disconnected", "active", False),
        ("ready", "drain", False),
        ("ready", "pause", False),
    ],
)
def test_usable_means_ready_and_active(state, availability, usable):
    assert node("w", state=state, availability=availability).usable is usable


# -- parse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "op", "value"),
    [
        ("node.role==manager", "node.role", "==", "manager"),
        ("  node.labels.disk  !=  ssd ", "node.labels.disk", "!=", "ssd"),
        ("engine.labels.os == ubuntu 24.04", "engine.labels.os", "==", "ubuntu 24.04"),
        ("node.ip == 10.0.0.0/24", "node.ip", "==", "10.0.0.0/24"),
        ("node.ip != 2001:db8::2", "node.ip", "!=", "2001:db8::2"),
        ("Node.Hostname == DB-7", "Node.Hostname", "==", "DB-7"),
    ],
)
def test_parse_valid(text, key, op, value):
    c = parse(text)
    assert (c.key, c.op, c.value) == (key, op, value)
    assert str(c) == f"{key} {op} {value}"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("node.role = manager", "expected one operator, == or !="),
        ("node.role", "expected one operator, == or !="),
        ("node.role >= manager", "expected one operator"),
        ("== manager", "key '' is invalid"),
        ("n == manager", "key 'n' is invalid"),  # swarmkit wants 2 characters at least
        ("1node.role == manager", "key '1node.role' is invalid"),
        ("node.role ==", "value '' is invalid"),
        ("node.role == a==b", "value 'a==b' is invalid"),
        ("node.labels.x == <5", "value '<5' is invalid"),
        ("node.role == manager\n", None),  # trailing whitespace is trimmed: valid
    ],
)
def test_parse_invalid_names_the_constraint_and_the_fault(text, fault):
    if fault is None:
        assert parse(text).value == "manager"
        return
    with pytest.raises(ValueError) as exc:
        parse(text)
    assert f"placement constraint {text!r}" in str(exc.value)
    assert fault in str(exc.value)


def test_not_equal_is_found_when_no_double_equal_is_present():
    # swarmkit looks for `==` first: `a!==b` splits at `==` and its key `a!` is invalid
    assert parse("node.role!=worker").op == "!="
    with pytest.raises(ValueError, match=re.escape("key 'node.role!' is invalid")):
        parse("node.role!==worker")


# -- matches ----------------------------------------------------------------------------

W = Node(
    id="abc123",
    hostname="Recovery-2",
    role="worker",
    addr="10.0.2.12",
    labels={"disk": "SSD", "Zone": "dr"},
    engine_labels={"storage": "nvme"},
    os="linux",
    arch="aarch64",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node.id == abc123", True),
        ("node.id == abc", False),  # whole strings, no prefix match
        ("node.hostname == recovery-2", True),  # values: case-insensitive
        ("node.hostname != recovery-2", False),
        ("node.role == worker", True),
        ("node.role == MANAGER", False),
        ("node.role != manager", True),
        ("node.platform.os == Linux", True),
        ("node.platform.arch == x86_64", False),
        ("node.platform.arch != x86_64", True),
        ("node.labels.disk == ssd", True),
        ("node.labels.disk != ssd", False),
        ("node.labels.Zone == dr", True),
        ("node.labels.zone == dr", False),  # the label's name is case-sensitive
        ("node.labels.zone != dr", True),  # missing label: != holds
        ("node.labels.gpu == yes", False),  # missing label: == fails
        ("NODE.LABELS.disk == ssd", True),  # the prefix is not case-sensitive
        ("engine.labels.storage == NVMe", True),
        ("engine.labels.storage != nvme", False),
        ("engine.labels.missing != x", True),
        ("node.ip == 10.0.2.12", True),
        ("node.ip == 10.0.2.0/24", True),
        ("node.ip != 10.0.2.0/24", False),
        ("node.ip != 10.9.0.0/16", True),
        ("node.ip == 10.0.2.1", False),
        ("node.ip != not-an-address", False),  # malformed: no node, with either operator
        ("node.platform == linux", False),  # unknown key: no node, with == ...
        ("node.platform != linux", False),  # ... and with !=
        ("node.labels. == x", False),  # a prefix without a name is an unknown key
        ("disk == ssd", False),
        ("node.hostname == recovery-*", False),  # no glob
    ],
)
def test_matches_as_swarmkit_does(text, expected):
    assert parse(text).matches(W) is expected


def test_known_keys():
    assert all(
        parse(f"{k} == x").known
        for k in (
            "node.id",
            "node.HOSTNAME",
            "node.ip",
            "node.role",
            "node.platform.os",
            "node.platform.arch",
            "node.labels.a",
            "engine.labels.b",
        )
    )
    assert not any(parse(f"{k} == x").known for k in ("node.labels.", "node.name", "disk"))


def test_eligible_keeps_usable_nodes_satisfying_every_constraint():
    nodes = [
        node("a", labels={"disk": "ssd"}),
        node("b", labels={"disk": "ssd"}, state="down"),
        node("c", labels={"disk": "ssd"}, availability="drain"),
        node("d", "manager", labels={"disk": "ssd"}),
        node("e", labels={"disk": "hdd"}),
    ]
    got = eligible(["node.labels.disk == ssd", "node.role == worker"], nodes)
    assert [n.hostname for n in got] == ["a"]
    assert [n.hostname for n in eligible([], nodes)] == ["a", "d", "e"]


# -- assign -----------------------------------------------------------------------------


def test_assign_spreads_services_over_eligible_nodes():
    nodes = [node("w2"), node("w1"), node("w3")]
    got = assign({"a": [], "b": [], "c": [], "d": []}, nodes, site="recovery")
    assert got.refusals == []
    assert {s: n.hostname for s, n in got.nodes.items()} == {
        "a": "w1",
        "b": "w2",
        "c": "w3",
        "d": "w1",
    }


def test_assign_places_the_most_constrained_first():
    nodes = [node("w1", labels={"db": "yes"}), node("w2")]
    got = assign({"app": [], "db": ["node.labels.db == yes"]}, nodes, site="recovery")
    # db can only go to w1; app, though first by name, then goes to the emptier w2
    assert (got.nodes["db"].hostname, got.nodes["app"].hostname) == ("w1", "w2")


def test_assign_is_deterministic_whatever_the_order_of_its_inputs():
    nodes = [node(f"w{i}", labels={"zone": "dr" if i % 2 else "x"}) for i in range(5)]
    services = {f"s{i}": (["node.labels.zone == dr"] if i % 3 else []) for i in range(7)}
    first = assign(services, nodes, site="r").nodes
    reordered = dict(reversed(list(services.items())))
    for _ in range(3):
        assert assign(reordered, list(reversed(nodes)), site="r").nodes == first


def test_assign_excludes_drained_paused_and_down_nodes():
    nodes = [
        node("a", state="down"),
        node("b", availability="drain"),
        node("c", availability="pause"),
        node("d", state="disconnected"),
        node("e"),
    ]
    got = assign({"db": [], "files": []}, nodes, site="recovery")
    assert {n.hostname for n in got.nodes.values()} == {"e"}


def test_refusal_names_the_service_the_site_the_constraints_and_every_nodes_reason():
    nodes = [
        node("recovery-1", "manager", labels={"zone": "dr"}),
        node("recovery-2", state="down", labels={"disk": "ssd"}),
        node("recovery-3", availability="drain"),
        node("recovery-4", labels={}, engine_labels={}),
    ]
    got = assign(
        {"db": ["node.labels.disk==ssd"], "app": ["node.role == worker"]}, nodes, site="recovery"
    )
    assert set(got.nodes) == {"app"} and got.nodes["app"].hostname == "recovery-4"
    assert got.refusals == [
        "service db: no usable node of site recovery satisfies node.labels.disk == ssd "
        "(recovery-1: manager, labels zone=dr; recovery-2: worker, down; "
        "recovery-3: worker, drain; recovery-4: worker, no labels)"
    ]


def test_refusal_explains_each_failing_constraint():
    nodes = [node("w1", addr="10.0.0.5", labels={"a": "1"}, engine_labels={"e": "2"})]
    got = assign(
        {
            "db": [
                "node.ip == 10.9.0.0/16",
                "engine.labels.e == 3",
                "node.platform.arch == arm64",
                "node.id == zzz",
                "node.flavour == big",
            ]
        },
        nodes,
        site="dr",
    )
    assert got.refusals == [
        "service db: no usable node of site dr satisfies node.ip == 10.9.0.0/16 and "
        "engine.labels.e == 3 and node.platform.arch == arm64 and node.id == zzz and "
        "node.flavour == big (w1: worker, address 10.0.0.5, engine labels e=2, "
        "platform linux/x86_64, id id-w1, Swarm knows no key node.flavour)"
    ]


def test_refusal_on_a_site_without_nodes():
    got = assign({"db": []}, [], site="dr")
    assert got.refusals == ["service db: site dr has no node (is it a Swarm manager?)"]


def test_a_malformed_constraint_names_the_service():
    with pytest.raises(ValueError) as exc:
        assign({"db": ["node.role = worker"]}, [node("w1")], site="dr")
    assert str(exc.value).startswith("service db: placement constraint 'node.role = worker'")


def test_pins_add_the_chosen_hostname_to_the_original_constraints():
    got = assign(
        {"db": ["node.labels.disk == ssd"]}, [node("w1", labels={"disk": "ssd"})], site="r"
    )
    assert got.pins("db") == ["node.labels.disk == ssd", "node.hostname == w1"]
    # pinned, the service is eligible on that node only
    other = node("w2", labels={"disk": "ssd"})
    assert eligible(got.pins("db"), [other, got.nodes["db"]]) == [got.nodes["db"]]


def test_pins_do_not_repeat_a_hostname_already_required():
    got = assign({"db": ["node.hostname == w2"]}, [node("w1"), node("w2")], site="r")
    assert got.pins("db") == ["node.hostname == w2"]


def test_pins_use_the_node_id_when_hostnames_are_shared():
    twins = [
        Node(id="n1", hostname="clone", role="worker"),
        Node(id="n2", hostname="clone", role="worker"),
    ]
    got = assign({"db": [], "files": []}, twins, site="r")
    assert {s: got.pins(s) for s in got.nodes} == {
        "db": ["node.id == n1"],
        "files": ["node.id == n2"],
    }


def test_pins_of_an_unplaced_service_raise():
    got = assign({"db": ["node.role == manager"]}, [node("w1")], site="r")
    with pytest.raises(KeyError):
        got.pins("db")


# -- Site.nodes -------------------------------------------------------------------------


def site(nodes: dict[str, str]) -> Site:
    return Site(role="recovery", docker_host="ssh://root@manager1", nodes=nodes)


def test_node_url_prefers_the_named_entry_then_the_template():
    s = site(
        {
            "*": "ssh://root@{addr}",
            "db-7": "tcp://10.0.3.7:2376",
            "sock": "unix:///run/drplan/{hostname}/docker.sock",
        }
    )
    assert s.node_url("db-7", "10.0.3.7") == "tcp://10.0.3.7:2376"
    assert s.node_url("DB-7", "10.0.3.7") == "tcp://10.0.3.7:2376"  # hostnames: any case
    assert s.node_url("sock", "") == "unix:///run/drplan/sock/docker.sock"
    assert s.node_url("w1", "10.0.2.12") == "ssh://root@10.0.2.12"
    assert s.node_url("w1", "2001:db8::7") == "ssh://root@[2001:db8::7]"
    assert s.node_url("w1", "") is None  # the template needs an address Swarm did not give


def test_node_url_without_entries_is_none():
    assert site({}).node_url("w1", "10.0.0.1") is None
    assert site({"db-7": "tcp://10.0.3.7:2376"}).node_url("w1", "10.0.0.1") is None
    assert Site(role="primary", docker_host="unix:///var/run/docker.sock").nodes == {}


@pytest.mark.parametrize(
    ("nodes", "fault"),
    [
        ({"*": "ssh://root@{ip}"}, "nodes.*: unknown placeholder {ip}"),
        ({"w1": "tcp://{host}:2376"}, "nodes.w1: unknown placeholder {host}"),
        ({"*": "ssh://root@{addr!r}"}, "nodes.*: unknown placeholder {addr!r}"),
        ({"*": "ssh://root@{}"}, "nodes.*: unknown placeholder {}"),
        ({"*": "ssh://root@{addr"}, "nodes.*: 'ssh://root@{addr' has a { or } without its pair"),
        ({"w1": "http://w1:2375"}, "nodes.w1: 'http://w1:2375' must be a URL like"),
        ({"*": "{addr}"}, "nodes.*: '{addr}' must be a URL like"),
        ({"*": "ssh://"}, "must be a URL like"),
        ({"a b": "ssh://root@x"}, "nodes: 'a b' is not a hostname"),
    ],
)
def test_nodes_are_validated_like_docker_host(nodes, fault):
    with pytest.raises(ValidationError) as exc:
        site(nodes)
    assert fault in str(exc.value)


def test_docker_host_keeps_its_rule():
    with pytest.raises(ValidationError, match="docker_host must be a URL like"):
        Site(role="recovery", docker_host="http://x")


# -- drplan validate ------------------------------------------------------------------


def test_validate_locates_bad_site_constraints_and_node_urls(runner, tmp_path):
    plan = PLAN.replace(
        'b: {role: recovery, docker_host: "tcp://127.0.0.1:23750"}',
        'b:\n    role: recovery\n    docker_host: "tcp://127.0.0.1:23750"\n'
        '    nodes: {"*": "ssh://root@{ip}"}\n'
        '    placement:\n      db: ["node.labels.disk = ssd", "node.flavour == big", '
        '"node.role == worker"]',
    )
    result = runner.invoke(app, ["validate", str(write_stack(tmp_path, plan))])
    assert result.exit_code == 2, result.stdout
    lines = assert_problem_lines(result.stdout)
    text = "\n".join(lines)
    assert "sites.b.nodes: nodes.*: unknown placeholder {ip}" in text
    # pydantic stops at the first model error; constraints are checked once the model loads
    plan = plan.replace("{ip}", "{addr}")
    result = runner.invoke(app, ["validate", str(write_stack(tmp_path, plan))])
    lines = assert_problem_lines(result.stdout)
    # (the local repository of a site with nodes is a warning of its own: not this test's)
    lines = [line for line in lines if "several nodes" not in line]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "sites.b.placement.db[0]: placement constraint 'node.labels.disk = ssd': expected one "
        "operator, == or !=",
        "sites.b.placement.db[1]: placement constraint 'node.flavour == big': Swarm knows no key "
        "'node.flavour', so no node would satisfy it (keys: node.id, node.hostname, node.ip, "
        "node.role, node.platform.os, node.platform.arch, node.labels.NAME, engine.labels.NAME)",
    ]
