"""Every name drplan writes into a repository, in one place.

A repository is shared by plans, runs, drills and checks, and is read back by other
drplan versions and by operators with plain `restic snapshots --tag ...`: the tags and
file names are a file format. Composing them here, and only here, keeps that format one
thing (the way Velero keeps its object-store layout in one file).

A snapshot carries ``drplan`` and ``plan:<stack>``, then what it is:

| kind                                    | file            | tags beside the kind                 |
|-----------------------------------------|-----------------|--------------------------------------|
| dump, rdb, sqlite, files (data sources) | per source      | run:, service:, source:              |
| images                                  | images.tar      | run:                                 |
| config (the plan and compose files)     | config.tar      | run:                                 |
| manifest (a run's record, written last) | manifest.json   | run:, complete:yes/no                |
| drill (a drill's record)                | drill.json      | drill:, result:passed/failed         |
| check (a repository check's record)     | check.json      | result:ok/failed                     |
"""

from __future__ import annotations

from enum import StrEnum

APP = "drplan"


class Kind(StrEnum):
    DUMP = "dump"
    RDB = "rdb"
    SQLITE = "sqlite"
    FILES = "files"
    IMAGES = "images"
    CONFIG = "config"
    MANIFEST = "manifest"
    DRILL = "drill"
    CHECK = "check"


MANIFEST_FILE = "manifest.json"
IMAGES_FILE = "images.tar"
CONFIG_FILE = "config.tar"
DRILL_FILE = "drill.json"
CHECK_FILE = "check.json"


def tags(plan: str | None = None, kind: Kind | str | None = None, **labels: str) -> list[str]:
    """The tags of a snapshot (or, with fewer arguments, a query matching such snapshots):
    ``drplan``, ``plan:<plan>``, ``kind:<kind>``, then ``key:value`` for each label given
    (``run=``, ``service=``, ``source=``, ``drill=``, ``result=``, ``complete=``)."""
    out = [APP]
    if plan is not None:
        out.append(f"plan:{plan}")
    if kind is not None:
        out.append(f"kind:{kind}")
    out.extend(f"{key}:{value}" for key, value in labels.items())
    return out


def tag(snapshot: dict, key: str) -> str | None:
    """The value of the ``key:`` tag of a snapshot (as restic lists it), if any."""
    prefix = f"{key}:"
    for t in snapshot.get("tags") or []:
        if isinstance(t, str) and t.startswith(prefix):
            return t[len(prefix) :]
    return None


def has(snapshot: dict, key: str, value: str) -> bool:
    return f"{key}:{value}" in (snapshot.get("tags") or [])


def passed(ok: bool) -> str:
    """The ``result:`` of a drill."""
    return "passed" if ok else "failed"


def check_result(ok: bool) -> str:
    """The ``result:`` of a repository check."""
    return "ok" if ok else "failed"
