"""Read the compose/stack file(s) a plan names, tolerantly.

Only what drplan needs: service names, images, ``depends_on`` (list and mapping forms),
volume mounts, environment, healthchecks, replicas and ports, plus top-level volumes.
``init --from`` and ``validate`` both go through here, so they agree on names.
Several files are merged the way ``docker stack deploy -c a -c b`` does (later wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.plan.loader import Document, Problem, parse_yaml_file


@dataclass
class Mount:
    """A volume mount of a service: a named volume, a bind mount or a tmpfs."""

    type: str  # volume | bind | tmpfs
    source: str | None
    target: str
    read_only: bool = False


@dataclass
class ComposeService:
    """One service of a compose file (only the parts drplan reads)."""

    name: str
    image: str | None = None
    depends_on: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None
    replicas: int | None = None
    ports: list[Any] = field(default_factory=list)

    @property
    def volumes(self) -> list[str]:
        """Named volumes this service mounts."""
        return [mt.source for mt in self.mounts if mt.type == "volume" and mt.source]


@dataclass
class ComposeProject:
    """The merged compose files of a stack."""

    files: list[str]
    name: str | None = None
    services: dict[str, ComposeService] = field(default_factory=dict)
    volumes: set[str] = field(default_factory=set)
    documents: list[Document] = field(default_factory=list)


def _as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def _depends_on(value: Any) -> list[str]:
    if isinstance(value, dict):  # long form: {db: {condition: service_healthy}}
        return [str(k) for k in value]
    return _as_str_list(value)


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    env: dict[str, str] = {}
    for item in _as_str_list(value):
        k, _, v = item.partition("=")
        env[k] = v
    return env


def _mount(value: Any, named: set[str]) -> Mount | None:
    if isinstance(value, dict):
        target = value.get("target")
        if not isinstance(target, str):
            return None
        kind = str(value.get("type", "volume"))
        source = value.get("source")
        return Mount(kind, str(source) if source else None, target, bool(value.get("read_only")))
    if not isinstance(value, str):
        return None
    parts = value.split(":")
    if len(parts) == 1:  # anonymous volume
        return Mount("volume", None, parts[0])
    source, target = parts[0], parts[1]
    ro = len(parts) > 2 and "ro" in parts[2].split(",")
    if source.startswith(("/", ".", "~", "$")) or (source not in named and "/" in source):
        return Mount("bind", source, target, ro)
    return Mount("volume", source, target, ro)


def _service(name: str, raw: Any, named: set[str]) -> ComposeService:
    svc = ComposeService(name=name)
    if not isinstance(raw, dict):
        return svc
    image = raw.get("image")
    svc.image = str(image) if isinstance(image, str | int | float) else None
    svc.depends_on = _depends_on(raw.get("depends_on"))
    vols = raw.get("volumes")
    for v in vols if isinstance(vols, list) else []:
        mt = _mount(v, named)
        if mt:
            svc.mounts.append(mt)
    svc.environment = _environment(raw.get("environment"))
    hc = raw.get("healthcheck")
    svc.healthcheck = hc if isinstance(hc, dict) else None
    deploy = raw.get("deploy")
    if isinstance(deploy, dict) and isinstance(deploy.get("replicas"), int):
        svc.replicas = deploy["replicas"]
    ports = raw.get("ports")
    svc.ports = ports if isinstance(ports, list) else []
    return svc


def load_compose(
    paths: list[Path], *, display: list[str] | None = None
) -> tuple[ComposeProject, list[Problem]]:
    """Parse and merge compose files. Problems are located in the compose files."""
    shown = display or [str(p) for p in paths]
    project = ComposeProject(files=shown)
    problems: list[Problem] = []
    for path, name in zip(paths, shown, strict=True):
        doc = parse_yaml_file(path, display=name)
        project.documents.append(doc)
        problems.extend(doc.problems)
        data = doc.data
        if doc.root is None and not doc.problems:
            problems.append(Problem(name, 1, 1, "(root)", "empty compose file"))
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(doc.problem((), "a compose file is a mapping with `services`"))
            continue
        if isinstance(data.get("name"), str):
            project.name = data["name"]
        top_volumes = data.get("volumes")
        if isinstance(top_volumes, dict):
            project.volumes.update(str(k) for k in top_volumes)
        elif top_volumes is not None:
            problems.append(doc.problem(("volumes",), "`volumes` must be a mapping"))
        services = data.get("services")
        if not isinstance(services, dict):
            problems.append(doc.problem(("services",), "no `services` mapping"))
            continue
        for sname, raw in services.items():
            svc = _service(str(sname), raw, project.volumes)
            old = project.services.get(svc.name)
            if old is not None:  # later files override what they set
                svc.image = svc.image or old.image
                svc.depends_on = svc.depends_on or old.depends_on
                svc.mounts = svc.mounts or old.mounts
                svc.environment = {**old.environment, **svc.environment}
                svc.healthcheck = svc.healthcheck or old.healthcheck
                svc.replicas = svc.replicas if svc.replicas is not None else old.replicas
                svc.ports = svc.ports or old.ports
            project.services[svc.name] = svc
    # a volume declared in a later file makes earlier `name:/path` mounts named volumes
    for svc in project.services.values():
        for mt in svc.mounts:
            if mt.type == "bind" and mt.source in project.volumes:
                mt.type = "volume"
    return project, problems


def long_port(entry: Any) -> dict[str, Any] | None:
    """A `ports:` entry in long syntax ({target, published?, protocol}); None when it is
    not understood. "127.0.0.1:8080:80/udp" -> {target: 80, published: 8080, protocol:
    udp}; a range "9000-9001:80-81" keeps its published range as a string."""
    if isinstance(entry, dict):
        return entry
    if isinstance(entry, int):
        return {"target": entry}
    if not isinstance(entry, str):
        return None
    spec, _, proto = entry.partition("/")
    parts = spec.split(":")
    target = parts[-1]
    out: dict[str, Any] = {"target": int(target) if target.isdigit() else target}
    if len(parts) >= 2 and parts[-2]:
        pub = parts[-2]
        out["published"] = int(pub) if pub.isdigit() else pub
    if len(parts) >= 3 and parts[-3]:
        out["host_ip"] = parts[-3]
    if proto:
        out["protocol"] = proto
    return out


def published_ports(ports: list[Any]) -> list[int]:
    """The host ports a service's `ports:` entries publish (long and short syntax).

    "8080:80", "127.0.0.1:8080:80/tcp" and "9000-9001:80-81" publish; a bare "80" or a
    long-syntax entry without `published` does not (the engine picks a port).
    """
    out: list[int] = []
    for entry in ports:
        pub = (long_port(entry) or {}).get("published")
        if isinstance(pub, int):
            out.append(pub)
        elif isinstance(pub, str):
            out.extend(_port_range(pub))
    return out


def _port_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        return []
    return list(range(int(lo), int(hi or lo) + 1))


def published_by_service(document: dict) -> list[tuple[str, int]]:
    """(service, host port) for every port a compose document's services publish."""
    services = document.get("services") or {}
    return [
        (name, port)
        for name, spec in services.items()
        for port in published_ports((spec or {}).get("ports") or [])
    ]


def zero_compose(
    data: dict, services: list[str], site, *, drop_ports: bool, isolate: bool = False
) -> dict:
    """A compose document defining `services` at zero replicas (the others removed).

    `drop_ports`: a copy beside production (test, training, drill) must not take
    production's published ports. `isolate`: external networks and volumes become the
    copy's own, so it shares nothing with production.
    """
    services_doc = data.get("services") or {}
    for name in list(services_doc):
        if name not in services:
            del services_doc[name]
            continue
        spec = services_doc[name] or {}
        services_doc[name] = spec
        deploy = spec.setdefault("deploy", {}) or {}
        spec["deploy"] = deploy
        if deploy.get("mode") != "global":
            deploy["replicas"] = 0
        override = site.services.get(name)
        if drop_ports or isolate:
            spec.pop("ports", None)
        elif override and override.ports:
            spec["ports"] = _override_ports(spec.get("ports", []), override.ports)
        spec.pop("depends_on", None)
    if isolate:
        for key in ("networks", "volumes"):
            for name, spec in list((data.get(key) or {}).items()):
                if isinstance(spec, dict) and spec.get("external"):
                    data[key][name] = {"driver": "overlay"} if key == "networks" else {}
    return data


def _override_ports(ports: list, mapping: dict[int, int]) -> list:
    """Publish container port `target` on host port `mapping[target]` (the site's
    `ports: {target: published}`); the other entries are kept as written."""
    out = []
    for entry in ports:
        long = long_port(entry)
        if long is not None and isinstance(long.get("target"), int) and long["target"] in mapping:
            entry = {**long, "published": mapping[long["target"]]}
        out.append(entry)
    return out
