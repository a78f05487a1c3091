"""What every data source gets to work with, and what it must provide."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from drplan.plan import model as m
from drplan.platform.docker import DockerEngine
from drplan.store import layout
from drplan.store.restic import Repository


@dataclass
class SourceContext:
    """One data source of one service, on one engine, for one run."""

    engine: DockerEngine
    repo: Repository
    stack: str  # the stack's name on this engine (prefix included)
    plan_name: str
    service: str
    name: str
    spec: m.DataSource
    run_id: str = ""
    plan_dir: Path = Path(".")
    force: bool = False
    host: str = "drplan"
    helper_image: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600)
    progress: Callable[[int], None] = lambda n: None
    # set by the caller for the volume's full name on the engine (stack prefix applied)
    volume: str | None = None
    # the same source's snapshot in the previous complete run (incremental parent)
    parent: str | None = None
    # where the volume is mounted in the service (from the compose file)
    mount_target: str | None = None
    # cold method: services to scale to 0, dependents first
    quiesce: list[str] = field(default_factory=list)
    # restore: what the backup recorded about the source (the manifest record's stats)
    backup_stats: dict = field(default_factory=dict)

    def mount_relative(self, path: str) -> str:
        """`path` (inside the service) relative to the volume's mount point."""
        import posixpath

        if self.mount_target and path.startswith(self.mount_target.rstrip("/") + "/"):
            return posixpath.relpath(path, self.mount_target)
        return posixpath.basename(path)

    @property
    def what(self) -> str:
        return f"service {self.service}, source {self.name} ({self.spec.engine})"

    @property
    def filename(self) -> str:
        return f"{self.service}/{self.name}"

    def tags(self, kind: str) -> list[str]:
        return layout.tags(
            self.plan_name, kind, run=self.run_id, service=self.service, source=self.name
        )

    def container(self):
        """The running container of this source's service."""
        return self.engine.wait_running(self.stack, self.service, self.deadline)

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.progress(len(chunk))
            yield chunk


@dataclass
class BackupResult:
    snapshot: str
    bytes: int
    fingerprint: dict
    path: str  # file or directory inside the snapshot
    consistency: str
    downtime_s: dict[str, float] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


class DataSourceEngine(Protocol):
    consistency: str

    def backup(self, ctx: SourceContext) -> BackupResult: ...

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None: ...

    def fingerprint(self, ctx: SourceContext) -> dict: ...

    def is_empty(self, ctx: SourceContext) -> bool: ...

    def compare(self, expected: dict, actual: dict) -> list[str]: ...

    def stored_fingerprint(self, repo: Repository, record, **where) -> dict:
        """The fingerprint of what a backup stored, read back from the repository
        (`drplan check`); `where` may offer `engine=` and `labels=` so a stored file is
        opened in a helper container rather than by this host's tools."""
        ...


def compare_dicts(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """Readable differences between two fingerprints (empty when equal)."""
    diffs = []
    for key in sorted(set(expected) | set(actual), key=str):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += compare_dicts(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: backed up {a!r}, found {b!r}")
    return diffs


class TableHasher:
    """Per-table row counts and an order-independent checksum of rows, from a dump stream.

    Order-independent (a sum of per-row hashes modulo 2**64), so the same rows hash the
    same whatever their physical order after a restore.
    """

    def __init__(self) -> None:
        self.tables: dict[str, list[int]] = {}

    def add(self, table: str, row: bytes, count: int = 1) -> None:
        entry = self.tables.setdefault(table, [0, 0])
        entry[0] += count
        h = int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "big")
        entry[1] = (entry[1] + h) % (1 << 64)

    def result(self) -> dict:
        return {
            t: {"rows": n, "checksum": f"{h:016x}"} for t, (n, h) in sorted(self.tables.items())
        }


def tee_lines(chunks: Iterable[bytes], on_line: Callable[[bytes], None]) -> Iterator[bytes]:
    """Pass a byte stream through while `on_line` sees each line (fingerprint in flight)."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        parts = data.split(b"\n")
        rest = parts.pop()
        for line in parts:
            on_line(line)
        yield chunk
    if rest:
        on_line(rest)


def drain(chunks: Iterable[bytes]) -> None:
    for _ in chunks:
        pass
