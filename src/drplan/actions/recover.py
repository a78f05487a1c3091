"""`drplan recover`: rebuild the stack of a backup run on a target site.

It executes the plan's recovery schedule (see drplan.schedule.steps) on the target engine:
prepare the site, load the images it lacks, define the stack with every service at zero
replicas (Swarm ignores depends_on: drplan enforces the order by scaling services up one
dependency level at a time), restore each data source, start services, wait on their
health, validate them and compare each source with the run's fingerprints.

Safety: it only ever talks to the one engine it was given, and every step that could
destroy something on it is gated by --force, checked before anything is written:

- data: a stack of that name already defined, or a non-empty target volume, is refused
  (with --force, volumes are emptied and databases dropped before their restore);
- images: `docker load` moves a `name:tag` to the run's image id; when the tag already
  points at another id that a container or a service of another stack uses, the load is
  refused (with --force, those users run the backup's image on their next start);
- services: a profile's deploy (`docker stack deploy --prune`) would remove the stack's
  services outside the profile; while one of them runs, the recovery is refused; idle
  ones are kept (deployed without --prune). With --force, they are pruned as before.

A journal on the target makes a re-run resume; it authorises its wipes only for the very
same attempt (run, plan, stack, site, profile: see drplan.actions.resume), any other is
a fresh recovery with the full check.

A plan read back from the repository is not trusted (drplan.actions.context): unless the
operator passes --trust-stored-plan, a recovery that would run its `{command:}` secrets,
host-side checks or hooks is refused before it starts, and a dry run only lists them.

Compose copies (the zero-replica documents handed to `docker stack deploy`) are written
0600 into a private temporary directory, never beside the plan: the plan's folder may be
shared, and the copies name every secret and config of the stack.
"""

from __future__ import annotations

import dataclasses
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from drplan import labels as lbl
from drplan.actions import hooks as hk
from drplan.actions import nodes, service_checks, stored_binds
from drplan.actions.context import PlanContext, open_engine
from drplan.actions.resume import ResumeJournal, ResumeKey
from drplan.errors import InputError, OperationError
from drplan.executor import Event, Executor, Task
from drplan.plan import model as m
from drplan.plan.compose import map_bind_sources, published_by_service, zero_compose
from drplan.plan.graph import profile_services
from drplan.plan.stack_objects import missing, missing_message, stack_objects
from drplan.platform.docker import STACK_LABEL, DockerEngine
from drplan.reports.recovery import Recovery
from drplan.schedule import Estimator, build_schedule
from drplan.schedule.steps import Step, StepKind, restores_into_server
from drplan.sources import engine_for, registry
from drplan.sources import volume as vol
from drplan.sources.base import READY_TIMEOUT_S, SourceContext
from drplan.store import layout, records
from drplan.store import manifest as mf
from drplan.store.restic import Repository

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
    # --trust-stored-plan: a plan read back from the repository may run its commands
    # (commands.recover loads it trusted); a local plan is always trusted
    trust_stored_plan: bool = False
    # --service: these services (and what they depend on) only, e.g. after a node loss
    services: list[str] | None = None
    # `recover --repo`: the plan and compose files were unpacked into a temporary folder,
    # so relative bind sources must be mapped by the site's `paths` (stored_binds); the
    # plan's folder on the host that backed up, when the run recorded it
    from_repository: bool = False
    primary_plan_dir: str | None = None


def _only_services(pc: PlanContext, opts: RecoverOptions) -> tuple[PlanContext, RecoverOptions]:
    """`--service A --service B` is a profile made on the spot: those services and what
    they depend on, recovered by the same schedule as a plan's own profiles."""
    if not opts.services:
        return pc, opts
    unknown = [s for s in opts.services if s not in pc.plan.services]
    if unknown:
        raise InputError(
            f"unknown service(s) {', '.join(unknown)} (the plan has: "
            f"{', '.join(pc.plan.services)})",
            where=str(pc.path),
        )
    if opts.profile not in (None, "full"):
        raise InputError("--service and --profile exclude each other", where=str(pc.path))
    name = "service:" + ",".join(opts.services)
    chosen = m.Profile(services=list(opts.services), description="chosen with --service")
    plan = pc.plan.model_copy(update={"profiles": {**pc.plan.profiles, name: chosen}})
    return dataclasses.replace(pc, plan=plan), dataclasses.replace(opts, profile=name)


def recover(
    pc: PlanContext,
    repo: Repository,
    opts: RecoverOptions,
    on_event: Callable[[Event], None] = lambda e: None,
    on_bytes: Callable[[str, int], None] = lambda t, n: None,
) -> Recovery:
    t0 = time.monotonic()
    started = mf.utc_now()
    pc, opts = _only_services(pc, opts)
    site_name, site = pc.site(opts.site, role="recovery")
    repo.open()
    if opts.profile not in (None, "full") and opts.profile not in pc.plan.profiles:
        raise InputError(
            f"unknown profile {opts.profile!r} (the plan has: full, {', '.join(pc.plan.profiles)})",
            where=str(pc.path),
        )
    services, _ = profile_services(pc.plan, opts.profile)
    # compose files unpacked from the repository: relative binds mapped, or refused
    stored = (
        stored_binds.relative_binds(pc, services, opts.primary_plan_dir)
        if opts.from_repository
        else []
    )
    stored_binds.check(stored, site_name, site)
    # a stored plan runs nothing of its own on this host unless the operator trusts it
    not_run = [] if pc.trusted else pc.host_actions(services)
    if not_run and not opts.dry_run:
        raise InputError(pc.untrusted_refusal(not_run), where=str(pc.path))
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
    history.update(records.step_history(repo, pc.name))
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
        history=history,
        not_run=not_run,
    )
    if opts.dry_run:
        return rec
    engine = open_engine(site_name, site)
    # helpers of this plan still on the target belong to an interrupted attempt
    engine.remove_helpers({lbl.PLAN: pc.name})
    key = ResumeKey(
        run_id=run.run_id, plan=pc.name, stack=stack, site=site_name, profile=rec.profile
    )
    # where each service runs on a multi-node site, or a refusal: before anything is
    # written there, the resume journal included
    targets = nodes.recovery_targets(engine, pc.plan, pc.compose, site_name, site, services, stack)
    with ResumeJournal(engine, stack, pc.name) as journal:
        runner = _Runner(pc, repo, engine, run, stack, services, opts, journal, on_bytes, site)
        runner.targets = targets
        runner.stored_binds = stored
        rec.placement = {svc: node.hostname for svc, node in targets.nodes.items()}
        resuming, done = ResumeJournal.state(journal.read(), key)
        runner.resuming, runner.done = resuming, done
        if resuming:
            runner.check_resume()  # the gates that are not this attempt's own business
        else:
            runner.check_target()  # before anything is written
            journal.reset()
            journal.begin(key)
        rec.resumed = resuming
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
        rec.hooks = sorted(runner.hooks.records, key=lambda r: r.started_at)
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
        engine: DockerEngine,
        run: mf.Manifest,
        stack: str,
        services: list[str],
        opts: RecoverOptions,
        journal: ResumeJournal,
        on_bytes,
        site,
    ) -> None:
        self.pc, self.repo, self.engine, self.run = pc, repo, engine, run
        self.stack, self.services, self.opts = stack, services, opts
        self.journal, self.on_bytes, self.site = journal, on_bytes, site
        self.verification: dict[str, list[str]] = {}
        self.resuming = False
        # restores the resumed attempt's journal recorded as done (their data is kept)
        self.done: set[str] = set()
        self.labels = lbl.owned_by(pc.name, run.run_id)
        # the node each service with node-local data runs on (placed before any write)
        self.targets = nodes.Targets()
        # relative bind mounts of compose files unpacked from the repository (mapped)
        self.stored_binds: list[stored_binds.RelativeBind] = []
        self.hooks = hk.HookRunner(
            pc, engine, stack, engine.site, run.run_id, withheld=hk.repository_secrets(repo)
        )

    # -- safety -------------------------------------------------------------------------

    def on_node_of(self, service: str) -> DockerEngine:
        """The engine of the node `service` will run on (the site's, when Swarm has no
        choice to make)."""
        node = self.targets.nodes.get(service)
        return self.engine.on(node.id) if node else self.engine

    def volumes(self) -> dict[str, tuple[str, str]]:
        """{volume name on the engine: (service, source)} of the data to restore."""
        out = {}
        for svc in self.services:
            for name, spec in self.pc.plan.services[svc].data.items():
                if spec.volume:
                    out[self.pc.volume_name(self.stack, spec.volume)] = (svc, name)
        return out

    def binds(self) -> dict[str, tuple[str, str]]:
        """{host directory on this site: (service, source)} of the `bind` sources to
        restore (the site's `paths` mapping applied)."""
        out = {}
        for svc in self.services:
            for name, spec in self.pc.plan.services[svc].data.items():
                if spec.bind:
                    out[self.site.host_dir(spec.bind)] = (svc, name)
        return out

    def check_target(self) -> None:
        """Refuse to overwrite anything unless --force (checked before any write): the
        stack already defined, non-empty volumes, tags other stacks use, running services
        a profile's deploy would prune. A port someone else holds is refused even then."""
        self.check_ports()
        self.check_objects()
        running = self.engine.swarm_state() == "active" and self.engine.services(self.stack)
        if running and self.opts.services:
            # some services of a running stack (a lost node's): refused only if one of
            # them still runs; the data checks below still guard every volume
            running = [s for s in self.services if self.engine.containers(self.stack, s)]
        if running and not self.opts.force:
            raise InputError(
                f"stack {self.stack} already runs on site {self.engine.site}: remove it, "
                "choose another --prefix, or pass --force to replace its data",
                where=self.engine.where,
            )
        for volume, (svc, src) in self.volumes().items():
            node = self.on_node_of(svc)
            if not self.opts.force and not vol.is_empty(node, volume, self.labels):
                raise InputError(
                    f"volume {volume} (service {svc}, source {src}) is not empty on "
                    f"{node.where}; nothing was changed. Pass --force to overwrite it",
                    where=node.where,
                )
        for path, (svc, src) in self.binds().items():
            if not self.opts.force and not vol.is_empty_dir(
                self.on_node_of(svc), path, self.labels
            ):
                raise InputError(
                    f"host directory {path} (service {svc}, source {src}) is not empty on "
                    f"site {self.engine.site}; nothing was changed. Map it elsewhere in the "
                    "site's `paths`, or pass --force to overwrite it",
                    where=self.engine.where,
                )
        self.check_images()
        self.check_prune()

    def check_resume(self) -> None:
        """The checks a resumed attempt still needs: its stack and its half-filled volumes
        are its own (its first attempt was checked, or forced), but ports, image tags and
        services outside its profile may have changed hands since."""
        self.check_ports()
        self.check_objects()
        self.check_images()
        self.check_prune()

    def check_objects(self) -> None:
        """Refuse, before any write, a recovery whose external secrets or configs the
        target lacks: `docker stack deploy` would fail half-way and never create them."""
        needed = stack_objects(self.pc.compose, self.services)
        if not any(o.must_exist for o in needed):
            return
        absent = missing(needed, self.engine.secret_names(), self.engine.config_names())
        if absent:
            raise InputError(missing_message(absent, self.engine.site), where=self.engine.where)

    def check_images(self) -> None:
        """Refuse, without --force, a `docker load` that would move a tag other stacks run.

        `docker load` retags each `name:tag` of the archive to the run's image id. That
        is harmless when the tag is absent or already points at that id, or when nothing
        outside this stack uses the id it points at now; otherwise the other stack's
        services (and containers) would silently run another image on their next start.
        """
        if self.opts.force:
            return
        for name, want in self.run.images.items():
            have = self.engine.image_id(name)
            if have is None or have == want:
                continue
            users = self._image_users(name, have)
            if users:
                raise InputError(
                    f"image {name} is {have[:19]} on site {self.engine.site}, the run's is "
                    f"{want[:19]}: loading the run's images would retag it under "
                    f"{', '.join(users[:10])}; nothing was changed. Pass --force to retag "
                    "it anyway (they would run the run's image on their next start), or "
                    "recover on another engine",
                    where=self.engine.where,
                )

    def _image_users(self, name: str, image_id: str) -> list[str]:
        """Containers (any state) made from `image_id`, and services whose image is
        `name` or resolves to `image_id`, outside this stack."""
        users = []
        for c in self.engine.all_containers():
            stack = c.labels.get(STACK_LABEL)
            if c.image_id != image_id or stack == self.stack:
                continue
            users.append(f"container {c.name}" + (f" (stack {stack})" if stack else ""))
        if self.engine.swarm_state() != "active":
            return users
        resolved: dict[str, str | None] = {}
        for svc in self.engine.swarm_services():
            ref = svc.image
            if svc.stack == self.stack or not ref:
                continue
            if ref not in resolved:
                resolved[ref] = self.engine.image_id(ref)
            if _normal_ref(ref) == _normal_ref(name) or resolved[ref] == image_id:
                users.append(f"service {svc.name or svc.id}")
        return users

    def _outside_services(self) -> list[tuple[str, bool]]:
        """(name, running) of the stack's services on the target that this recovery does
        not deploy (outside its profile): `docker stack deploy --prune` removes them."""
        if self.engine.swarm_state() != "active":
            return []
        wanted = {f"{self.stack}_{svc}" for svc in self.services}
        out = []
        for svc in self.engine.services(self.stack):
            if svc.name in wanted:
                continue
            replicas = svc.replicas if svc.replicas is not None else 1  # global: runs
            short = svc.name.removeprefix(f"{self.stack}_")
            running = replicas > 0 or bool(self.engine.containers(self.stack, short))
            out.append((svc.name, running))
        return out

    def check_prune(self) -> None:
        """Refuse, without --force, a deploy that would prune running services.

        A profile deploys only its services, and `docker stack deploy --prune` removes the
        stack's other services. Without --force, a running one (replicas above zero, or a
        container still up) makes the recovery stop here, before anything is written;
        idle ones (zero replicas, no container) are kept: the deploy then skips --prune
        (see deploy_at_zero). With --force, the deploy prunes them, as the operator said.
        A `--service` recovery never prunes: the rest of the stack is left as it runs.
        """
        if self.opts.force or self.opts.services:
            return
        running = [name for name, up in self._outside_services() if up]
        if running:
            raise InputError(
                f"stack {self.stack} on site {self.engine.site} runs services outside "
                f"profile {self.opts.profile or 'full'} ({', '.join(running)}): deploying "
                "the profile would remove them (docker stack deploy --prune); nothing was "
                "changed. Pass --force to remove them, or scale them to 0 first",
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
        if kind in (StepKind.BEFORE_RESTORE, StepKind.AFTER_RESTORE):
            phase = "before_restore" if kind == StepKind.BEFORE_RESTORE else "after_restore"
            return lambda: self.hooks.run_phase(step.service or "", phase, step=step.id)
        return lambda: self.validate(step)

    def prepare_site(self) -> None:
        self.engine.ensure_swarm()
        self.check_objects()  # again: one may have been removed since the check

    def load_images(self) -> None:
        missing = [n for n, i in self.run.images.items() if self.engine.image_id(n) != i]
        if missing:
            self._load_images(missing)
        # Swarm may place a task on any node of the site
        self.engine.distribute_images(list(self.run.images))

    def _load_images(self, missing: list[str]) -> None:
        self.check_images()  # again: the engine may have changed since the check
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

    def move_existing(self) -> None:
        """A service already defined on the site but placed elsewhere than its chosen node
        (its node was lost) is stopped, then pinned there, before its data is restored:
        only that service changes, the rest of the stack keeps running."""
        if not self.targets.pins or self.engine.swarm_state() != "active":
            return
        existing = {s.name for s in self.engine.services(self.stack)}
        for svc, pins in self.targets.pins.items():
            if f"{self.stack}_{svc}" not in existing:
                continue
            if sorted(self.engine.placement(self.stack, svc)) == sorted(pins):
                continue
            self.engine.scale(self.stack, svc, 0)
            self.engine.wait_stopped(self.stack, svc, time.monotonic() + 300)
            self.engine.set_placement(self.stack, svc, pins)

    def create_volumes(self) -> None:
        """Create the volumes, emptied first where --force or this resumed attempt says so
        (never on a journal that is not this attempt's: see recover())."""
        self.move_existing()
        for volume, (svc, src) in self.volumes().items():
            if self.opts.force or self.resuming:
                self._wipe_if_needed(volume, svc, src)
            self.on_node_of(svc).create_volume(
                volume, labels={"com.docker.stack.namespace": self.stack}, **self._storage(svc, src)
            )
        for path, (svc, src) in self.binds().items():
            # the engine refuses to start a task binding a missing directory
            if (self.opts.force or self.resuming) and f"restore:{svc}/{src}" not in self.done:
                self._empty_dir(path, svc)
            vol.ensure_dir(self.on_node_of(svc), path, self.labels)
        existing = {s.name for s in self.engine.services(self.stack)}
        if not all(f"{self.stack}_{svc}" in existing for svc in self.services):
            self.deploy_at_zero()

    def _storage(self, svc: str, src: str) -> dict:
        """The volume's driver and options on this site: the site's `volume_options`, else
        the compose file's (shared storage stays shared storage)."""
        key = self.pc.plan.services[svc].data[src].volume
        spec = self.pc.compose.volume_specs.get(key or "")
        if spec is None or spec.external:
            return {}  # an external volume is not the stack's: created as before, plain
        opts = self.site.volume_options.get(key or "", dict(spec.driver_opts))
        return {"driver": spec.driver, "driver_opts": dict(opts)}

    def _wipe_if_needed(self, volume: str, svc: str, src: str) -> None:
        """With --force, or on resume for a restore not recorded done, start from empty."""
        if self.resuming and f"restore:{svc}/{src}" in self.done:
            return
        node = self.on_node_of(svc)
        if not node.volume_exists(volume):
            return
        spec = self.pc.plan.services[svc].data[src]
        if restores_into_server(spec):
            return  # the dump restore drops and recreates its databases
        if self.engine.services(self.stack):
            self.engine.scale(self.stack, svc, 0)
            self.engine.wait_stopped(self.stack, svc, time.monotonic() + 300)
        with vol.holding(node, volume, labels=self.labels, read_only=False) as (c, _):
            node.exec_run(
                c,
                ["find", vol.MOUNT, "-mindepth", "1", "-delete"],
                what=f"emptying volume {volume}",
            )

    def _empty_dir(self, path: str, svc: str) -> None:
        """With --force, or on resume for a restore not recorded done, start from empty."""
        node = self.on_node_of(svc)
        if not vol.dir_exists(node, path, self.labels):
            return
        if self.engine.services(self.stack):
            self.engine.scale(self.stack, svc, 0)
            self.engine.wait_stopped(self.stack, svc, time.monotonic() + 300)
        with vol.holding_dir(node, path, labels=self.labels, read_only=False) as (c, _):
            node.exec_run(
                c, ["find", vol.MOUNT, "-mindepth", "1", "-delete"], what=f"emptying {path}"
            )

    def deploy_at_zero(self) -> None:
        """Define the stack (networks, secrets, configs, services) with nothing running.

        The documents go to a private temporary directory (0700, files 0600), never beside
        the plan, with their relative paths made absolute. `--prune` is left out when,
        without --force, the stack holds services this deploy does not define: those are
        idle ones (check_prune refused running ones), kept as they are.
        """
        prune = not self.opts.services and (self.opts.force or not self._outside_services())
        if not prune:
            self.check_prune()  # one may have started since the check
        tmp = tempfile.mkdtemp(prefix="drplan-deploy-")
        try:
            files = []
            listed = self.pc.plan.stack.compose
            for i, (rel, (src, data)) in enumerate(
                zip(listed, self._compose_documents(), strict=True)
            ):
                out = Path(tmp) / f"{i}-{src.name}"
                data = stored_binds.apply(data, rel, self.stored_binds, self.site)
                doc = map_bind_sources(
                    absolute_paths(data, src.parent), self.site.paths, self.pc.compose.variables
                )
                doc = nodes.pinned(doc, self.targets.pins)
                _write_private(out, yaml.safe_dump(doc, sort_keys=False))
                files.append(str(out))
            # a stored plan's compose files interpolate nothing of the operator's
            self.engine.stack_deploy(
                self.stack,
                files,
                prune=prune,
                inherit_env=self.pc.trusted,
                variables=self.pc.compose.dotenv_variables(),
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _ctx(self, service: str, source: str) -> SourceContext:
        spec = self.pc.plan.services[service].data[source]
        tid = f"restore:{service}/{source}"
        return SourceContext(
            engine=self.on_node_of(service),
            repo=self.repo,
            stack=self.stack,
            plan_name=self.pc.name,
            service=service,
            name=source,
            spec=spec,
            run_id=self.run.run_id,
            host=self.pc.host,
            plan_dir=self.pc.dir,
            dotenv=self.pc.compose.dotenv_variables(),
            force=self.opts.force,
            deadline=time.monotonic() + 6 * 3600,
            volume=self.pc.volume_name(self.stack, spec.volume) if spec.volume else None,
            bind=self.site.host_dir(spec.bind) if spec.bind else None,
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
        if restores_into_server(ctx.spec):
            self._wait_ready(ctx)
        impl.restore(ctx, record.snapshot, record.path, record.fingerprint)

    def _wait_ready(self, ctx: SourceContext) -> None:
        """The server answers by its engine's own tool, whatever the plan's health check
        (even none): a running task is not a ready server (initdb on an empty volume
        restarts it; Redis loads its RDB before it answers)."""
        if ctx.spec.method == "dump":
            registry.engine(ctx.spec.engine).wait_ready(ctx, time.monotonic() + READY_TIMEOUT_S)

    def start(self, service: str) -> None:
        replicas = 1
        override = self.site.services.get(service)
        compose_svc = self.pc.compose.services.get(service)
        if override and override.replicas is not None:
            replicas = override.replicas
        elif compose_svc and compose_svc.replicas is not None:
            replicas = max(compose_svc.replicas, 1)
        self.engine.scale(self.stack, service, replicas)

    def _allowed(self, check, where: str) -> None:
        """A host-side check of an untrusted plan never runs (recover() refused it up
        front; this holds should a new path reach a check)."""
        if not self.pc.trusted and isinstance(check, m.CommandCheck) and check.where == "host":
            raise InputError(
                "a host-side check of the plan read from the repository was not run; "
                "drplan runs a stored plan's commands only if you pass --trust-stored-plan",
                where=where,
            )

    def health(self, step: Step) -> None:
        deadline = time.monotonic() + step.timeout_s
        svc = self.pc.plan.services[step.service]
        self.engine.wait_running(self.stack, step.service, deadline, healthy=True)
        if svc.health is not None and svc.health.type != "docker":
            self._allowed(svc.health, f"services.{step.service}.health")
            service_checks.run(
                self.engine,
                self.stack,
                step.service,
                svc.health,
                self.pc.plan,
                deadline,
                resolve=self.pc.resolve,
            )

    def validate(self, step: Step) -> None:
        deadline = time.monotonic() + step.timeout_s
        svc = self.pc.plan.services[step.service]
        for source in svc.data:  # checks and fingerprints read the server itself
            if self.run.source(step.service, source) is not None:
                self._wait_ready(self._ctx(step.service, source))
        for i, check in enumerate(svc.checks):
            self._allowed(check, f"services.{step.service}.checks[{i}]")
            service_checks.run(
                self.engine,
                self.stack,
                step.service,
                check,
                self.pc.plan,
                deadline,
                resolve=self.pc.resolve,
            )
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


def load_run_config(repo: Repository, run: mf.Manifest, into: Path) -> Path:
    """Unpack a run's plan and compose files (recovery with no local plan) into `into`,
    which must be private (temp_dir()); return the plan file's path.

    The config tar comes from the repository, which whoever wrote to it controls: only
    regular files and directories with relative paths that stay inside `into` are
    accepted (no absolute path, no `..`, no link, device or fifo), extracted with
    tarfile's "data" filter, files 0600 and directories 0700.
    """
    if not run.config_snapshot:
        raise OperationError(f"run {run.run_id} holds no plan", where=repo.where)
    data = repo.read_file(
        run.config_snapshot, "/" + layout.CONFIG_FILE, what="reading the run's plan"
    )
    where = f"run {run.run_id}: config.tar"
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, where)
            tar.extractall(into, members=members, filter="data")
    except tarfile.TarError as exc:
        raise InputError(f"the run's plan cannot be unpacked: {exc}", where=where) from exc
    for root, dirs, names in os.walk(into):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for n in names:
            os.chmod(os.path.join(root, n), 0o600)
    plan = posixpath.normpath(run.plan_file)
    if (
        plan.startswith(("/", "../"))
        or plan == ".."
        or not (into / plan).is_file()
        or (into / plan).is_symlink()
    ):
        raise InputError(f"the run's plan file {run.plan_file!r} is not in it", where=where)
    return into / plan


def _check_member(member: tarfile.TarInfo, where: str) -> None:
    """Refuse a tar member that is not a plain file or directory inside the target."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
        raise InputError(f"the run's plan holds a path outside its folder: {name!r}", where=where)
    if not (member.isreg() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise InputError(
            f"the run's plan holds a {kind} ({name!r}): only files and folders are accepted",
            where=where,
        )


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a new file readable by its owner only (created 0600, never widened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def absolute_paths(doc: dict, base: Path) -> dict:
    """The compose document with its host paths made absolute against `base` (the
    original file's folder), so it deploys the same from elsewhere: secrets and configs
    `file:`, env_file, and the source of bind mounts."""

    def full(path: str) -> str:
        if path.startswith(("/", "~")) or "$" in path:
            return path
        return str((base / path).resolve())

    for key in ("configs", "secrets"):
        for spec in (doc.get(key) or {}).values():
            if isinstance(spec, dict) and isinstance(spec.get("file"), str):
                spec["file"] = full(spec["file"])
    for svc in (doc.get("services") or {}).values():
        if not isinstance(svc, dict):
            continue
        env_file = svc.get("env_file")
        if isinstance(env_file, str):
            svc["env_file"] = full(env_file)
        elif isinstance(env_file, list):
            svc["env_file"] = [
                full(f)
                if isinstance(f, str)
                else {**f, "path": full(f["path"])}
                if isinstance(f, dict) and isinstance(f.get("path"), str)
                else f
                for f in env_file
            ]
        volumes = svc.get("volumes")
        if isinstance(volumes, list):
            svc["volumes"] = [_absolute_mount(v, full) for v in volumes]
    return doc


def _absolute_mount(mount, full):
    """A bind mount with a relative source (`./x:/y`, or long syntax) made absolute."""
    if isinstance(mount, str):
        source, sep, rest = mount.partition(":")
        if sep and source.startswith("."):
            return f"{full(source)}:{rest}"
        return mount
    if (
        isinstance(mount, dict)
        and mount.get("type") == "bind"
        and isinstance(mount.get("source"), str)
    ):
        return {**mount, "source": full(mount["source"])}
    return mount


def _normal_ref(ref: str) -> str:
    """An image reference as Docker resolves it: `postgres` → `postgres:latest`,
    `docker.io/library/postgres:16` → `postgres:16` (digest dropped)."""
    ref = ref.split("@", 1)[0]
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    if ref.startswith("library/") and ref.count("/") == 1:
        ref = ref[len("library/") :]
    return ref


def temp_dir() -> tempfile.TemporaryDirectory:
    """A private (0700) temporary directory, e.g. for the run's unpacked plan."""
    return tempfile.TemporaryDirectory(prefix="drplan-run-")
