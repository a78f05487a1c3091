"""The manifest of a backup run: what was stored, where, with which fingerprints.

It is written into the repository itself, next to the data, as the run's last snapshot:
whoever holds the repository URL and its password can list runs and recover, with no
local database. A run without a complete manifest is not a complete run.

Manifests read from a repository are kept in a local cache, by snapshot id: a snapshot
never changes once written, so the cache can never be stale, and listing runs costs one
`restic snapshots` instead of one `restic dump` per run ever kept. The cache is an
optimisation only: lose it, and the repository answers again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from drplan.errors import OperationError
from drplan.repository.restic import Repository

FORMAT = 1


class SourceRecord(BaseModel):
    service: str
    source: str
    engine: str
    method: str
    consistency: str
    volume: str | None = None
    snapshot: str
    path: str
    bytes: int
    seconds: float
    started_at: str
    finished_at: str
    fingerprint: dict
    stats: dict = Field(default_factory=dict)


class Manifest(BaseModel):
    format: int = FORMAT
    plan: str
    stack: str
    run_id: str
    host: str
    drplan_version: str
    started_at: str
    finished_at: str | None = None
    rpo_point: str
    complete: bool = False
    errors: list[str] = Field(default_factory=list)
    sources: list[SourceRecord] = Field(default_factory=list)
    images: dict[str, str] = Field(default_factory=dict)
    images_snapshot: str | None = None
    images_bytes: int = 0
    config_snapshot: str | None = None
    plan_file: str = "drplan.yml"
    compose_files: list[str] = Field(default_factory=list)
    downtime_s: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.sources) + self.images_bytes

    def source(self, service: str, source: str) -> SourceRecord | None:
        return next((s for s in self.sources if s.service == service and s.source == source), None)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def manifest_tags(plan: str, run_id: str, complete: bool) -> list[str]:
    return [
        "drplan",
        f"plan:{plan}",
        f"run:{run_id}",
        "kind:manifest",
        f"complete:{'yes' if complete else 'no'}",
    ]


def write(repo: Repository, manifest: Manifest, host: str) -> str:
    data = manifest.model_dump_json(indent=2).encode()
    summary = repo.backup_stream(
        [data],
        filename="manifest.json",
        tags=manifest_tags(manifest.plan, manifest.run_id, manifest.complete),
        host=host,
        what=f"manifest of run {manifest.run_id}",
    )
    return summary["snapshot_id"]


def list_runs(repo: Repository, plan: str | None = None) -> list[tuple[dict, Manifest]]:
    """Every run's (snapshot, manifest), oldest first."""
    tags = ["drplan", "kind:manifest"] + ([f"plan:{plan}"] if plan else [])
    runs = [(snap, read(repo, snap)) for snap in repo.snapshots(tags)]
    if any(snap.get("original") for snap, _ in runs):
        _localise(repo, plan, [m for _, m in runs])
    runs.sort(key=lambda r: r[1].started_at)
    return runs


def cache_dir() -> Path:
    """Where manifests already read are kept (DRPLAN_CACHE_DIR, else the XDG cache)."""
    if os.environ.get("DRPLAN_CACHE_DIR"):
        return Path(os.environ["DRPLAN_CACHE_DIR"]) / "manifests"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "drplan" / "manifests"


def read(repo: Repository, snap: dict) -> Manifest:
    """The manifest stored in one manifest snapshot (from the local cache if read before)."""
    snap_id = snap["id"]
    cached = cache_dir() / f"{snap_id}.json" if re.fullmatch(r"[0-9a-f]{64}", snap_id) else None
    if cached is not None:
        with contextlib.suppress(OSError, ValueError):
            return Manifest.model_validate_json(cached.read_bytes())
    data = repo.read_file(snap_id, "/manifest.json", what="reading a run manifest")
    try:
        manifest = Manifest.model_validate(json.loads(data))
    except ValueError as exc:
        raise OperationError(
            f"manifest in snapshot {snap['short_id']} is unreadable: {exc}", where=repo.where
        ) from exc
    if cached is not None:
        _keep(cached, data)
    return manifest


def _keep(path: Path, data: bytes) -> None:
    """Write a cache entry atomically; a cache that cannot be written is only slower."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise


def newest_complete(repo: Repository, plan: str) -> Iterator[Manifest]:
    """Complete runs of `plan`, newest first, each manifest read only when asked for.

    A backup needs the newest run or two (parents, images), not every manifest ever kept:
    reading them all made each backup slower with every run in the repository.
    """
    snaps = repo.snapshots(["drplan", "kind:manifest", f"plan:{plan}", "complete:yes"])
    for snap in sorted(snaps, key=lambda s: s.get("time", ""), reverse=True):
        m = read(repo, snap)
        if m.complete:
            if snap.get("original"):
                _localise(repo, plan, [m])
            yield m


def _localise(repo: Repository, plan: str | None, manifests: list[Manifest]) -> None:
    """Snapshot ids of runs copied here (`restic copy`) as this repository knows them.

    `restic copy` gives each copied snapshot a new id and records the source's id as
    `original`; a manifest names the primary's ids. Without this, a restore or a check
    from an off-site copy would find none of the snapshots it names.
    """
    local: dict[str, str] = {}
    for snap in repo.snapshots(["drplan"] + ([f"plan:{plan}"] if plan else [])):
        local[snap["id"]] = snap["id"]
        if snap.get("original"):
            local[snap["original"]] = snap["id"]

    def find(ref: str | None) -> str | None:
        if not ref or ref in local:
            return local.get(ref, ref) if ref else ref
        found = {v for k, v in local.items() if k.startswith(ref)}
        return found.pop() if len(found) == 1 else ref

    for m in manifests:
        for rec in m.sources:
            rec.snapshot = find(rec.snapshot) or rec.snapshot
        m.images_snapshot = find(m.images_snapshot)
        m.config_snapshot = find(m.config_snapshot)


def find_run(
    repo: Repository,
    plan: str | None,
    run: str = "latest",
    needs: set[tuple[str, str]] | None = None,
) -> Manifest:
    """A complete run by id (or unique id prefix), or the newest complete one.

    `needs` ((service, source) pairs): "latest" is then the newest complete run holding
    every one of them, so a partial run (`backup --service`) is not taken for a whole one.
    """
    runs = [m for _, m in list_runs(repo, plan) if m.complete]
    if needs and run == "latest":
        holding = [m for m in runs if needs <= {(s.service, s.source) for s in m.sources}]
        if runs and not holding:
            raise OperationError(
                f"no complete run in {repo.where} holds every source needed ("
                + ", ".join(f"{a}/{b}" for a, b in sorted(needs))
                + ")"
            )
        runs = holding
    if not runs:
        raise OperationError(
            f"{repo.where} holds no complete run" + (f" of plan {plan}" if plan else "")
        )
    if run == "latest":
        return runs[-1]
    found = [m for m in runs if m.run_id == run or m.run_id.startswith(run)]
    if len(found) != 1:
        known = ", ".join(m.run_id for m in runs[-5:])
        raise OperationError(
            f"no complete run {run!r} in {repo.where}"
            + (" (ambiguous prefix)" if found else "")
            + f"; newest runs: {known}"
        )
    return found[0]
