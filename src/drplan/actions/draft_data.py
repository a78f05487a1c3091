"""Who owns each piece of data of a stack: one volume or host directory, one source.

A volume mounted by an application, its worker and its cron job is one set of data:
backed up once, restored once, before any of them starts. So each named volume and each
host directory gets exactly one owner, chosen by these rules (the first difference
decides):

1. the database whose data directory it is (its dump covers it);
2. a service that writes it (a read-write mount) before one that only reads it;
3. a long-running service before a one-shot job, a data container, an admin tool or a
   helper (cron, cleanup, backup...);
4. a service whose name is the volume's (``zammad-backup`` owns volume ``zammad-backup``)
   or appears in it (``symbolicator`` owns ``sentry-symbolicator``);
5. a service that is neither a worker, a consumer nor a scheduler (by its name's words);
6. the service other services depend on most, then the first in the compose file.

The other services mounting it depend on the owner in the plan (when that makes no
cycle), so its restore happens once, before they start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drplan.actions.draft_roles import Role, words
from drplan.plan.compose import ComposeService, Mount

BACKGROUND_WORDS = frozenset(
    {"worker", "workers", "consumer", "consumers", "scheduler", "taskscheduler", "cron"}
    | {"beat", "queue", "forwarder", "tick", "tasks", "taskworker", "websocket", "cleanup"}
)
# Host paths that are the machine's, not the stack's data
SYSTEM_PATHS = ("/var/run/", "/run/", "/proc", "/sys", "/dev", "/etc/", "/lib/modules", "/")


@dataclass
class Share:
    """One named volume or host directory and the services mounting it."""

    kind: str  # volume | bind
    name: str  # volume key, or the host path as written
    mounts: dict[str, Mount] = field(default_factory=dict)  # service -> its mount


def shares(services: dict[str, ComposeService]) -> dict[tuple[str, str], Share]:
    """Named volumes and host directories, in the order the compose file mounts them."""
    found: dict[tuple[str, str], Share] = {}
    for name, svc in services.items():
        for mt in svc.mounts:
            if mt.type not in ("volume", "bind") or not mt.source:
                continue
            share = found.setdefault((mt.type, mt.source), Share(mt.type, mt.source))
            share.mounts.setdefault(name, mt)
    return found


def is_config_bind(mt: Mount) -> bool:
    """A bind mount of a file, the machine's own paths, or a read-only directory outside
    the project: configuration or plumbing, not data to back up.

    A read-only *directory of the project* (`./scripts:/usr/lib/app/scripts:ro`) is
    data: the operator's scripts, keys or modules, which exist on this host only, and
    which the recovery site needs to start the service at all (a bind of a missing
    directory fails the task)."""
    src = mt.source or ""
    if src.rstrip("/") == "" or src == "/":
        return True
    if any(src.startswith(p) for p in SYSTEM_PATHS if p != "/"):
        return True
    last = src.rstrip("/").rsplit("/", 1)[-1]
    if "." in last.lstrip(".") and not last.startswith("$"):
        return True
    return mt.read_only and src.startswith(("/", "~", "$"))


def _related(service: str, volume: str) -> int:
    s, v = "_".join(words(service)), "_".join(words(volume))
    if s == v:
        return 2
    return 1 if s and (v.endswith("_" + s) or v.startswith(s + "_")) else 0


def choose_owner(
    share: Share,
    roles: dict[str, Role],
    covers: dict[str, bool],
    dependents: dict[str, int],
    order: list[str],
) -> str:
    """The one service whose source the share is (rules in the module docstring);
    `covers[s]`: the share is database `s`'s data directory."""

    def score(name: str) -> tuple:
        mt, r = share.mounts[name], roles[name]
        return (
            covers.get(name, False),
            not mt.read_only,
            not r.helper,
            _related(name, share.name),
            not set(words(name)) & BACKGROUND_WORDS,
            dependents.get(name, 0),
            -order.index(name),
        )

    return max(share.mounts, key=score)
