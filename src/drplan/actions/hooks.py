"""The plan's hooks: commands run around a service's backup and restore.

A hook runs in a running container of its service (``where: container``, an exec, like
a `type: command` check) or on this host (``where: host``, through drplan.process, in
the plan's folder). Either way it gets its time limit, and at that limit it is killed
with everything it started: on the host its process group; in a container every process
that carries its token (``DRPLAN_HOOK_ID``) in its environment, found by a second exec.
Its output (stdout and stderr together) is read as it comes and only its end is kept;
a record of each execution (drplan.store.manifest.HookRecord) goes into the run's
manifest or the recovery's report, the output only when the hook failed.

Hooks get no secret of drplan's: a container hook gets the container's own environment
plus ``DRPLAN_HOOK``, ``DRPLAN_SERVICE``, ``DRPLAN_STACK``, ``DRPLAN_SITE`` and
``DRPLAN_RUN``; a host hook gets this process's environment without the variables the
plan reads secrets from, ``DRPLAN_REPO_PASSWORD``, ``RESTIC_*``, and any variable whose
value holds the repository's password or one of its environment's values. A plan read
back from a repository (``trusted=False``) never runs a host hook here (the recovery
refuses it up front, see drplan.actions.context; this is the second lock).

When they run (docs/design/hooks.md):

* ``before_backup`` of a service, before the backup of its data and of the data of the
  services it depends on (transitively) starts: an application's maintenance mode covers
  its database's dump. ``after_backup`` once all of them have ended, whether they
  succeeded or not. A failing ``before_backup`` hook stops the next ones, fails the
  backups it wraps (the run is incomplete) and its service's ``after_backup`` hooks run
  at once; a failing ``after_backup`` hook is a failure of the run, whose data stays
  complete (see :class:`BackupHooks`).
* ``before_restore`` and ``after_restore`` are recovery steps of their own in the
  schedule (drplan.schedule.steps); a failing hook fails its step.

``before_*`` hooks run in order and stop at the first failure (the next ones may rely on
it); ``after_*`` hooks are each tried whatever fails, so the service is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drplan import process
from drplan.errors import DrplanError, InputError, OperationError
from drplan.executor import Event, Outcome, Task, now_iso
from drplan.plan import model as m
from drplan.plan.graph import DependencyGraph
from drplan.plan.loaded import LoadedPlan
from drplan.schedule.steps import HOOK_CONTAINER_WAIT_S
from drplan.store.manifest import HookRecord

if TYPE_CHECKING:
    from drplan.platform.docker import DockerEngine

# how long a container hook waits for a running container of its service
CONTAINER_WAIT_S = HOOK_CONTAINER_WAIT_S
# after the kill at a timeout: how long its output may take to end
KILL_GRACE_S = 30.0
# bytes of output kept while a hook runs (its end), and characters of it reported
KEEP_BYTES = 64 * 1024
REPORT_CHARS = 600
LABEL_CHARS = 200

# `sh -c WRAPPER MARKER ARGV...`: stderr into stdout, then the hook, then its status on a
# last line of its own (the exec's own status is then the wrapper's, 0)
WRAPPER = 'exec 2>&1; "$@"; rc=$?; printf \'\\n%s%s\\n\' "$0" "$rc"'
# `sh -c KILLER sh TOKEN`: SIGKILL every process whose environment holds the hook's token
KILLER = r"""
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  if grep -q "DRPLAN_HOOK_ID=$1" "$p/environ" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
done
exit 0
"""
# `sh -c IN_DIR sh DIR ARGV...`: a host hook runs in the plan's folder
IN_DIR = 'cd -- "$1" || exit 125; shift; exec "$@"'


def argv(hook: m.Hook) -> list[str]:
    """The hook's command line: its argv, or its string run by `sh -c`."""
    return list(hook.run) if isinstance(hook.run, list) else ["sh", "-c", hook.run]


def label(hook: m.Hook) -> str:
    """The hook's command on one bounded line (for records, messages and progress)."""
    text = hook.run if isinstance(hook.run, str) else shlex.join(hook.run)
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 3] + "..."


def location(service: str, phase: str, index: int) -> str:
    """Where the hook is written in the plan."""
    return f"services.{service}.hooks.{phase}[{index}]"


def one_line(data: bytes | str, limit: int = REPORT_CHARS) -> str:
    """The end of an output on one line without control characters (a record's text)."""
    text = process.tail(data, limit)
    return "".join(c if c.isprintable() else " " for c in text)


@dataclass
class HookRunner:
    """Runs the plan's hooks on one site's engine (or this host) for one stack and run,
    and records each execution (thread-safe: steps run in parallel)."""

    plan: LoadedPlan
    engine: DockerEngine
    stack: str
    site: str
    run_id: str
    # values no hook may receive in its environment (the repository's password, its env)
    withheld: tuple[str, ...] = ()
    records: list[HookRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # container hooks running now: token -> container, killed on an interrupt
    _running: dict[str, object] = field(default_factory=dict, repr=False)

    def hooks(self, service: str, phase: str) -> list[m.Hook]:
        return list(getattr(self.plan.plan.services[service].hooks, phase))

    def run_phase(self, service: str, phase: str, *, step: str) -> list[HookRecord]:
        """Run the phase's hooks of `service` in order (a `before_*` phase stops at its
        first failure, an `after_*` one tries each); raise OperationError naming every
        failed hook, its service and `step`."""
        done: list[HookRecord] = []
        failed: list[str] = []
        for i, hook in enumerate(self.hooks(service, phase)):
            rec = self.run_one(service, phase, i, hook)
            done.append(rec)
            if rec.status != "ok":
                failed.append(failure(rec, hook.timeout))
                if phase.startswith("before"):
                    break
        if failed:
            raise OperationError("; ".join(failed), where=f"step {step}, service {service}")
        return done

    def run_one(self, service: str, phase: str, index: int, hook: m.Hook) -> HookRecord:
        where = location(service, phase, index)
        if hook.where == "host" and not self.plan.trusted:
            raise InputError(
                "a host-side hook of the plan read from the repository was not run; drplan "
                "runs a stored plan's commands only if you pass --trust-stored-plan",
                where=where,
            )
        env = {
            "DRPLAN_HOOK": phase,
            "DRPLAN_SERVICE": service,
            "DRPLAN_STACK": self.stack,
            "DRPLAN_SITE": self.site,
            "DRPLAN_RUN": self.run_id,
        }
        started, t0 = now_iso(), time.monotonic()
        try:
            if hook.where == "host":
                code, out, timed_out = self._on_host(hook, env)
            else:
                code, out, timed_out = self._in_container(service, hook, env, where)
        except OperationError as exc:  # no container to run it in, the engine failed
            code, out, timed_out = None, str(exc).encode(), False
        status = "timeout" if timed_out else "ok" if code == 0 else "failed"
        rec = HookRecord(
            service=service,
            phase=phase,  # type: ignore[arg-type]
            index=index,
            where=hook.where,
            command=one_line(label(hook), LABEL_CHARS),
            status=status,  # type: ignore[arg-type]
            exit_code=code,
            seconds=round(time.monotonic() - t0, 3),
            started_at=started,
            finished_at=now_iso(),
            output="" if status == "ok" else one_line(out),
        )
        with self._lock:
            self.records.append(rec)
        return rec

    # -- on the host ------------------------------------------------------------------

    def host_environment(self, extra: dict[str, str]) -> dict[str, str]:
        """This process's environment without what may hold a secret of drplan's."""
        names = secret_env_names(self.plan.plan)
        return {
            k: v
            for k, v in os.environ.items()
            if k not in names
            and not k.startswith("RESTIC_")
            and not any(s and s in v for s in self.withheld)
        } | extra

    def _on_host(self, hook: m.Hook, env: dict[str, str]):
        done = process.capture(
            ["sh", "-c", IN_DIR, "sh", str(self.plan.dir), *argv(hook)],
            timeout=hook.timeout,
            env=self.host_environment(env),
            inherit_env=False,
        )
        out = done.stdout[-KEEP_BYTES:] + done.stderr[-KEEP_BYTES:]
        if done.why == "timeout":
            return None, out, True  # its process group was killed
        if done.code is None:
            return None, out + (done.failure() or "").encode(), False
        return done.code, out, False

    # -- in a container -----------------------------------------------------------------

    def _container(self, service: str):
        if self.engine.service(self.stack, service) is None:
            raise OperationError(
                f"service {self.stack}_{service} does not exist on {self.engine.where}: no "
                "container to run the hook in"
            )
        if self.engine.service_replicas(self.stack, service) == 0:
            raise OperationError(
                f"service {self.stack}_{service} runs no container (0 replicas) at this "
                "point: no container to run the hook in (use where: host)"
            )
        return self.engine.wait_running(
            self.stack, service, time.monotonic() + CONTAINER_WAIT_S, healthy=False
        )

    def _in_container(self, service: str, hook: m.Hook, env: dict[str, str], where: str):
        container = self._container(service)
        token = secrets.token_hex(8)
        marker = f"drplan-hook-status-{token}:".encode()
        cmd = ["sh", "-c", WRAPPER, marker.decode(), *argv(hook)]
        kept = bytearray()
        errors: list[BaseException] = []
        ended = threading.Event()

        def read() -> None:
            try:
                for chunk in self.engine.exec_out(
                    container, cmd, what=where, env={**env, "DRPLAN_HOOK_ID": token}
                ):
                    kept.extend(chunk)
                    del kept[:-KEEP_BYTES]
            except BaseException as exc:  # killed at its timeout, or the engine failed
                errors.append(exc)
            finally:
                ended.set()

        with self._lock:
            self._running[token] = container
        try:
            threading.Thread(target=read, daemon=True, name=f"hook {where}").start()
            timed_out = not ended.wait(hook.timeout)
            if timed_out:
                self._kill(container, token, where)
                if not ended.wait(KILL_GRACE_S):
                    kept.extend(b" (its output still had not ended after the kill)")
        finally:
            with self._lock:
                self._running.pop(token, None)
        out = bytes(kept)
        at = out.rfind(b"\n" + marker)
        if timed_out:
            return None, out, True
        if at < 0:  # it never reached its last line: the wrapper itself was killed
            why = str(errors[0]).encode() if errors else b"its output ended early"
            return None, out + b" " + why, False
        status = out[at + 1 + len(marker) :].strip()
        return int(status) if status.isdigit() else None, out[:at], False

    def _kill(self, container, token: str, where: str) -> None:
        with contextlib.suppress(OperationError):
            self.engine.exec_run(
                container, ["sh", "-c", KILLER, "sh", token], what=f"{where}: kill", check=False
            )

    def kill_running(self) -> None:
        """Kill the container hooks running now (on SIGINT/SIGTERM: the host ones are
        drplan.process children, killed with them)."""
        with self._lock:
            running = list(self._running.items())
        for token, container in running:
            self._kill(container, token, "interrupted hook")


def failure(rec: HookRecord, timeout: float) -> str:
    """What went wrong with one hook, for a step's error."""
    where = location(rec.service, rec.phase, rec.index)
    ran = "on the host" if rec.where == "host" else "in its container"
    if rec.status == "timeout":
        what = f"did not finish within its timeout ({timeout:g}s): killed"
    elif rec.exit_code is not None:
        what = f"exited with status {rec.exit_code}"
    else:
        what = "could not run"
    return f"hook {where} (`{rec.command}`, {ran}) {what}" + (
        f": {rec.output}" if rec.output else ""
    )


def repository_secrets(repo: object) -> tuple[str, ...]:
    """What of a repository no hook may see: its password and its environment's values."""
    found = [getattr(repo, "password", ""), *(getattr(repo, "env", None) or {}).values()]
    return tuple(v for v in found if v)


def secret_env_names(plan: m.Plan) -> set[str]:
    """Environment variables the plan reads secrets from, and the --repo password's."""
    names = {"DRPLAN_REPO_PASSWORD"}
    refs = [r.password for r in plan.repositories.values()]
    refs += [s for r in plan.repositories.values() for s in r.env.values()]
    refs += [d.password for svc in plan.services.values() for d in svc.data.values()]
    names |= {ref.env for ref in refs if ref is not None and ref.env}
    return names


# -- around a backup --------------------------------------------------------------------


def backup_scopes(
    plan: m.Plan, services: list[str], sources: dict[tuple[str, str], str]
) -> dict[str, list[str]]:
    """For each service of the run with backup hooks, the backup tasks its hooks wrap:
    those of its own data and of the services it depends on, transitively, that this run
    backs up (`sources`: (service, source) -> task id)."""
    graph = DependencyGraph.from_plan(plan)
    out: dict[str, list[str]] = {}
    for name in services:
        hooks = plan.services[name].hooks
        if not (hooks.before_backup or hooks.after_backup):
            continue
        wrapped = graph.closure([name])
        out[name] = [tid for (svc, _), tid in sources.items() if svc in wrapped]
    return out


def before_id(service: str) -> str:
    return f"before-backup:{service}"


def after_id(service: str) -> str:
    return f"after-backup:{service}"


@dataclass
class _AfterRun:
    """How one service's after_backup hooks went (None while they run)."""

    error: str | None = None
    started_at: str = ""
    finished_at: str | None = None
    seconds: float = 0.0


@dataclass
class BackupHooks:
    """The hooks of a backup run as executor tasks, and what the executor cannot do.

    ``before-backup:S`` precedes every backup it wraps (see :func:`backup_scopes`);
    ``after-backup:S`` follows them all. The executor skips a task one of whose
    dependencies failed, and after a critical failure starts nothing more; the
    ``after_backup`` hooks must run all the same, so: when a ``before_backup`` hook
    fails, the service's ``after_backup`` hooks run at once, in the same task; when a
    backup it wraps fails, or the run is interrupted, :meth:`settle` runs them once the
    executor has stopped. They never run for a service whose ``before_backup`` task
    never started (nothing was changed), and never twice.
    """

    runner: HookRunner
    scopes: dict[str, list[str]]
    _after: dict[str, _AfterRun] = field(default_factory=dict)
    _tasks: dict[str, Task] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def after_ids(self) -> set[str]:
        return {after_id(s) for s in self.scopes}

    def wire(self, tasks: list[Task]) -> list[Task]:
        """`tasks` with the hook tasks added and the wrapped backups after their
        services' before-backup tasks."""
        befores: dict[str, set[str]] = {}
        for service, wrapped in self.scopes.items():
            for tid in wrapped:
                befores.setdefault(tid, set()).add(before_id(service))
        for t in tasks:
            if t.id in befores:
                t.after = frozenset(t.after | befores[t.id])
        for service, wrapped in self.scopes.items():
            for task in (
                Task(
                    before_id(service),
                    self._before(service),
                    critical=False,
                    service=service,
                    kind="hook",
                ),
                Task(
                    after_id(service),
                    self._after_task(service),
                    after=frozenset({before_id(service), *wrapped}),
                    critical=False,
                    service=service,
                    kind="hook",
                ),
            ):
                self._tasks[task.id] = task
        return [*tasks, *self._tasks.values()]

    def _before(self, service: str) -> Callable[[], None]:
        def run() -> None:
            try:
                self.runner.run_phase(service, "before_backup", step=before_id(service))
            except BaseException:
                self._run_after(service)
                raise

        return run

    def _after_task(self, service: str) -> Callable[[], None]:
        def run() -> None:
            done = self._run_after(service)
            if done.error:
                raise OperationError(done.error)

        return run

    def _run_after(self, service: str) -> _AfterRun:
        """Run the service's after_backup hooks, once: a second call gets the first's."""
        with self._lock:
            if service in self._after:
                return self._after[service]
            done = self._after[service] = _AfterRun(started_at=now_iso())
        t0 = time.monotonic()
        error = None
        try:
            self.runner.run_phase(service, "after_backup", step=after_id(service))
        except DrplanError as exc:
            error = str(exc)
        with self._lock:
            done.error, done.finished_at = error, now_iso()
            done.seconds = round(time.monotonic() - t0, 3)
        return done

    def settle(
        self, outcomes: dict[str, Outcome], on_event: Callable[[Event], None] = lambda e: None
    ) -> None:
        """After the executor: the after-backup hooks it did not run, run now for every
        service whose before-backup task started; their outcomes (and a `finished`
        event each) say what happened."""
        for service in self.scopes:
            before = outcomes.get(before_id(service))
            after = outcomes.get(after_id(service))
            if before is None or after is None or after.status in ("ok", "failed"):
                continue
            if before.started_at is None and service not in self._after:
                continue  # never started: nothing to undo
            done = self._run_after(service)
            after.started_at, after.seconds = done.started_at, done.seconds
            after.finished_at = done.finished_at or now_iso()
            if done.finished_at is None:
                after.status = "failed"
                after.error = "its after_backup hooks were still running when drplan stopped"
            else:
                after.status = "failed" if done.error else "ok"
                after.error = done.error
            on_event(Event("finished", self._tasks[after_id(service)], after))
