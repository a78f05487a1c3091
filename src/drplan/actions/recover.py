"""`drplan recover`: rebuild the stack of a backup run on a target site.

It executes the plan's recovery schedule (see drplan.schedule.steps) on the target engine:
prepare the site, load the images it lacks, define the stack with every service at zero
replicas (Swarm ignores depends_on: drplan enforces the order by scaling services up one
dependency level at a time), restore each data source, start services, wait on their
health, validate them and compare each source with the run's fingerprints.

Safety: it refuses to write into a non-empty volume without --force, and it only ever
talks to the one engine it was given. A journal on the target makes a re-run resume.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from drplan import manifest as mf
from drplan.actions import checks
from drplan.actions.context import PlanContext
from drplan.actions.journal import TargetJournal
from drplan.errors import InputError, OperationError
from drplan.executor import Event, Executor, Outcome, Task
from drplan.plan.compose import long_port, published_by_service
from drplan.plan.graph import profile_services
from drplan.platform.docker import Engine
from drplan.repository.restic import Repository
from drplan.schedule import Estimator, Schedule, build_schedule
from drplan.schedule.steps import Step, StepKind, restores_into_server
from drplan.sources import engine_for
from drplan.sources import volume as vol
from drplan.sources.base import SourceContext

# idempotent steps that are cheap to redo and must hold again on resume
ALWAYS_RERUN = {
    StepKind.PREPARE_SITE,
    StepKind.CREATE_VOLUMES,
    StepKind.START,
    StepKind.HEALTH,
    StepKind.VALIDATE,
}


@dataclass
class RecoverOptions:
    site: str | None = None
    run: str = "latest"
    profile: str | None = None
    force: bool = False
    dry_run: bool = False
    prefix: str | None = None
    incident_at: datetime | None = None
    workers: int = 4
    # a drill's copy: external networks and volumes of the compose become the copy's own,
    # so nothing is shared with production (published ports are dropped for any prefix)
    isolate: bool = False


@dataclass
class Recovery:
    """What a recovery did: the report's raw material."""

    plan: str
    stack: str
    site: str
    run: mf.Manifest
    profile: str
    schedule: Schedule
    started_at: str
    finished_at: str = ""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    verification: dict[str, list[str]] = field(default_factory=dict)
    resumed: bool = False
    measured_rto_s: float | None = None
    ok: bool = False
    incident_at: str = ""


def recover(
    pc: PlanContext,
    repo: Repository,
    opts: RecoverOptions,
    on_event: Callable[[Event], None] = lambda e: None,
    on_bytes: Callable[[str, int], None] = lambda t, n: None,
) -> Recovery:
    t0 = time.monotonic()
    started = mf.utc_now()
    site_name, site = pc.site(opts.site, role="recovery")
    repo.open()
    if opts.profile not in (None, "full") and opts.profile not in pc.plan.profiles:
        raise InputError(
            f"unknown profile {opts.profile!r} (the plan has: full, {', '.join(pc.plan.profiles)})",
            where=str(pc.path),
        )
    services, _ = profile_services(pc.plan, opts.profile)
    needs = {(svc, src) for svc in services for src in pc.plan.services[svc].data}
    run = mf.find_run(repo, pc.name, opts.run, needs=needs)
    # Until recoveries have been timed, a source's backup time is the best first guess
    # of its restore time.
    history = {
        "restore:" + k[len("backup:") :]: v
        for k, v in run.timings.items()
        if k.startswith("backup:")
    }
    # steps timed by past drills are better still
    from drplan.actions.drill import step_history

    history.update(step_history(repo, pc.name))
    schedule = build_schedule(pc.plan, profile=opts.profile, estimator=Estimator(history=history))
    prefix = site.stack_prefix if opts.prefix is None else opts.prefix
    stack = f"{prefix}{pc.name}"
    rec = Recovery(
        plan=pc.name,
        stack=stack,
        site=site_name,
        run=run,
        profile=opts.profile or "full",
        schedule=schedule,
        started_at=started,
        incident_at=(opts.incident_at or datetime.now(UTC))
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
    )
    if opts.dry_run:
        return rec
    engine = Engine(site_name, site.docker_host)
    # helpers of this plan still on the target belong to an interrupted attempt
    engine.remove_helpers({"org.drplan.plan": pc.name})
    with TargetJournal(engine, stack, pc.name) as journal:
        runner = _Runner(pc, repo, engine, run, stack, services, opts, journal, on_bytes, site)
        entries = journal.read()
        resuming, done = TargetJournal.state(entries, run.run_id)
        if not resuming:
            runner.check_target()  # before anything is written
            journal.reset()
            journal.append(
                event="begin", run_id=run.run_id, plan=pc.name, stack=stack, profile=rec.profile
            )
        rec.resumed = resuming
        runner.resuming = resuming
        tasks = [
            Task(
                s.id,
                runner.task(s),
                after=s.after,
                critical=s.critical,
                service=s.service,
                kind=s.kind.value,
                timeout_s=s.timeout_s,
                done=s.id in done and s.kind not in ALWAYS_RERUN,
            )
            for s in schedule.steps.values()
        ]

        def event(e: Event) -> None:
            if e.kind == "finished" and e.outcome.status == "ok":
                journal.append(event="done", step=e.task.id)
            on_event(e)

        ex = Executor(tasks, workers=opts.workers, on_event=event)
        rec.outcomes = ex.execute()
        rec.verification = runner.verification
        rec.ok = ex.ok and not any(runner.verification.values())
        if rec.ok:
            journal.append(event="complete", run_id=run.run_id)
    rec.finished_at = mf.utc_now()
    crit = [
        o for sid, o in rec.outcomes.items() if schedule.steps[sid].critical and o.status == "ok"
    ]
    if rec.ok and crit:
        rec.measured_rto_s = round(max(o.t1 for o in crit), 3)
    elif rec.ok:
        rec.measured_rto_s = round(time.monotonic() - t0, 3)
    return rec


class _Runner:
    """Turns schedule steps into actions on the target engine."""

    def __init__(
        self,
        pc: PlanContext,
        repo: Repository,
        engine: Engine,
        run: mf.Manifest,
        stack: str,
        services: list[str],
        opts: RecoverOptions,
        journal: TargetJournal,
        on_bytes,
        site,
    ) -> None:
        self.pc, self.repo, self.engine, self.run = pc, repo, engine, run
        self.stack, self.services, self.opts = stack, services, opts
        self.journal, self.on_bytes, self.site = journal, on_bytes, site
        self.verification: dict[str, list[str]] = {}
        self.resuming = False
        self.labels = {"org.drplan.plan": pc.name, "org.drplan.run": run.run_id}

    # -- safety -------------------------------------------------------------------------

    def volumes(self) -> dict[str, tuple[str, str]]:
        """{volume name on the engine: (service, source)} of the data to restore."""
        out = {}
        for svc in self.services:
            for name, spec in self.pc.plan.services[svc].data.items():
                if spec.volume:
                    out[self.pc.volume_name(self.stack, spec.volume)] = (svc, name)
        return out

    def check_target(self) -> None:
        """Refuse to overwrite anything unless --force (checked before any write)."""
        self.check_ports()
        running = self.engine.swarm_state() == "active" and self.engine.services(self.stack)
        if running and not self.opts.force:
            raise InputError(
                f"stack {self.stack} already runs on site {self.engine.site}: remove it, "
                "choose another --prefix, or pass --force to replace its data",
                where=self.engine.where,
            )
        for volume, (svc, src) in self.volumes().items():
            if not self.opts.force and not vol.is_empty(self.engine, volume, self.labels):
                raise InputError(
                    f"volume {volume} (service {svc}, source {src}) is not empty on site "
                    f"{self.engine.site}; nothing was changed. Pass --force to overwrite it",
                    where=self.engine.where,
                )

    def check_ports(self) -> None:
        """Refuse a host port another stack or container of the site already publishes:
        Swarm would leave the service pending for ever ("host-mode port already in use").
        --force does not apply: the port belongs to someone else."""
        taken = self.engine.published_ports(exclude_stack=self.stack)
        for _, data in self._compose_documents():
            for svc, port in published_by_service(data):
                if port in taken:
                    raise InputError(
                        f"port {port} of service {svc} is already published on site "
                        f"{self.engine.site} by {taken[port]}; nothing was changed. Free it, "
                        f"or map it to another one in the plan (sites.{self.engine.site}"
                        f".services.{svc}.ports)",
                        where=self.engine.where,
                    )

    def _compose_documents(self) -> list[tuple[Path, dict]]:
        """The compose files as this recovery deploys them: the chosen services only, at
        zero replicas, with the site's port mapping (or no port at all for a copy)."""
        copy = bool(self.opts.prefix) and self.opts.prefix != self.site.stack_prefix
        return [
            (
                self.pc.dir / rel,
                zero_compose(
                    yaml.safe_load((self.pc.dir / rel).read_text()) or {},
                    self.services,
                    self.site,
                    drop_ports=copy,
                    isolate=self.opts.isolate,
                ),
            )
            for rel in self.pc.plan.stack.compose
        ]

    # -- steps --------------------------------------------------------------------------

    def task(self, step: Step) -> Callable[[], object]:
        kind = step.kind
        if kind == StepKind.PREPARE_SITE:
            return self.prepare_site
        if kind == StepKind.LOAD_IMAGES:
            return self.load_images
        if kind == StepKind.CREATE_VOLUMES:
            return self.create_volumes
        if kind == StepKind.RESTORE:
            return lambda: self.restore(step)
        if kind == StepKind.START:
            return lambda: self.start(step.service)
        if kind == StepKind.HEALTH:
            return lambda: self.health(step)
        return lambda: self.validate(step)

    def prepare_site(self) -> None:
        self.engine.ensure_swarm()

    def load_images(self) -> None:
        missing = [n for n, i in self.run.images.items() if self.engine.image_id(n) != i]
        if not missing:
            return
        if not self.run.images_snapshot:
            raise OperationError(
                f"the run holds no images and the site lacks {missing}", where="load-images"
            )
        self.engine.load_images(
            self._count(
                "load-images",
                self.repo.dump(
                    self.run.images_snapshot, "/images.tar", what="loading the run's images"
                ),
            )
        )
        still = [n for n, i in self.run.images.items() if self.engine.image_id(n) is None]
        if still:
            raise OperationError(
                f"images still missing after docker load: {still}", where="load-images"
            )

    def create_volumes(self) -> None:
        for volume, (svc, src) in self.volumes().items():
            if self.opts.force or self.resuming:
                self._wipe_if_needed(volume, svc, src)
            self.engine.create_volume(volume, labels={"com.docker.stack.namespace": self.stack})
        existing = {s.name for s in self.engine.services(self.stack)}
        if not all(f"{self.stack}_{svc}" in existing for svc in self.services):
            self.deploy_at_zero()

    def _wipe_if_needed(self, volume: str, svc: str, src: str) -> None:
        """With --force, or on resume for a restore not recorded done, start from empty."""
        if self.resuming:
            _, done = TargetJournal.state(self.journal.read(), self.run.run_id)
            if f"restore:{svc}/{src}" in done:
                return
        if not self.engine.volume_exists(volume):
            return
        spec = self.pc.plan.services[svc].data[src]
        if restores_into_server(spec):
            return  # the dump restore drops and recreates its databases
        if self.engine.services(self.stack):
            self.engine.scale(self.stack, svc, 0)
            self.engine.wait_stopped(self.stack, svc, time.monotonic() + 300)
        with vol.holding(self.engine, volume, labels=self.labels, read_only=False) as (c, _):
            self.engine.exec_run(
                c,
                ["find", vol.MOUNT, "-mindepth", "1", "-delete"],
                what=f"emptying volume {volume}",
            )

    def deploy_at_zero(self) -> None:
        """Define the stack (networks, secrets, configs, services) with nothing running."""
        files = []
        try:
            for src, data in self._compose_documents():
                out = src.parent / f".drplan-deploy-{self.stack}-{src.name}"
                out.write_text(yaml.safe_dump(data, sort_keys=False))
                files.append(str(out))
            self.engine.stack_deploy(self.stack, files)
        finally:
            for f in files:
                with contextlib.suppress(OSError):
                    Path(f).unlink()

    def _ctx(self, service: str, source: str) -> SourceContext:
        spec = self.pc.plan.services[service].data[source]
        tid = f"restore:{service}/{source}"
        return SourceContext(
            engine=self.engine,
            repo=self.repo,
            stack=self.stack,
            plan_name=self.pc.name,
            service=service,
            name=source,
            spec=spec,
            run_id=self.run.run_id,
            host=self.pc.host,
            plan_dir=self.pc.dir,
            force=self.opts.force,
            deadline=time.monotonic() + 6 * 3600,
            volume=self.pc.volume_name(self.stack, spec.volume) if spec.volume else None,
            mount_target=self.pc.mount_target(service, spec.volume),
            progress=lambda n: self.on_bytes(tid, n),
        )

    def restore(self, step: Step) -> None:
        record = self.run.source(step.service, step.source)
        if record is None:
            raise OperationError(
                f"run {self.run.run_id} has no backup of this source",
                where=f"service {step.service}, source {step.source}",
            )
        ctx = self._ctx(step.service, step.source)
        ctx.backup_stats = record.stats
        impl = engine_for(record.engine, record.method)
        impl.restore(ctx, record.snapshot, record.path, record.fingerprint)

    def start(self, service: str) -> None:
        replicas = 1
        override = self.site.services.get(service)
        compose_svc = self.pc.compose.services.get(service)
        if override and override.replicas is not None:
            replicas = override.replicas
        elif compose_svc and compose_svc.replicas is not None:
            replicas = max(compose_svc.replicas, 1)
        self.engine.scale(self.stack, service, replicas)

    def health(self, step: Step) -> None:
        deadline = time.monotonic() + step.timeout_s
        svc = self.pc.plan.services[step.service]
        self.engine.wait_running(self.stack, step.service, deadline, healthy=True)
        if svc.health is not None and svc.health.type != "docker":
            checks.run(self.engine, self.stack, step.service, svc.health, self.pc.plan, deadline)

    def validate(self, step: Step) -> None:
        deadline = time.monotonic() + step.timeout_s
        svc = self.pc.plan.services[step.service]
        for check in svc.checks:
            checks.run(self.engine, self.stack, step.service, check, self.pc.plan, deadline)
        diffs: list[str] = []
        for source in svc.data:
            record = self.run.source(step.service, source)
            if record is None:
                continue
            impl = engine_for(record.engine, record.method)
            actual = impl.fingerprint(self._ctx(step.service, source))
            diffs += [f"{source}: {d}" for d in impl.compare(record.fingerprint, actual)]
        self.verification[step.service] = diffs
        if diffs:
            raise OperationError(
                "recovered data differs from the backup: " + "; ".join(diffs[:5]),
                where=f"service {step.service}",
            )

    def _count(self, task_id: str, chunks):
        for chunk in chunks:
            self.on_bytes(task_id, len(chunk))
            yield chunk


def zero_compose(
    data: dict, services: list[str], site, *, drop_ports: bool, isolate: bool = False
) -> dict:
    """A compose document defining `services` at zero replicas (the others removed).

    `drop_ports`: a copy beside production (test, training, drill) must not take
    production's published ports. `isolate`: external networks and volumes become the
    copy's own, so it shares nothing with production.
    """
    services_doc = data.get("services") or {}
    for name in list(services_doc):
        if name not in services:
            del services_doc[name]
            continue
        spec = services_doc[name] or {}
        services_doc[name] = spec
        deploy = spec.setdefault("deploy", {}) or {}
        spec["deploy"] = deploy
        if deploy.get("mode") != "global":
            deploy["replicas"] = 0
        override = site.services.get(name)
        if drop_ports or isolate:
            spec.pop("ports", None)
        elif override and override.ports:
            spec["ports"] = _override_ports(spec.get("ports", []), override.ports)
        spec.pop("depends_on", None)
    if isolate:
        for key in ("networks", "volumes"):
            for name, spec in list((data.get(key) or {}).items()):
                if isinstance(spec, dict) and spec.get("external"):
                    data[key][name] = {"driver": "overlay"} if key == "networks" else {}
    return data


def _override_ports(ports: list, mapping: dict[int, int]) -> list:
    """Publish container port `target` on host port `mapping[target]` (the site's
    `ports: {target: published}`); the other entries are kept as written."""
    out = []
    for entry in ports:
        long = long_port(entry)
        if long is not None and isinstance(long.get("target"), int) and long["target"] in mapping:
            entry = {**long, "published": mapping[long["target"]]}
        out.append(entry)
    return out


def load_run_config(repo: Repository, run: mf.Manifest, into: Path) -> Path:
    """Unpack a run's plan and compose files (recovery with no local plan)."""
    import io
    import tarfile

    if not run.config_snapshot:
        raise OperationError(f"run {run.run_id} holds no plan", where=repo.where)
    data = repo.read_file(run.config_snapshot, "/config.tar", what="reading the run's plan")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / run.plan_file


def temp_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="drplan-run-")
