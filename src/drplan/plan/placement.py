"""Where each service of a recovery runs on a multi-node Swarm site, decided before any write.

Why drplan decides instead of leaving it to Swarm: a local volume (or a bind-mounted host
directory) restored on one node is invisible from every other node, and Swarm places a
task on whichever node it likes among those satisfying the service's constraints. So
drplan picks one node per service holding node-local data, restores the data there, and
deploys the service with `node.hostname == THAT_NODE` added to its constraints (`pins`):
the only thing Swarm guarantees is that a task runs on a node satisfying its constraints.

Constraints are read and matched as Swarm itself does (swarmkit,
`manager/constraint/constraint.go` in github.com/moby/swarmkit), so a recovery site that
cannot run a service is refused up front, with every node's reason, rather than leaving
the task pending after the data was written. The rules followed from that file:

- `KEY == VALUE` or `KEY != VALUE`; `==` is looked for first; whitespace around the key
  and the value is ignored; the key matches `[A-Za-z_][A-Za-z0-9._-]+`, the value
  letters, digits, whitespace and `:-_.*()?+[]\\^$|/` (no `=`, `<`, `>`, `~`, no empty
  value).
- Known keys (compared case-insensitively): `node.id`, `node.hostname`, `node.ip` (an
  address or a CIDR subnet), `node.role`, `node.platform.os`, `node.platform.arch`,
  `node.labels.NAME`, `engine.labels.NAME`. The NAME of a label is case-sensitive.
- Values are compared case-insensitively (Unicode case folding), as whole strings: no
  glob, no regular expression, even though `*` and `[` are accepted characters.
- A missing label is the empty string: `==` fails and `!=` succeeds.
- An unknown key parses, but no node satisfies it, with `==` or with `!=` (Swarm leaves
  such a task pending forever); `Constraint.known` tells it apart so `validate` can say so.

Pure logic: no engine is asked anything here; the platform layer builds `Node`s from the
Engine API (`Node.from_api`) and the actions call `assign`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Operator = Literal["==", "!="]

# swarmkit's own patterns (constraint.go: alphaNumeric, valuePattern); fullmatch, ASCII
_KEY = re.compile(r"[a-z_][a-z0-9\-_.]+", re.IGNORECASE | re.ASCII)
_VALUE = re.compile(r"[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+", re.IGNORECASE | re.ASCII)
_OPERATORS: tuple[Operator, ...] = ("==", "!=")  # in swarmkit's order: `==` is tried first

NODE_LABELS = "node.labels."
ENGINE_LABELS = "engine.labels."
_PLAIN_KEYS = (
    "node.id",
    "node.hostname",
    "node.ip",
    "node.role",
    "node.platform.os",
    "node.platform.arch",
)


@dataclass(frozen=True)
class Node:
    """One node of a site's Swarm cluster, as the manager reports it (`GET /nodes`)."""

    id: str
    hostname: str
    role: str  # "manager" | "worker"
    availability: str = "active"  # "active" | "pause" | "drain"
    state: str = "ready"  # "ready" | "down" | "unknown" | "disconnected"
    addr: str = ""  # the node's address as Swarm reports it (Status.Addr)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)  # node labels
    engine_labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    os: str = "linux"
    arch: str = "x86_64"

    @property
    def usable(self) -> bool:
        """Swarm schedules new tasks only on a ready node whose availability is active."""
        return self.state == "ready" and self.availability == "active"

    @classmethod
    def from_api(cls, doc: Mapping[str, Any]) -> Node:
        """A node from one entry of the Engine API's `GET /nodes` (`docker node inspect`).

        The leader manager may report `Status.Addr` as `0.0.0.0`; its address is then taken
        from `ManagerStatus.Addr` (`IP:2377`)."""
        spec = doc.get("Spec") or {}
        desc = doc.get("Description") or {}
        status = doc.get("Status") or {}
        platform = desc.get("Platform") or {}
        engine = desc.get("Engine") or {}
        addr = str(status.get("Addr") or "")
        if addr in ("", "0.0.0.0"):
            manager_addr = str((doc.get("ManagerStatus") or {}).get("Addr") or "")
            host, sep, _port = manager_addr.rpartition(":")
            addr = host.strip("[]") if sep else addr
        return cls(
            id=str(doc.get("ID") or ""),
            hostname=str(desc.get("Hostname") or ""),
            role=str(spec.get("Role") or "worker"),  # swarmkit's defaults when absent
            availability=str(spec.get("Availability") or "active"),
            state=str(status.get("State") or "unknown"),
            addr=addr,
            labels=_str_map(spec.get("Labels")),
            engine_labels=_str_map(engine.get("Labels")),
            os=str(platform.get("OS") or ""),
            arch=str(platform.get("Architecture") or ""),
        )


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Constraint:
    """One placement constraint, `key op value`, as Swarm parses it."""

    key: str  # as written, trimmed
    op: Operator
    value: str  # trimmed

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value}"

    @property
    def known(self) -> bool:
        """Whether Swarm knows the key; a constraint on an unknown key matches no node."""
        lower = self.key.lower()
        return lower in _PLAIN_KEYS or any(
            lower.startswith(p) and len(lower) > len(p) for p in (NODE_LABELS, ENGINE_LABELS)
        )

    def matches(self, node: Node) -> bool:
        """Whether `node` satisfies this constraint (its availability and state aside)."""
        lower = self.key.lower()
        if lower == "node.ip":
            return self._matches_ip(node.addr)
        what = self._attribute(node)
        if what is None:
            return False  # an unknown key: swarmkit's NodeMatches returns false
        equal = self.value.casefold() == what.casefold()
        return equal if self.op == "==" else not equal

    def _attribute(self, node: Node) -> str | None:
        """The node's value for this key ("" for a missing label), None for an unknown key."""
        lower = self.key.lower()
        plain = {
            "node.id": node.id,
            "node.hostname": node.hostname,
            "node.role": node.role,
            "node.platform.os": node.os,
            "node.platform.arch": node.arch,
        }
        if lower in plain:
            return plain[lower]
        for prefix, labels in ((NODE_LABELS, node.labels), (ENGINE_LABELS, node.engine_labels)):
            if lower.startswith(prefix) and len(lower) > len(prefix):
                return labels.get(self.key[len(prefix) :], "")  # the label's name: as written
        return None

    def _matches_ip(self, addr: str) -> bool:
        """`node.ip == 10.0.0.7` or `node.ip != 10.0.0.0/24`; a malformed value matches
        no node, with either operator (as in swarmkit)."""
        try:
            node_ip = ipaddress.ip_address(addr)
        except ValueError:
            node_ip = None
        try:
            inside = node_ip is not None and node_ip == ipaddress.ip_address(self.value)
        except ValueError:
            try:
                subnet = ipaddress.ip_network(self.value, strict=False)
            except ValueError:
                return False
            inside = node_ip is not None and node_ip in subnet
        return inside if self.op == "==" else not inside

    def why_not(self, node: Node) -> str:
        """What about `node` fails this constraint, for a refusal ("" for its hostname or
        role, which every refusal shows anyway)."""
        lower = self.key.lower()
        if not self.known:
            return f"Swarm knows no key {self.key}"
        if lower == "node.ip":
            return f"address {node.addr or 'unknown'}"
        if lower == "node.id":
            return f"id {node.id}"
        if lower in ("node.platform.os", "node.platform.arch"):
            return f"platform {node.os or '?'}/{node.arch or '?'}"
        if lower.startswith(NODE_LABELS):
            return _labels("labels", node.labels)
        if lower.startswith(ENGINE_LABELS):
            return _labels("engine labels", node.engine_labels)
        return ""


def _labels(what: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return f"no {what}"
    return f"{what} " + " ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def parse(text: str) -> Constraint:
    """One constraint as Swarm parses it; ValueError naming the constraint and the fault."""
    for op in _OPERATORS:
        if op not in text:
            continue
        key, _, value = (part.strip() for part in text.partition(op))
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"placement constraint {text!r}: key {key!r} is invalid (Swarm's keys are "
                "node.id, node.hostname, node.ip, node.role, node.platform.os, "
                "node.platform.arch, node.labels.NAME, engine.labels.NAME)"
            )
        if not _VALUE.fullmatch(value):
            raise ValueError(
                f"placement constraint {text!r}: value {value!r} is invalid (letters, "
                "digits, spaces and :-_.*()?+[]\\^$|/ only, not empty)"
            )
        return Constraint(key, op, value)
    raise ValueError(f"placement constraint {text!r}: expected one operator, == or !=")


def eligible(constraints: Iterable[str], nodes: Iterable[Node]) -> list[Node]:
    """The usable nodes satisfying every constraint (ValueError on a malformed one)."""
    parsed = [parse(c) for c in constraints]
    return [n for n in nodes if n.usable and all(c.matches(n) for c in parsed)]


@dataclass
class Assignment:
    """The node chosen for each service holding node-local data, and the services no
    usable node can run (one sentence each, naming why every node was excluded)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    constraints: dict[str, list[str]] = field(default_factory=dict)  # as given to assign
    cluster: list[Node] = field(default_factory=list)

    def pins(self, service: str) -> list[str]:
        """The constraints to deploy `service` with so Swarm runs it on its node: the
        original ones plus `node.hostname == HOST` (`node.id == ID` when another node of
        the cluster has the same hostname, as Swarm does not require hostnames to differ,
        or when the hostname is not a valid constraint value)."""
        node = self.nodes[service]
        twins = [n for n in self.cluster if n.hostname.casefold() == node.hostname.casefold()]
        pin = f"node.hostname == {node.hostname}"
        if len(twins) > 1 or not _VALUE.fullmatch(node.hostname):
            pin = f"node.id == {node.id}"
        original = list(self.constraints.get(service, []))
        if parse(pin) in {parse(c) for c in original}:
            return original
        return [*original, pin]


def assign(services: Mapping[str, list[str]], nodes: Iterable[Node], *, site: str) -> Assignment:
    """One usable node per service, satisfying its constraints, spreading the services.

    `services` maps each service holding node-local data to its effective constraints on
    `site`. The most constrained services are placed first (fewest eligible nodes, then
    by name); each goes to the eligible node with the fewest services assigned so far,
    ties broken by hostname then id: the same input always gives the same placement.
    A malformed constraint raises ValueError naming the service.
    """
    cluster = sorted(nodes, key=lambda n: (n.hostname, n.id))
    out = Assignment(constraints={s: list(c) for s, c in services.items()}, cluster=cluster)
    candidates: dict[str, list[Node]] = {}
    for name, constraints in services.items():
        try:
            candidates[name] = eligible(constraints, cluster)
        except ValueError as exc:
            raise ValueError(f"service {name}: {exc}") from None
    load = {n.id: 0 for n in cluster}
    for name in sorted(services, key=lambda s: (len(candidates[s]), s)):
        if not candidates[name]:
            out.refusals.append(_refusal(name, services[name], cluster, site))
            continue
        node = min(candidates[name], key=lambda n: (load[n.id], n.hostname, n.id))
        out.nodes[name] = node
        load[node.id] += 1
    out.refusals.sort()
    return out


def _refusal(service: str, constraints: list[str], cluster: list[Node], site: str) -> str:
    wanted = " and ".join(str(parse(c)) for c in constraints) or "no constraint"
    if not cluster:
        return f"service {service}: site {site} has no node (is it a Swarm manager?)"
    return (
        f"service {service}: no usable node of site {site} satisfies {wanted} ("
        + "; ".join(_why_excluded(n, constraints) for n in cluster)
        + ")"
    )


def _why_excluded(node: Node, constraints: list[str]) -> str:
    """`host: role, reason, ...`: its state or availability when Swarm would not schedule
    on it, else what it has for each constraint it fails."""
    if not node.usable:
        reasons = [s for s in (node.state, node.availability) if s not in ("ready", "active")]
    else:
        reasons = []
        for c in (parse(text) for text in constraints):
            if not c.matches(node) and (why := c.why_not(node)) and why not in reasons:
                reasons.append(why)
    return f"{node.hostname}: " + ", ".join([node.role or "unknown role", *reasons])
