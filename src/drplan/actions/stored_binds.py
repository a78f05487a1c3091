"""Relative bind mounts of a recovery from the repository alone (`recover --repo URL`).

A compose file's `./uploads:/data` is relative to the compose file's folder. With a local
plan that folder is the operator's checkout and stays; from the repository, the plan and
compose files are unpacked into a private temporary folder that is deleted after the
recovery. Resolved there, the service would bind a directory that vanishes (and whose
data, restored to the plan's `bind:` path, is somewhere else). So, when the config comes
from the repository, every relative bind source of the recovered services must be mapped
by the target site's `paths`, keyed by the plan's `bind:` source for that mount (the path
as the plan writes it) or by the absolute path it had on the primary (the run records the
plan's folder there); the recovery deploys the mapped directory. One that is not mapped
is refused before anything is touched, naming the service, the bind and the
`sites.<site>.paths` key to add.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import yaml

from drplan.actions.context import PlanContext
from drplan.errors import InputError
from drplan.plan import model as m


@dataclass(frozen=True)
class RelativeBind:
    """One relative bind mount of a service, and the `paths` keys that may map it."""

    file: str  # the compose file, as the plan lists it
    service: str
    source: str  # as written: ./uploads
    target: str
    keys: tuple[str, ...]  # the plan's `bind:` of that mount first, then the primary's path


def _relative(source: Any) -> bool:
    """A bind source resolved against the compose file's folder (as `absolute_paths`)."""
    return (
        isinstance(source, str)
        and source != ""
        and not source.startswith(("/", "~"))
        and "$" not in source
    )


def _mounts(spec: Any) -> list[tuple[str, str]]:
    """(source, target) of a service's relative bind mounts, short or long syntax."""
    out = []
    for mount in spec.get("volumes") or [] if isinstance(spec, dict) else []:
        if isinstance(mount, str):
            source, sep, rest = mount.partition(":")
            if sep and source.startswith(".") and _relative(source):
                out.append((source, rest.split(":", 1)[0]))
        elif (
            isinstance(mount, dict)
            and mount.get("type") == "bind"
            and _relative(mount.get("source"))
            and isinstance(mount.get("target"), str)
        ):
            out.append((mount["source"], mount["target"]))
    return out


def relative_binds(
    pc: PlanContext, services: list[str], primary_dir: str | None
) -> list[RelativeBind]:
    """Every relative bind mount of `services` in the plan's compose files."""
    found = []
    for rel in pc.plan.stack.compose:
        doc = yaml.safe_load((pc.dir / rel).read_text()) or {}
        folder = posixpath.dirname(posixpath.normpath(rel))
        for name, spec in (doc.get("services") or {}).items():
            if name not in services:
                continue
            for source, target in _mounts(spec):
                keys = [
                    src.bind
                    for src in pc.plan.services[name].data.values()
                    if src.bind
                    and src.path
                    and posixpath.normpath(src.path) == posixpath.normpath(target)
                ]
                if primary_dir:
                    keys.append(posixpath.normpath(posixpath.join(primary_dir, folder, source)))
                found.append(RelativeBind(rel, name, source, target, tuple(dict.fromkeys(keys))))
    return _shared_keys(found)


def _shared_keys(found: list[RelativeBind]) -> list[RelativeBind]:
    """The services binding the same directory share the keys any of them has (only the
    owner's mount has a `bind:` source in the plan)."""
    by_dir: dict[tuple[str, str], list[str]] = {}
    for b in found:
        where = (posixpath.dirname(b.file), posixpath.normpath(b.source))
        by_dir.setdefault(where, []).extend(b.keys)
    return [
        RelativeBind(
            b.file,
            b.service,
            b.source,
            b.target,
            tuple(dict.fromkeys(by_dir[(posixpath.dirname(b.file), posixpath.normpath(b.source))])),
        )
        for b in found
    ]


def mapped(bind: RelativeBind, site: m.Site) -> str | None:
    """Where the site puts the bind's directory: the first of its keys `paths` maps."""
    return next((site.paths[k] for k in bind.keys if k in site.paths), None)


def check(binds: list[RelativeBind], site_name: str, site: m.Site) -> None:
    """Refuse, before anything is touched, relative binds the site does not map."""
    missing = [b for b in binds if mapped(b, site) is None]
    if not missing:
        return
    unknown = "<its absolute path on the primary>"
    lines = [
        f"service {b.service} binds {b.source} (relative to {b.file}) at {b.target}: add "
        f"`sites.{site_name}.paths: {{{b.keys[0] if b.keys else unknown}: DIR}}`"
        for b in missing
    ]
    raise InputError(
        "recovering from the repository alone, the compose files are unpacked into a "
        "temporary folder deleted after the recovery: a bind source relative to them would "
        "name a vanished directory. Map each one to a directory of this site; nothing was "
        "changed.\n" + "\n".join(lines),
        where=f"site {site_name}",
    )


def apply(doc: dict, file: str, binds: list[RelativeBind], site: m.Site) -> dict:
    """The compose document `file` with its relative bind sources replaced by the
    directories the site maps them to (`check` passed: every one is mapped)."""
    ours = {(b.service, b.source, b.target): mapped(b, site) for b in binds if b.file == file}
    for name, spec in (doc.get("services") or {}).items():
        volumes = spec.get("volumes") if isinstance(spec, dict) else None
        if not isinstance(volumes, list):
            continue
        for i, mount in enumerate(volumes):
            if isinstance(mount, str):
                source, _, rest = mount.partition(":")
                key = (name, source, rest.split(":", 1)[0])
                if ours.get(key):
                    volumes[i] = f"{ours[key]}:{rest}"
            elif isinstance(mount, dict) and mount.get("type") == "bind":
                key = (name, mount.get("source"), mount.get("target"))
                if ours.get(key):  # type: ignore[arg-type]
                    volumes[i] = {**mount, "source": ours[key]}  # type: ignore[index]
    return doc
