"""Isolation of a stack's copy from production's storage (drills, training copies).

A copy of a stack deployed under another name (a drill, possibly on the primary site next
to production) shares whatever its compose files name absolutely: volumes with an
explicit ``name:``, ``external`` volumes, ``driver_opts`` volumes (NFS, ``local`` with
``o: bind``), bind mounts, named networks. :func:`shared_storage` lists them with what a
copy does about each (remap, keep a read-only bind, refuse) for `drplan validate`'s
warnings; :func:`isolate_compose` rewrites the documents accordingly. Pure compose
analysis: the drill (actions/drill.py) writes and deploys the result.
"""

from __future__ import annotations

import copy
import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any

from drplan import labels
from drplan.errors import InputError
from drplan.plan.compose import _mount as parse_mount

BIND_VOLUME_LABEL = labels.DRILL_BIND
RUNTIME_DIRS = ("/run", "/var/run")
COPYABLE_MOUNTS = ("volume", "bind", "tmpfs")


@dataclass(frozen=True)
class Shared:
    """A mount of a compose service that a copy under another stack name would share with
    production, and what a drill does with it: ``remap`` (an isolated copy of the drill's
    own), ``keep`` (a read-only bind: production's files cannot change) or ``refuse``."""

    doc: int  # index of the compose document
    loc: tuple[Any, ...]  # the mount in that document: ("services", S, "volumes", i)
    service: str
    kind: str  # volume | bind | mount
    subject: str  # the volume's key, the bind's host path, the mount's type
    why: str
    action: str  # remap | keep | refuse

    @property
    def message(self) -> str:
        what = {
            "volume": f"volume {self.subject}",
            "bind": f"bind mount {self.subject}",
            "mount": f"mount of type {self.subject}",
        }[self.kind]
        does = {
            "remap": "a drill remaps it to an isolated copy of its own",
            "keep": "a drill keeps it (it can read production's files, not change them)",
            "refuse": "a drill refuses to run this service (drill a profile without it)",
        }[self.action]
        return f"service {self.service}: {what} {self.why}: {does}"


def _volume_reasons(documents: list[Any]) -> dict[str, list[str]]:
    """{top-level volume: why a copy would share it} over every compose document."""
    out: dict[str, list[str]] = {}
    for data in documents:
        vols = data.get("volumes") if isinstance(data, dict) else None
        for key, spec in vols.items() if isinstance(vols, dict) else []:
            why = out.setdefault(str(key), [])
            if not isinstance(spec, dict):
                continue
            reasons = []
            if spec.get("external"):
                reasons.append("is external")
            if spec.get("name"):
                reasons.append(f"has an explicit name ({spec['name']})")
            opts = spec.get("driver_opts")
            if opts:
                shown = ", ".join(
                    f"{k}={opts[k]}"
                    for k in ("type", "device")
                    if isinstance(opts, dict) and k in opts
                )
                reasons.append(f"has driver_opts ({shown or 'set'})")
            elif spec.get("driver") not in (None, "local"):
                reasons.append(f"uses driver {spec['driver']}")
            why.extend(r for r in reasons if r not in why)
    return out


def _is_runtime_path(source: str) -> bool:
    """A socket or a runtime directory: reaching it reaches a daemon of the host."""
    path = posixpath.normpath(source)
    return path.endswith(".sock") or any(
        path == d or path.startswith(d + "/") for d in RUNTIME_DIRS
    )


def _mounts(documents: list[Any]):
    """(document index, service, index in its `volumes`, raw entry, Mount) of every mount."""
    declared = set(_volume_reasons(documents))
    for i, data in enumerate(documents):
        services = data.get("services") if isinstance(data, dict) else None
        for sname, spec in services.items() if isinstance(services, dict) else []:
            entries = spec.get("volumes") if isinstance(spec, dict) else None
            for j, raw in enumerate(entries if isinstance(entries, list) else []):
                mt = parse_mount(raw, declared)
                if mt is not None:
                    yield i, str(sname), j, raw, mt


def _writable_binds(documents: list[Any]) -> set[str]:
    return {
        posixpath.normpath(mt.source)
        for *_, mt in _mounts(documents)
        if mt.type == "bind" and mt.source and not mt.read_only
    }


def shared_storage(documents: list[Any]) -> list[Shared]:
    """Every mount of the compose documents a drill's copy would share with production.

    `documents` are the parsed compose files of one stack (as `docker stack deploy -c a
    -c b` reads them). Shared with production is what the stack prefix does not
    namespace: volumes with an explicit name, external volumes, volumes whose driver
    options point at storage elsewhere, bind mounts, and mount types drplan cannot copy.
    """
    reasons = _volume_reasons(documents)
    writable = _writable_binds(documents)
    out = []
    for i, service, j, _, mt in _mounts(documents):
        loc = ("services", service, "volumes", j)
        if mt.type not in COPYABLE_MOUNTS:
            out.append(
                Shared(
                    i,
                    loc,
                    service,
                    "mount",
                    mt.type,
                    f"({mt.source or mt.target}) has no copy drplan can make",
                    "refuse",
                )
            )
        elif mt.type == "volume" and mt.source and reasons.get(mt.source):
            out.append(
                Shared(
                    i, loc, service, "volume", mt.source, " and ".join(reasons[mt.source]), "remap"
                )
            )
        elif mt.type == "bind" and mt.source:
            if _is_runtime_path(mt.source):
                out.append(
                    Shared(
                        i,
                        loc,
                        service,
                        "bind",
                        mt.source,
                        "is a socket or runtime directory (read-only does not stop "
                        "a connection to production's daemons)",
                        "refuse",
                    )
                )
            elif posixpath.normpath(mt.source) in writable:
                out.append(Shared(i, loc, service, "bind", mt.source, "is writable", "remap"))
            else:
                out.append(Shared(i, loc, service, "bind", mt.source, "is read-only", "keep"))
    return out


def bind_volume(source: str) -> str:
    """The drill's own volume standing in for host path `source` (one per path)."""
    digest = hashlib.sha256(posixpath.normpath(source).encode()).hexdigest()[:12]
    return f"drplan-bind-{digest}"


def isolate_compose(documents: list[Any], services: list[str]) -> list[Any]:
    """Copies of the compose documents sharing no storage or network with production.

    Raises InputError, naming each service and path, when a service of `services` (those
    the drill deploys) has a mount that cannot be isolated: nothing has been changed yet.
    The originals are left as they are. See the module docstring for the choice per kind.
    """
    refused = [
        s for s in shared_storage(documents) if s.action == "refuse" and s.service in services
    ]
    if refused:
        raise InputError(
            "a drill would share storage with production; nothing was changed:\n"
            + "\n".join(f"  {s.message}" for s in refused),
            where="drill",
        )
    reasons = _volume_reasons(documents)
    writable = _writable_binds(documents)
    docs = copy.deepcopy(documents)
    for data in docs:
        if not isinstance(data, dict):
            continue
        vols = data.get("volumes")
        for key, spec in vols.items() if isinstance(vols, dict) else []:
            if isinstance(spec, dict) and reasons.get(str(key)):
                vols[key] = {
                    k: v
                    for k, v in spec.items()
                    if k not in ("name", "external", "driver", "driver_opts")
                }
        nets = data.get("networks")
        for key, spec in nets.items() if isinstance(nets, dict) else []:
            if isinstance(spec, dict) and spec.get("external"):
                nets[key] = {"driver": "overlay"}
            elif isinstance(spec, dict) and "name" in spec:
                nets[key] = {k: v for k, v in spec.items() if k != "name"}
    for i, service, j, _, mt in _mounts(docs):
        if mt.type != "bind" or not mt.source:
            continue
        source = posixpath.normpath(mt.source)
        if source not in writable:
            continue  # read-only everywhere: kept
        key = bind_volume(source)
        data = docs[i]
        data["services"][service]["volumes"][j] = {
            "type": "volume",
            "source": key,
            "target": mt.target,
            "read_only": mt.read_only,
        }
        if not isinstance(data.get("volumes"), dict):
            data["volumes"] = {}
        data["volumes"].setdefault(key, {"labels": {BIND_VOLUME_LABEL: mt.source}})
    return docs


def isolate_bind_sources(plan: Any, documents: list[Any], bases: list[str]) -> None:
    """Make the plan's `bind` sources restore into the drill's own volumes.

    :func:`isolate_compose` replaces each writable bind mount by a volume of the drill
    (:func:`bind_volume` of the source as written); the sources copying those host
    directories must restore there too, never into production's directory. `bases`: the
    folder of each compose document (relative sources are resolved against it). A source
    no mount matches gets a volume of its own, which nothing of production uses."""
    writable = _writable_binds(documents)
    stand_ins: dict[str, str] = {}
    for i, _, _, _, mt in _mounts(documents):
        if mt.type == "bind" and mt.source and posixpath.normpath(mt.source) in writable:
            full = posixpath.join(bases[i], mt.source)  # an absolute source stays itself
            stand_ins[posixpath.normpath(full)] = bind_volume(mt.source)
    for svc in plan.services.values():
        for src in svc.data.values():
            if src.bind:
                path = posixpath.normpath(src.bind)
                src.volume, src.bind = stand_ins.get(path, bind_volume(path)), None
