"""`drplan drill`: a real recovery of the newest run into an isolated copy, then nothing left.

A drill recovers the newest complete run on the recovery site under its own name
(`drill-<id>-<stack>`: its own overlay networks and volumes, no published port, external
networks and volumes replaced by the copy's own), runs every check and the fingerprint
verification, measures RTO and RPO, and tears everything down.

**Isolation from production.** A drill may run on the primary site, next to production,
so its copy of the compose files must not reach production's data: the stack prefix
namespaces only plain volumes and networks. `plan.isolation.isolate_compose` rewrites the
compose files before anything is deployed, and `plan.isolation.shared_storage` lists what
it rewrites (so `drplan validate` can warn about it), one choice per kind:

- a volume with an explicit ``name:``, an ``external`` volume, a volume with a
  ``driver``/``driver_opts`` (NFS, ``local`` with ``o: bind`` + ``device:``, a plugin):
  **remapped** to a plain local volume of the drill's own (``name``, ``external``,
  ``driver`` and ``driver_opts`` dropped, so the drill's stack prefix namespaces it). It
  is what the restore writes into, and the teardown removes it with the rest of the copy.
  Remapping keeps the drill possible; sharing would let the drill's restore overwrite
  production's database files or uploads.
- a writable bind mount (``./media:/srv/media``, ``type: bind``): **remapped** to a fresh
  named volume of the drill's own, one per host path (services sharing a directory still
  share it within the drill); every mount of that path, read-only ones included, uses it.
  The directory is empty unless the plan restores into it: a drill exercises the backups,
  not the live host directory.
- a read-only bind mount (a configuration file, ``./nginx.conf:/etc/nginx.conf:ro``):
  **kept**. The kernel enforces read-only, so the drill cannot change production's files,
  and the service keeps its configuration (an empty volume cannot stand in for a file).
- a bind mount of a socket or runtime directory (``/var/run/docker.sock``, any ``*.sock``,
  anything under ``/run`` or ``/var/run``), or a mount type drplan cannot copy
  (``cluster``, ``npipe``, ...): the drill is **refused** up front, naming the service and
  the path, before it changes anything. Read-only does not stop a process from connecting
  to a socket, so such a service could act on production's daemons; a ``--profile``
  without that service can still be drilled.
- networks with an explicit ``name:`` get the copy's own (a shared network would let the
  copy's services resolve production's ``db``), as external networks already did.

The rewritten files are written into a private temporary directory (0700, files 0600,
never through an existing file or link; relative host paths made absolute against the
originals' folders), recorded in the marker and removed by the teardown.

Teardown is driven by a **marker** written on the target before the drill creates
anything: a small volume labelled `org.drplan.drill` whose labels say which stack the
drill uses and what the engine lacked before (the shared journal and cache volumes, the
helper image, the run's images by name with the id each name had). Teardown removes
exactly what the marker says the drill may have created, then the marker itself. It runs
in a `finally`, on SIGTERM/SIGINT, and — for a drill killed with SIGKILL — at the start
of the next drill of the same plan, which finds the marker.

Each drill is recorded in the repository (a snapshot tagged `kind:drill` holding the
drill's JSON record), so its history survives the primary site; `step_history` feeds
the measured step durations back into the schedule's estimates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from drplan import labels as lbl
from drplan.actions import recover as rc
from drplan.actions.context import PlanContext, open_engine
from drplan.actions.resume import VOLUME as JOURNAL_VOLUME
from drplan.errors import DrplanError, InputError, OperationError
from drplan.plan.graph import profile_services
from drplan.plan.isolation import (
    Shared,
    isolate_bind_sources,
    isolate_compose,
    shared_storage,
)
from drplan.platform import helper as helper_image
from drplan.platform.docker import DockerEngine
from drplan.reports import recovery as recovery_report
from drplan.sources.volume import CACHE_VOLUME
from drplan.store import manifest as mf
from drplan.store import records
from drplan.store.restic import LOCK_DIR, Repository

MARKER_LABEL = lbl.DRILL
STATE_LABEL = lbl.DRILL_STATE
PLAN_LABEL = lbl.PLAN
GWBRIDGE = "docker_gwbridge"
STALE_FOREIGN_S = 6 * 3600


@dataclass
class DrillOptions:
    site: str | None = None
    profile: str | None = None
    run: str = "latest"
    workers: int = 4


# -- the marker: what a drill may create, written before it creates anything -------------


@dataclass
class Marker:
    drill_id: str
    plan: str
    stack: str
    started_at: str
    host: str
    pid: int
    plan_dir: str
    volumes_absent: list[str] = field(default_factory=list)
    images_before: dict[str, str | None] = field(default_factory=dict)
    # the other nodes of a multi-node site (hostname -> images_before there): a recovery
    # copies the run's images to every node
    node_images_before: dict[str, dict[str, str | None]] = field(default_factory=dict)
    helper_absent: str | None = None
    swarm_was_active: bool = True
    gwbridge_absent: bool = False
    files: list[str] = field(default_factory=list)  # the drill's isolated compose files

    @property
    def volume(self) -> str:
        return f"drplan-drill-{self.drill_id}"

    def labels(self) -> dict[str, str]:
        return {
            MARKER_LABEL: self.drill_id,
            PLAN_LABEL: self.plan,
            STATE_LABEL: json.dumps(asdict(self), separators=(",", ":")),
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Marker:
        return cls(**json.loads(labels[STATE_LABEL]))


def _snapshot_state(
    engine: DockerEngine, pc: PlanContext, run: mf.Manifest, drill_id: str
) -> Marker:
    have = engine.inventory()
    helper = helper_image.image_name()
    return Marker(
        drill_id=drill_id,
        plan=pc.name,
        stack=f"drill-{drill_id}-{pc.name}",
        started_at=mf.utc_now(),
        host=socket.gethostname(),
        pid=os.getpid(),
        plan_dir=str(pc.dir),
        volumes_absent=[v for v in (JOURNAL_VOLUME, CACHE_VOLUME) if v not in have["volumes"]],
        images_before={name: engine.image_id(name) for name in sorted(run.images)},
        node_images_before={
            e.node_name: {name: e.image_id(name) for name in sorted(run.images)}
            for e in engine.node_engines()
            if e is not engine
        },
        helper_absent=None if engine.image_id(helper) else helper,
        swarm_was_active=engine.swarm_state() == "active",
        gwbridge_absent=GWBRIDGE not in have["networks"],
    )


def markers(engine: DockerEngine, plan: str) -> list[Marker]:
    found = []
    for v in engine.volumes_labelled(MARKER_LABEL):
        labels = v["labels"]
        if labels.get(PLAN_LABEL) != plan or STATE_LABEL not in labels:
            continue
        try:
            found.append(Marker.from_labels(labels))
        except (ValueError, TypeError):
            continue
    return found


def drill_context(
    pc: PlanContext, drill_id: str, services: list[str]
) -> tuple[PlanContext, dict[Path, Any], list[Shared]]:
    """The plan as the drill deploys it: its compose files isolated (see
    :func:`drplan.plan.isolation.isolate_compose`), to be written into a private
    directory of the drill's own (0700, files 0600: never into the plan's folder, which
    may be shared), with their relative host paths made absolute against the originals'
    folders so they keep their meaning.

    Returns the drill's PlanContext, {path to write: document} and what was isolated.
    Raises InputError before any change when the drill cannot be isolated.
    """
    originals = [yaml.safe_load((pc.dir / rel).read_text()) or {} for rel in pc.plan.stack.compose]
    isolated = isolate_compose(originals, services)
    private = Path(tempfile.mkdtemp(prefix=f"drplan-drill-{drill_id}-"))
    paths = [private / f"{i}-{Path(rel).name}" for i, rel in enumerate(pc.plan.stack.compose)]
    plan = pc.plan.model_copy(deep=True)
    plan.stack.compose = [str(p) for p in paths]
    bases = [str((pc.dir / rel).parent) for rel in pc.plan.stack.compose]
    isolate_bind_sources(plan, originals, bases)  # restored into the drill's own volumes
    shared = [s for s in shared_storage(originals) if s.service in services]
    files = {
        path: rc.absolute_paths(data, (pc.dir / rel).parent)
        for path, rel, data in zip(paths, pc.plan.stack.compose, isolated, strict=True)
    }
    # the isolated files drop every `name:`/`external`: the drill's volumes are its own
    compose = pc.compose.without_volume_names()
    return dataclasses.replace(pc, plan=plan, compose=compose), files, shared


def _write_new(path: Path, text: str) -> None:
    """Create `path` (0600, never through a link someone placed there: the plan's folder
    may be shared) and write `text` into it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise OperationError(
            f"cannot write the drill's compose file {path}: {exc.strerror}", where="drill"
        ) from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


# -- teardown ---------------------------------------------------------------------------------


@dataclass
class Teardown:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # created by the drill, kept on purpose
    errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.errors


def teardown(engine: DockerEngine, m: Marker, *, remove_marker: bool = True) -> Teardown:
    """Remove what the drill of marker `m` created; idempotent; never raises."""
    td = Teardown()

    def attempt(what: str, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except Exception as exc:  # collect, go on: every other part must still be removed
            td.errors.append(f"{what}: {exc}")
            return None

    # helpers hold the drill's volumes; then the stack (services, tasks, networks, volumes)
    n = attempt("helpers", lambda: engine.remove_helpers({PLAN_LABEL: m.plan}))
    if n:
        td.removed.append(f"{n} helper container(s)")
    attempt(f"stack {m.stack}", lambda: engine.remove_stack(m.stack, volumes=True))
    # on every node: a multi-node site's volumes are restored where their service runs
    for node in engine.node_engines():
        for vol in sorted(node.inventory()["volumes"]):
            if vol.startswith(f"{m.stack}_"):
                attempt(f"volume {vol}", lambda vol=vol, node=node: node.remove_volume(vol))
    for net in sorted(engine.inventory()["networks"]):
        if net.startswith(f"{m.stack}_"):
            attempt(f"network {net}", lambda net=net: engine.remove_network(net))
    td.removed.append(f"stack {m.stack}")
    attempt("recovery journal", lambda: _journal(engine, m, td))
    if CACHE_VOLUME in m.volumes_absent and engine.volume_exists(CACHE_VOLUME):
        if attempt(f"volume {CACHE_VOLUME}", lambda: engine.remove_unused_volume(CACHE_VOLUME)):
            td.removed.append(f"volume {CACHE_VOLUME}")
        else:
            td.kept.append(f"volume {CACHE_VOLUME} (in use by another drplan process)")
    attempt("images", lambda: _images(engine, m, td))
    if m.helper_absent and engine.image_id(m.helper_absent):
        if engine.image_users(engine.image_id(m.helper_absent) or ""):
            td.kept.append(f"image {m.helper_absent} (in use)")
        elif engine.remove_image(m.helper_absent):
            td.removed.append(f"image {m.helper_absent}")
    if not m.swarm_was_active and engine.swarm_state() == "active" and not engine.any_service():
        attempt("swarm", engine.leave_swarm)
        td.removed.append("swarm mode (the drill had initialised it)")
    gone = m.gwbridge_absent and GWBRIDGE in engine.inventory()["networks"]
    if gone and engine.remove_network(GWBRIDGE):
        td.removed.append(f"network {GWBRIDGE}")
    # the isolated compose files, and what recover wrote next to them (and to the plan)
    dirs = {Path(m.plan_dir), *(Path(f).parent for f in m.files)}
    deployed = [f for d in dirs for f in d.glob(f".drplan-deploy-{m.stack}-*")]
    for f in [*map(Path, m.files), *deployed]:
        with contextlib.suppress(OSError):
            f.unlink()
    for d in {Path(f).parent for f in m.files}:
        with contextlib.suppress(OSError):
            d.rmdir()  # the drill's private directory, once empty
    # what is still there, by name, decides whether the marker can go
    have = engine.inventory()
    left = sorted(
        x for kind in ("volumes", "networks") for x in have[kind] if x.startswith(f"{m.stack}_")
    )
    left += sorted(c for c in have["containers"] if c.startswith(f"{m.stack}_"))
    if left:
        td.errors.append("still on the engine: " + ", ".join(left))
    if remove_marker and td.clean:
        attempt("marker", lambda: engine.remove_volume(m.volume))
    return td


def _journal(engine: DockerEngine, m: Marker, td: Teardown) -> None:
    """Remove the drill's recovery journal (and the journal volume if the drill made it)."""
    if not engine.volume_exists(JOURNAL_VOLUME):
        return
    image = helper_image.ensure(engine)
    c = engine.start_helper(
        image,
        mounts=[DockerEngine.volume_mount(JOURNAL_VOLUME, "/journal")],
        labels=lbl.owned_by(m.plan, "drill-cleanup"),
        network="none",
    )
    try:
        res = engine.exec_run(
            c,
            ["sh", "-c", f'rm -f "/journal/{m.stack}.jsonl"; ls -A /journal'],
            what="removing the drill's recovery journal",
        )
    finally:
        with contextlib.suppress(Exception):
            engine.remove_container(c)
    td.removed.append(f"journal {m.stack}.jsonl")
    if JOURNAL_VOLUME in m.volumes_absent:
        if res.stdout.strip():
            td.kept.append(f"volume {JOURNAL_VOLUME} (now holds other journals)")
        elif engine.remove_unused_volume(JOURNAL_VOLUME):
            td.removed.append(f"volume {JOURNAL_VOLUME}")
        else:
            td.kept.append(f"volume {JOURNAL_VOLUME} (in use by another drplan process)")


def _images(engine: DockerEngine, m: Marker, td: Teardown) -> None:
    """Images the drill loaded go, on every node it knew; a name that pointed elsewhere
    points back."""
    _images_on(engine, m.images_before, td)
    for node in engine.node_engines():
        if node is not engine and node.node_name in m.node_images_before:
            _images_on(node, m.node_images_before[node.node_name], td)


def _images_on(engine: DockerEngine, images_before: dict[str, str | None], td: Teardown) -> None:
    for name, before in images_before.items():
        now = engine.image_id(name)
        if now is None or now == before:
            continue
        users = engine.image_users(now)
        if users:
            td.kept.append(f"image {name} (used by {', '.join(users[:3])})")
            continue
        if engine.remove_image(name):
            td.removed.append(f"image {name}")
        if before is not None and engine.image_id(before) is not None:
            engine.tag_image(before, name)


def cleanup_leftovers(engine: DockerEngine, pc: PlanContext) -> list[dict]:
    """Tear down what earlier drills of this plan left (killed ones); a record of each."""
    done = []
    me = socket.gethostname()
    for m in markers(engine, pc.name):
        age = (datetime.now(UTC) - mf.parse_time(m.started_at)).total_seconds()
        if m.host != me and age < STALE_FOREIGN_S:
            raise OperationError(
                f"a drill of {pc.name} started on host {m.host} at {m.started_at} may still "
                f"be running (marker volume {m.volume}); wait for it, or remove that volume "
                "if that drill is known to be dead",
                where=engine.where,
            )
        td = teardown(engine, m)
        done.append(
            {"drill_id": m.drill_id, "stack": m.stack, "removed": td.removed, "errors": td.errors}
        )
        if not td.clean:
            raise OperationError(
                f"cannot clean what drill {m.drill_id} left: " + "; ".join(td.errors[:3]),
                where=engine.where,
            )
    return done


# -- the drill ----------------------------------------------------------------------------------


class Interrupted(OperationError):
    """SIGTERM or SIGINT during a drill (teardown still runs)."""


@dataclass
class DrillResult:
    record: records.DrillRecord
    recovery: object | None  # the Recovery, when it got that far
    teardown: Teardown
    cleaned_before: list[dict]


def plan_digest(pc: PlanContext) -> dict[str, str]:
    """sha256 of the plan file and of its compose files: any change calls for a drill."""
    compose = hashlib.sha256()
    for rel in pc.plan.stack.compose:
        p = pc.dir / rel
        compose.update(rel.encode() + b"\0" + (p.read_bytes() if p.exists() else b""))
    return {
        "plan_sha256": hashlib.sha256(pc.path.read_bytes()).hexdigest(),
        "compose_sha256": compose.hexdigest(),
    }


def grade(measured: float | None, objective: float | None) -> str | None:
    """met (<= 1x the objective), exceeded (<= 2x), severely exceeded (> 2x)."""
    if measured is None or objective is None:
        return None
    if measured <= objective:
        return "met"
    if measured <= 2 * objective:
        return "exceeded"
    return "severely exceeded"


@contextlib.contextmanager
def _drill_lock(plan: str, site: str):
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{plan}\0{site}".encode()).hexdigest()[:16]
    fd = os.open(LOCK_DIR / f"drill-{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OperationError(
                f"another drill of {plan} on site {site} is running on this host",
                where="drill",
            ) from exc
        yield
    finally:
        os.close(fd)


class _Signals:
    """SIGTERM/SIGINT raise Interrupted in the main thread, once; then they are noted only."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.armed = False
        self.saved: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.saved[sig] = signal.signal(sig, self._handle)
            self.armed = True
        return self

    def _handle(self, signum, frame) -> None:
        first = self.received is None
        self.received = self.received or signum
        if first and self.armed:
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}", where="drill")

    def disarm(self) -> None:
        self.armed = False

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def run_drill(
    pc: PlanContext,
    opts: DrillOptions,
    on_event=lambda e: None,
    on_bytes=lambda t, n: None,
    repo: Repository | None = None,
) -> DrillResult:

    site_name, site = pc.site(opts.site, role="recovery")
    try:
        services, _ = profile_services(pc.plan, opts.profile)
    except KeyError:
        raise InputError(
            f"unknown profile {opts.profile!r} (the plan has: full, {', '.join(pc.plan.profiles)})",
            where=str(pc.path),
        ) from None
    drill_id = secrets.token_hex(3)
    # before anything is changed: a drill that cannot be isolated from production is refused
    drill_pc, files, isolated = drill_context(pc, drill_id, services)
    repo = repo or pc.repository()
    repo.open()
    engine = open_engine(site_name, site)
    digest = plan_digest(pc)
    with _drill_lock(pc.name, site_name), _Signals() as signals:
        cleaned = cleanup_leftovers(engine, pc)
        run = mf.find_run(repo, pc.name, opts.run)
        marker = _snapshot_state(engine, pc, run, drill_id)
        marker.files = sorted(str(f) for f in files)
        started = mf.utc_now()
        t0 = time.monotonic()
        box: dict[str, object] = {}
        ropts = rc.RecoverOptions(
            site=site_name,
            run=run.run_id,
            profile=opts.profile,
            prefix=f"drill-{marker.drill_id}-",
            incident_at=datetime.now(UTC),
            workers=opts.workers,
            isolate=True,
        )

        def work() -> None:
            try:
                box["rec"] = rc.recover(drill_pc, repo, ropts, on_event=on_event, on_bytes=on_bytes)
            except BaseException as exc:  # reported by the main thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="drill-recovery", daemon=True)
        failure: str | None = None
        td = Teardown()
        try:
            engine.create_volume(marker.volume, labels=marker.labels())
            for path, data in files.items():  # after the marker: the teardown removes them
                _write_new(path, yaml.safe_dump(data, sort_keys=False))
            worker.start()
            while worker.is_alive():
                worker.join(0.5)
        except Interrupted as exc:
            failure = str(exc)
        finally:
            signals.disarm()
            if worker.is_alive():
                # stop the recovery where it stands: its steps fail once the stack is gone
                teardown(engine, marker, remove_marker=False)
                worker.join(120)
            td = teardown(engine, marker, remove_marker=not worker.is_alive())
            if worker.is_alive():
                td.errors.append("the recovery did not stop; the next drill cleans up")
        rec = box.get("rec")
        error = box.get("error")
        if failure is None and error is not None:
            failure = str(error) if isinstance(error, DrplanError) else repr(error)
        report = recovery_report.build(rec, pc.plan) if rec is not None else None
        if failure is None and rec is not None and not rec.ok:
            failed = [
                f"{s['id']}: {s['error']}" for s in report["steps"] if s["status"] == "failed"
            ]
            diffs = [
                f"{svc}: {'; '.join(v['differences'])}"
                for svc, v in report["verification"].items()
                if not v["ok"]
            ]
            failure = "; ".join(failed + diffs) or "the recovery did not complete"
        if failure is None and not td.clean:
            failure = "teardown incomplete: " + "; ".join(td.errors[:3])
        record = _record(
            pc,
            marker=marker,
            run=run,
            site=site_name,
            profile=opts.profile or "full",
            started=started,
            seconds=time.monotonic() - t0,
            report=report,
            failure=failure,
            teardown=td,
            digest=digest,
            signal_received=signals.received,
        )
        record.isolated = [s.message for s in isolated]
        try:
            record.recorded_as = records.record_drill(repo, pc.host, record)
        except DrplanError as exc:
            record.recorded_as = None
            record.record_error = str(exc)
        if isinstance(error, BaseException) and not isinstance(error, Exception):
            raise error
        return DrillResult(record, rec, td, cleaned)


def _record(
    pc: PlanContext,
    *,
    marker: Marker,
    run: mf.Manifest,
    site: str,
    profile: str,
    started: str,
    seconds: float,
    report: dict | None,
    failure: str | None,
    teardown: Teardown,
    digest: dict[str, str],
    signal_received: int | None,
) -> records.DrillRecord:
    """The drill's record: the recovery report's measures graded against the objectives
    (those the report did not reach are taken from the plan)."""
    rto = (report or {}).get("rto") or {}
    rpo = (report or {}).get("rpo") or {}
    rto_obj = rto.get("objective_s", pc.plan.objectives.rto)
    rpo_obj = rpo.get("objective_s", recovery_report.rpo_objective(pc.plan, list(pc.plan.services)))
    incident = mf.parse_time(started)
    rpo_s = rpo.get("measured_s", round((incident - mf.parse_time(run.rpo_point)).total_seconds()))
    return records.DrillRecord(
        drill_id=marker.drill_id,
        plan=pc.name,
        stack=marker.stack,
        site=site,
        profile=profile,
        run_id=run.run_id,
        started_at=started,
        finished_at=mf.utc_now(),
        seconds=round(seconds, 3),
        passed=failure is None,
        failure=failure,
        interrupted_by=signal.Signals(signal_received).name if signal_received else None,
        plan_sha256=digest.get("plan_sha256"),
        compose_sha256=digest.get("compose_sha256"),
        rto=records.RtoRecord(
            measured_s=rto.get("measured_s"),
            estimated_s=rto.get("estimated_s"),
            objective_s=rto_obj,
            verdict=grade(rto.get("measured_s"), rto_obj),
        ),
        rpo=records.RpoRecord(
            recovery_point=run.rpo_point,
            measured_s=rpo_s,
            objective_s=rpo_obj,
            verdict=grade(rpo_s, rpo_obj),
        ),
        verified=bool(report and report.get("verified")),
        verification=(report or {}).get("verification", {}),
        steps={
            s["id"]: records.StepRecord(
                status=s["status"],
                seconds=s["seconds"],
                error=s["error"],
                started_at=s.get("started_at"),
            )
            for s in (report or {}).get("steps", [])
        },
        critical_path=(report or {}).get("critical_path", {}),
        teardown=records.TeardownRecord(
            clean=teardown.clean,
            removed=teardown.removed,
            kept=teardown.kept,
            errors=teardown.errors,
        ),
    )
