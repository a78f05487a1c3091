"""`drplan backup`: one run backs up every data source of the plan as one consistency
group, plus the images and the plan, and ends with the run's manifest.

Sources run in parallel with bounded concurrency. The run is complete only when every
source succeeded; otherwise a manifest marked incomplete records what failed (and a
killed run leaves no manifest at all), so a partial run is never taken for a good one.
The plan's backup hooks run around the sources they wrap (drplan.actions.hooks): a failed
`before_backup` hook fails those sources; a failed `after_backup` hook is an error of the
run, whose data stays complete.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from drplan import __version__, process
from drplan import labels as lbl
from drplan.actions import hooks as hk
from drplan.actions import nodes
from drplan.actions.context import PlanContext
from drplan.errors import InputError, OperationError
from drplan.executor import Event, Executor, Task
from drplan.interrupt import Interrupted, signals_stop
from drplan.plan.stack_objects import files_inside
from drplan.platform.docker import DockerEngine
from drplan.sources import engine_for, registry
from drplan.sources.base import SourceContext
from drplan.store import layout
from drplan.store import manifest as mf
from drplan.store.restic import Repository

WORKERS = 4
# dumps run in the database's own container: how long to wait for it to be running
SERVER_WAIT_S = 120.0


@dataclass
class BackupOptions:
    services: list[str] | None = None
    site: str | None = None
    workers: int = WORKERS


def prepare_repository(pc: PlanContext, engine: DockerEngine, repo: Repository) -> None:
    """Before writing: the repository opens, and what a killed run left is cleaned up.

    Only what a provably dead run left is removed (its owner's host, boot and pid are
    recorded on every helper and in every lock): another operation on the same plan,
    from this host or another, may be working right now.
    """
    repo.open()
    engine.remove_helpers({lbl.PLAN: pc.name})
    repo.unlock()


def run_backup(
    pc: PlanContext,
    opts: BackupOptions,
    on_event: Callable[[Event], None] = lambda e: None,
    on_bytes: Callable[[str, int], None] = lambda task, n: None,
) -> mf.Manifest:
    services = opts.services or list(pc.plan.services)
    unknown = [s for s in services if s not in pc.plan.services]
    if unknown:
        raise InputError(
            f"unknown service(s) {', '.join(unknown)} (the plan has: "
            f"{', '.join(pc.plan.services)})",
            where=str(pc.path),
        )
    compose_files = stored_compose(pc)
    site_name, site = pc.site(opts.site)
    engine = pc.engine(site_name)
    repo = pc.repository()
    stack = pc.stack_name(site)
    with repo.exclusive(f"backup of {pc.name}"):
        prepare_repository(pc, engine, repo)
        wanted = {(s, n) for s in services for n in pc.plan.services[s].data}
        previous, parents = _parents(repo, pc.name, wanted)
        run_id = mf.new_run_id()
        manifest = mf.Manifest(
            plan=pc.name,
            stack=stack,
            run_id=run_id,
            host=pc.host,
            drplan_version=__version__,
            started_at=mf.utc_now(),
            rpo_point=mf.utc_now(),
            plan_file=pc.path.name,
            plan_dir=mf.recordable_dir(str(pc.dir.resolve())),
            compose_files=compose_files,
        )
        tasks: list[Task] = []
        sources: dict[tuple[str, str], str] = {}
        for svc_name in services:
            svc = pc.plan.services[svc_name]
            for src_name, spec in svc.data.items():
                volume = pc.volume_name(stack, spec.volume) if spec.volume else None
                ctx = SourceContext(
                    # the node holding the data (a worker's local volume, its bind mount)
                    engine=nodes.backup_engine(
                        engine,
                        stack,
                        svc_name,
                        volume,
                        shared=nodes.is_shared(pc.compose, spec.volume),
                    ),
                    repo=repo,
                    stack=stack,
                    plan_name=pc.name,
                    service=svc_name,
                    name=src_name,
                    spec=spec,
                    run_id=run_id,
                    host=pc.host,
                    plan_dir=pc.dir,
                    dotenv=pc.compose.dotenv_variables(),
                    deadline=time.monotonic() + 6 * 3600,
                    volume=volume,
                    bind=site.host_dir(spec.bind) if spec.bind else None,
                    mount_target=pc.mount_target(svc_name, spec.volume),
                    quiesce=pc.writers_of(spec.volume) if spec.volume else [svc_name],
                )
                tid = sources[(svc_name, src_name)] = f"backup:{svc_name}/{src_name}"
                ctx.progress = (lambda t: lambda n: on_bytes(t, n))(tid)
                prev = parents.get((svc_name, src_name))
                ctx.parent = prev.snapshot if prev and prev.engine == spec.engine else None
                tasks.append(Task(tid, _source_task(ctx, spec), service=svc_name, kind="backup"))
        tasks.append(
            Task("images", lambda: _images(pc, engine, repo, run_id, previous), kind="images")
        )
        tasks.append(Task("config", lambda: _config(pc, repo, run_id), kind="config"))
        runner = hk.HookRunner(
            pc, engine, stack, site_name, run_id, withheld=hk.repository_secrets(repo)
        )
        around = hk.BackupHooks(runner, hk.backup_scopes(pc.plan, services, sources))
        tasks = around.wire(tasks)

        def stop_steps() -> None:
            engine.remove_helpers({lbl.RUN: run_id}, only_dead=False)
            process.kill_children()
            runner.kill_running()

        ex = Executor(tasks, workers=opts.workers, on_event=on_event, on_interrupt=stop_steps)
        interrupted: Interrupted | None = None
        with signals_stop(f"backup of {pc.name}"):
            try:
                outcomes = ex.execute()
            except Interrupted as exc:
                interrupted, outcomes = exc, ex.outcomes
            around.settle(outcomes, on_event)  # after_backup hooks the executor skipped
        for t in tasks:
            o = outcomes[t.id]
            manifest.timings[t.id] = round(o.seconds, 3)
            if o.status != "ok":
                manifest.errors.append(f"{t.id}: {o.error}")
                continue
            if t.kind == "backup":
                record: mf.SourceRecord = o.value
                record.started_at, record.finished_at = o.started_at, o.finished_at
                record.seconds = round(o.seconds, 3)
                manifest.sources.append(record)
                for svc, down in o.value.stats.pop("_downtime", {}).items():
                    manifest.downtime_s[svc] = manifest.downtime_s.get(svc, 0) + down
            elif t.kind == "images":
                manifest.images, manifest.images_snapshot, manifest.images_bytes = o.value
            elif t.kind == "config":
                manifest.config_snapshot = o.value
        manifest.finished_at = mf.utc_now()
        # a failed after_backup hook is an error of the run, not a gap in its data
        manifest.complete = interrupted is None and all(
            o.status in ("ok", "done-before")
            for tid, o in outcomes.items()
            if tid not in around.after_ids
        )
        manifest.hooks = sorted(runner.records, key=lambda r: r.started_at)
        if interrupted is not None:
            manifest.errors.insert(0, str(interrupted))
        mf.write(repo, manifest, pc.host)
    if interrupted is not None:
        raise interrupted
    return manifest


def _parents(
    repo: Repository, plan: str, wanted: set[tuple[str, str]]
) -> tuple[mf.Manifest | None, dict[tuple[str, str], mf.SourceRecord]]:
    """The newest complete run, and for each wanted source the newest complete run holding
    it (a run of some services only, `--service`, must not make the others read everything
    again). Manifests are read newest first, only as far as needed."""
    previous = None
    parents: dict[tuple[str, str], mf.SourceRecord] = {}
    for m in mf.newest_complete(repo, plan):
        previous = previous or m
        for rec in m.sources:
            parents.setdefault((rec.service, rec.source), rec)
        if wanted <= parents.keys():
            break
    return previous, parents


def _source_task(ctx: SourceContext, spec) -> Callable[[], mf.SourceRecord]:
    def run() -> mf.SourceRecord:
        impl = engine_for(spec.engine, spec.method)
        if spec.method == "dump" and registry.engine(spec.engine).dump_needs_server:
            _server_running(ctx)
        res = impl.backup(ctx)
        stats = dict(res.stats)
        if res.downtime_s:
            stats["_downtime"] = res.downtime_s
        return mf.SourceRecord(
            service=ctx.service,
            source=ctx.name,
            engine=spec.engine,
            method=spec.method,
            consistency=res.consistency,
            volume=ctx.volume,
            snapshot=res.snapshot,
            path=res.path,
            bytes=res.bytes,
            seconds=0.0,
            started_at="",
            finished_at="",
            fingerprint=res.fingerprint,
            stats=stats,
            node=ctx.engine.node_name,
        )

    return run


def _server_running(ctx: SourceContext) -> None:
    """A dump needs its server running: fail fast and clearly when it is not there."""
    replicas = ctx.engine.service_replicas(ctx.stack, ctx.service)
    svc = f"{ctx.stack}_{ctx.service}"
    if replicas is None and ctx.engine.service(ctx.stack, ctx.service) is None:
        raise OperationError(
            f"service {svc} does not exist on {ctx.engine.where} (is the stack deployed?)",
            where=ctx.what,
        )
    if replicas == 0:
        raise OperationError(
            f"service {svc} is scaled to 0: no server to dump from (scale "
            "it up, or back it up with method: cold)",
            where=ctx.what,
        )
    ctx.engine.wait_running(
        ctx.stack, ctx.service, min(ctx.deadline, time.monotonic() + SERVER_WAIT_S)
    )


def _images(
    pc: PlanContext,
    engine: DockerEngine,
    repo: Repository,
    run_id: str,
    previous: mf.Manifest | None,
) -> tuple[dict[str, str], str | None, int]:
    """Save the stack's images once: unchanged images reuse the previous run's snapshot."""
    names = pc.images()
    ids = {}
    for name in names:
        found = engine.find_image(name)
        if found is None:
            raise OperationError(
                f"image {name} is on no node drplan reaches", where=engine.where
            )
        ids[name] = found[1]
    if previous and previous.images == ids and previous.images_snapshot:
        return ids, previous.images_snapshot, 0
    if not names:
        return ids, None, 0
    summary = repo.backup_stream(
        engine.save_images(names),
        filename=layout.IMAGES_FILE,
        tags=layout.tags(pc.name, layout.Kind.IMAGES, run=run_id),
        host=pc.host,
        what="saving the stack's images",
    )
    return ids, summary["snapshot_id"], int(summary.get("total_bytes_processed", 0))


def stored_compose(pc: PlanContext) -> list[str]:
    """The compose files as a run stores them: normalised paths inside the plan's folder
    (`./compose.yml` is `compose.yml`). A run keeps the plan with its compose files so a
    recovery needs nothing else, at the same relative places; a compose file outside the
    plan's folder has no such place, and the backup refuses it before writing anything."""
    base = os.path.normpath(pc.dir)
    out = []
    for rel in pc.plan.stack.compose:
        full = os.path.normpath(os.path.join(base, rel))
        inside = os.path.relpath(full, base)
        if inside == ".." or inside.startswith("../") or os.path.isabs(inside):
            raise InputError(
                f"compose file {rel!r} is outside the plan's folder {base}: a run stores the "
                "plan with its compose files, at the same relative places, so that a "
                "recovery needs nothing else; keep the plan beside (or above) them",
                where=f"{pc.path}: stack.compose",
            )
        out.append(inside.replace(os.sep, "/"))
    return out


def _config(pc: PlanContext, repo: Repository, run_id: str) -> str:
    """The plan and its compose files, so recovery needs neither this host nor a checkout."""
    buf = io.BytesIO()
    # links are followed: a recovery accepts only regular files in this tar
    with tarfile.open(fileobj=buf, mode="w", dereference=True) as tar:
        tar.add(pc.path, arcname=pc.path.name)
        for rel in stored_compose(pc):
            tar.add(pc.dir / rel, arcname=rel)
        # the project's .env: Compose interpolates the compose files with it, and a
        # recovery from the repository alone needs the same values
        first = (pc.dir / pc.plan.stack.compose[0]).parent if pc.plan.stack.compose else pc.dir
        dotenv = first / ".env"
        if dotenv.is_file() and dotenv.resolve().is_relative_to(pc.dir.resolve()):
            tar.add(dotenv, arcname=str(dotenv.resolve().relative_to(pc.dir.resolve())))
        # secret and config files inside the plan's folder: the deploy of a recovery from
        # the repository creates them (encrypted in the repository like the dumps)
        for path, arcname in files_inside(pc.compose, pc.dir):
            if arcname not in tar.getnames():
                tar.add(path, arcname=arcname)
    summary = repo.backup_stream(
        [buf.getvalue()],
        filename=layout.CONFIG_FILE,
        tags=layout.tags(pc.name, layout.Kind.CONFIG, run=run_id),
        host=pc.host,
        what="saving the plan and compose files",
    )
    return summary["snapshot_id"]
