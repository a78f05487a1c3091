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
import posixpath
import re
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from drplan.errors import OperationError
from drplan.plan.model import EngineName as EngineKind
from drplan.plan.model import Method
from drplan.store import layout
from drplan.store.restic import Repository

FORMAT = 1

# -- shapes of what a manifest may hold -------------------------------------------------
# A manifest is read back from a repository that an attacker may have written to (a
# compromised primary keeps append-only access to its copies): every field that reaches
# argv, a path, a runbook or SQL is checked against its real shape when it is read, so a
# forged value ("--password-command=...", "../../etc", "$(...)") is refused by name
# before anything runs. See docs/design/threat-model.md.
SNAPSHOT_ID_RE = re.compile(r"[0-9a-f]{8,64}")
RUN_ID_RE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")
NAME_RE = re.compile(r"\w[\w.-]{0,127}")  # as drplan.plan.model.NAME_PATTERN
IMAGE_ID_RE = re.compile(r"sha256:[0-9a-f]{64}")
# Docker's image reference grammar, simplified: registry host[:port]/path[:tag][@digest]
IMAGE_REF_RE = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _shaped(pattern: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"not a valid {what}: {value[:80]!r}")
        return value

    return check


def _absolute_path(value: str) -> str:
    """An absolute, normalised path with no control character (no `..`, no `//`)."""
    if (
        not value.startswith("/")
        or posixpath.normpath(value) != value
        or value.startswith("//")
        or _CONTROL_RE.search(value)
    ):
        raise ValueError(f"not an absolute normalised path: {value[:80]!r}")
    return value


def recordable_dir(path: str) -> str | None:
    """`path` if a manifest can record it as an absolute path, else None (a folder name
    with a control character is not worth failing a backup for)."""
    try:
        return _absolute_path(path)
    except ValueError:
        return None


def relative_path(value: str) -> str:
    """A relative, normalised path inside its folder (no `..`, no absolute path)."""
    norm = posixpath.normpath(value)
    if (
        value.startswith(("/", "-"))
        or norm != value
        or norm == ".."
        or norm.startswith("../")
        or _CONTROL_RE.search(value)
        or "\\" in value
    ):
        raise ValueError(f"not a relative path inside the plan's folder: {value[:80]!r}")
    return value


def _plain_text(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError(f"holds control characters: {value[:80]!r}")
    return value


SnapshotId = Annotated[str, AfterValidator(_shaped(SNAPSHOT_ID_RE, "restic snapshot id"))]
RunId = Annotated[str, AfterValidator(_shaped(RUN_ID_RE, "run id"))]
Name = Annotated[str, AfterValidator(_shaped(NAME_RE, "name"))]
ImageId = Annotated[str, AfterValidator(_shaped(IMAGE_ID_RE, "image id"))]
ImageRef = Annotated[str, AfterValidator(_shaped(IMAGE_REF_RE, "image name"))]
AbsPath = Annotated[str, AfterValidator(_absolute_path)]
RelPath = Annotated[str, AfterValidator(relative_path)]
Text = Annotated[str, AfterValidator(_plain_text)]


class SourceRecord(BaseModel):
    service: Name
    source: Name
    engine: EngineKind
    method: Method
    consistency: str
    volume: Name | None = None
    snapshot: SnapshotId
    path: AbsPath
    bytes: int
    seconds: float
    started_at: str
    finished_at: str
    fingerprint: dict
    stats: dict = Field(default_factory=dict)
    # the Swarm node it was read on (hostname; "" before multi-node sites, or no swarm)
    node: str = Field("", max_length=253, pattern=r"^[A-Za-z0-9_.-]*$")

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: dict) -> dict:
        """Database names reach SQL and runbooks: text without control characters (they
        are quoted as identifiers where used)."""
        dbs = value.get("databases", [])
        if not isinstance(dbs, list) or not all(
            isinstance(d, str) and d and not _CONTROL_RE.search(d) and len(d) <= 255 for d in dbs
        ):
            raise ValueError("databases must be a list of names without control characters")
        return value

    @field_validator("stats")
    @classmethod
    def _stats(cls, value: dict) -> dict:
        """The split restore's halves become restic --include patterns: relative paths."""
        halves = value.get("restore_split", [])
        if not isinstance(halves, list) or not all(isinstance(h, str) for h in halves):
            raise ValueError("restore_split must be a list of paths")
        for half in halves:
            relative_path(half)
        return value


class HookRecord(BaseModel):
    """One execution of one of the plan's hooks (drplan.actions.hooks): where it ran, how
    it ended. One line of plain text each: reports print them as they are."""

    service: Name
    phase: Literal["before_backup", "after_backup", "before_restore", "after_restore"]
    index: int = Field(ge=0)
    where: Literal["container", "host"]
    command: Text
    status: Literal["ok", "failed", "timeout"]
    exit_code: int | None = None
    seconds: float
    started_at: Text
    finished_at: Text
    # the end of its output, kept when it failed (bounded)
    output: Text = ""


class Manifest(BaseModel):
    format: int = FORMAT
    plan: Name
    stack: Name
    run_id: RunId
    host: Text
    drplan_version: str
    started_at: str
    finished_at: str | None = None
    rpo_point: str
    complete: bool = False
    errors: list[str] = Field(default_factory=list)
    sources: list[SourceRecord] = Field(default_factory=list)
    images: dict[ImageRef, ImageId] = Field(default_factory=dict)
    images_snapshot: SnapshotId | None = None
    images_bytes: int = 0
    config_snapshot: SnapshotId | None = None
    plan_file: RelPath = "drplan.yml"
    # the plan's folder on the host that backed up (None before it was recorded): where
    # the compose files' relative bind sources were (drplan.actions.stored_binds)
    plan_dir: AbsPath | None = None
    compose_files: list[RelPath] = Field(default_factory=list)
    downtime_s: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    hooks: list[HookRecord] = Field(default_factory=list)

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
    return layout.tags(
        plan, layout.Kind.MANIFEST, run=run_id, complete="yes" if complete else "no"
    )


def write(repo: Repository, manifest: Manifest, host: str) -> str:
    data = manifest.model_dump_json(indent=2).encode()
    summary = repo.backup_stream(
        [data],
        filename=layout.MANIFEST_FILE,
        tags=manifest_tags(manifest.plan, manifest.run_id, manifest.complete),
        host=host,
        what=f"manifest of run {manifest.run_id}",
    )
    return summary["snapshot_id"]


def list_runs(repo: Repository, plan: str | None = None) -> list[tuple[dict, Manifest]]:
    """Every run's (snapshot, manifest), oldest first."""
    tags = layout.tags(plan, layout.Kind.MANIFEST)
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
    data = repo.read_file(snap_id, "/" + layout.MANIFEST_FILE, what="reading a run manifest")
    manifest = parse(data, where=f"{repo.where}, manifest snapshot {snap_id[:8]}")
    if cached is not None:
        _keep(cached, data)
    return manifest


def parse(data: bytes, *, where: str) -> Manifest:
    """A manifest from its stored bytes, every field checked against its real shape; a
    forged one is refused naming the field (nothing it holds has been used yet)."""
    try:
        return Manifest.model_validate(json.loads(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(document)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise OperationError(
            f"refusing a forged or corrupt run manifest: field {field}: "
            f"{first['msg'].removeprefix('Value error, ')}{more}",
            where=where,
        ) from None
    except ValueError as exc:
        raise OperationError(
            f"run manifest is unreadable (not valid JSON): {exc}", where=where
        ) from None


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
    snaps = repo.snapshots(layout.tags(plan, layout.Kind.MANIFEST, complete="yes"))
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
    for snap in repo.snapshots(layout.tags(plan)):
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
