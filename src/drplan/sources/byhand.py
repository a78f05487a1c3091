"""By-hand runbook commands that several engines share (each engine writes its own
through :meth:`Engine.runbook_restore` and :meth:`Engine.runbook_verify`, with the
:class:`~drplan.sources.base.ShellKit` the runbook gives it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drplan.plan import model as m
from drplan.sources.base import Procedure, ShellKit

if TYPE_CHECKING:
    from drplan.store.manifest import SourceRecord


def what(service: str, source: str, record: SourceRecord) -> str:
    return f"{service}/{source} ({record.engine}, {record.method})"


def put_file(
    kit: ShellKit,
    service: str,
    source: str,
    spec: m.DataSource,
    record: SourceRecord,
    *,
    kind: str,
    default_file: str,
    drop: tuple[str, ...] = (),
) -> Procedure:
    """Write one stored file (an RDB, a SQLite database) into the fresh volume before
    its service starts: to a temporary name, renamed into place once whole, with the
    owner it had; `drop` lists sibling suffixes to remove first (SQLite's -wal, -shm)."""
    fp = record.fingerprint
    vol = kit.volume(spec.volume or "")
    rel = kit.volume_file(service, source, fp.get("file") or default_file)
    target = f'"$MP"/{kit.sh(rel)}'
    cmd = (
        kit.mountpoint(vol)
        + f'mkdir -p -- "$(dirname -- {target})"\n'
        + (f"rm -f -- {' '.join(target + s for s in drop)}\n" if drop else "")
        + f"{kit.dump(record.snapshot, record.path)} > {target}.drplan\n"
        + f"mv -- {target}.drplan {target}\n"
        + (f"chown -- {kit.sh(fp['owner'])} {target}\n" if fp.get("owner") else "")
    )
    return Procedure(
        f"Put {kind} of {what(service, source, record)} into the empty volume {vol} before "
        f"the service starts (snapshot {record.snapshot}).",
        [("Write the file into the volume (engine on this host)", cmd)],
        [("The file is there", f"{kit.mountpoint(vol)}test -s {target}\n")],
    )
