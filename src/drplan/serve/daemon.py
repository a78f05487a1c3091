"""The daemon's loop: one worker thread per plan; a drill beside the other jobs.

Each worker sleeps until the next of its plan's jobs is due (serve/cadence.py), a
refresh of what the repository says is due, or the RPO watch's tick, whichever comes
first; it never polls faster. A job is a child `drplan` process (serve/jobs.py); at most
`max_parallel` run at once across plans, so five plans do not back up five stacks at the
same second on a two-core host.

A plan runs its backups, copies, retention and checks one at a time, in its worker's
thread, and its drill in a thread of its own (a lane): a drill takes as long as a
recovery, and the backups must go on meanwhile, or every drill would cost the RPO. Both
only read the repository or add to it (restic's shared lock); retention and checks take
its exclusive lock, so neither starts while a drill runs, and a drill does not start
while one of them runs.

Nothing here trusts a job more than its exit status: a run is `ok` in the daemon's
records only when the child exited 0; what is complete is the repository's word, read
back after each job (`drplan status/runs/drills --json`). A failed job is retried with a
backoff (cadence.backoff) while it stays due; an unreachable engine or repository is one
more failed job, logged and notified, never an exception out of the worker.

On stop (SIGTERM), workers start nothing new; a running job is given `grace` seconds to
end, then SIGTERM (the child's own orderly stop: helpers removed, run recorded as
interrupted), then SIGKILL; the run is recorded `interrupted`. After a SIGKILL of the
daemon itself, the next start marks the runs it left `running` as `dead` and says so.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.actions.context import PlanContext, check_plan
from drplan.errors import DrplanError
from drplan.plan import model as m
from drplan.serve import cadence, facts, jobs, rpo
from drplan.serve import state as st
from drplan.serve.notify import Message, Notifier

log = logging.getLogger("drplan.serve")

#: jobs that take the repository's exclusive lock: never beside a drill
EXCLUSIVE = frozenset({"prune", "check"})


@dataclass
class Settings:
    report_dir: Path
    max_parallel: int = 2
    facts_every: float = 3600.0  # re-read the repository at least this often (seconds)
    tick: float = 30.0  # RPO watch period (seconds)
    grace: float = 30.0  # a running job's time to end on stop, before SIGTERM
    job_timeout: float = 6 * 3600.0
    facts_timeout: float = 300.0


@dataclass
class PlanView:
    """What the metrics and the dashboard read of one plan (copied under the lock)."""

    name: str
    path: Path
    plan: m.Plan | None
    error: str | None
    paused: bool
    next: dict[str, float]
    facts: dict[str, Any]
    facts_at: float | None
    last: dict[str, st.Run]
    running: list[dict[str, Any]] = field(default_factory=list)  # {job, run, started_at}
    rpo: list[rpo.ServiceRpo] = field(default_factory=list)


class PlanWorker(threading.Thread):
    """Runs one plan's jobs when they are due, forever (until the daemon stops)."""

    def __init__(self, daemon: Daemon, path: Path) -> None:
        super().__init__(name=f"drplan-plan-{path.stem}", daemon=True)
        self.d = daemon
        self.path = path
        self.plan: m.Plan | None = None
        self.pc: PlanContext | None = None  # the loaded plan the repository reads use
        self.name = path.stem
        self.error: str | None = None
        self.mtime = 0.0
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.facts_lock = threading.Lock()  # one repository read at a time per plan
        self.children: dict[str, jobs.Child] = {}  # lane -> the job's process
        self.running: dict[str, dict[str, Any]] = {}  # lane -> {job, run, started_at}
        self.drill_lane: threading.Thread | None = None
        self.next: dict[str, float] = {}
        self.facts: dict[str, Any] = {}
        self.facts_at: float | None = None
        self.requested: list[str] = []  # jobs asked for by hand (dashboard, API)
        self.reload()

    # -- the plan file ------------------------------------------------------------------

    def reload(self) -> None:
        """(Re)read the plan when its file changed; a broken edit keeps the last good one
        and is reported (and notified once)."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            self._plan_error(f"cannot read {self.path}: {exc.strerror}")
            return
        if mtime == self.mtime:
            return
        self.mtime = mtime
        check = check_plan(self.path)  # never raises: problems are located lines
        if check.context is None:
            errors = [p.format() for p in check.errors] or ["the plan could not be loaded"]
            self._plan_error("; ".join(errors[:3]) + (" ..." if len(errors) > 3 else ""))
            return
        plan = check.context.plan
        self.pc = check.context
        with self.lock:
            self.plan, self.error = plan, None
            self.name = plan.stack.name
        log.info("plan %s: loaded from %s", self.name, self.path)

    def _plan_error(self, message: str) -> None:
        first = self.error is None
        with self.lock:
            self.error = message
        log.error("plan %s: %s", self.name, message)
        if first and self.plan is not None:
            self.notify(
                Message("run_failed", f"drplan: plan {self.name} is invalid", message, True)
            )

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self.d.stopping.is_set():
            try:
                timeout = self.step()
            except Exception:  # a bug in one plan's loop must not end the others
                log.exception("plan %s: internal error in the worker loop", self.name)
                timeout = self.d.settings.tick
            self.wake.wait(max(0.0, timeout))
            self.wake.clear()
        lane = self.drill_lane
        if lane is not None:  # the worker ends with its drill (the stop reaches both)
            lane.join()

    def drilling(self) -> bool:
        lane = self.drill_lane
        return lane is not None and lane.is_alive()

    def can_start(self, job: str) -> bool:
        """A drill waits for the running one; retention and checks (restic's exclusive
        lock) wait for a drill. The other jobs run in this thread: free when asked."""
        if job == "drill" or job in EXCLUSIVE:
            return not self.drilling()
        return True

    def dispatch(self, job: str, trigger: str) -> None:
        """Run `job`: a drill in its lane (this thread goes on), the others here."""
        if job != "drill":
            self.run_job(job, trigger)
            return

        def drill() -> None:
            try:
                self.run_job("drill", trigger, lane="drill")
            except Exception:
                log.exception("plan %s: internal error in the drill lane", self.name)
            finally:
                self.wake.set()  # what waited for the drill may start now

        self.drill_lane = threading.Thread(
            target=drill, name=f"drplan-drill-{self.path.stem}", daemon=True
        )
        self.drill_lane.start()

    def step(self) -> float:
        """One turn: reload, refresh facts when stale, watch RPO, run one due job.
        Returns how long to sleep."""
        self.reload()
        if self.plan is None:
            return self.d.settings.tick
        now = time.time()
        if self.facts_at is None or now - self.facts_at >= self.d.settings.facts_every:
            self.refresh_facts()
        self.watch_rpo()
        history = self.history()
        plan = self.plan
        has_copies = any(r.role == "copy" for r in plan.repositories.values())
        nexts = cadence.next_jobs(plan, history, time.time(), has_copies=has_copies)
        with self.lock:
            self.next = nexts
        paused = self.d.state.paused(self.name) is not None
        requested = next((j for j in self.requested if self.can_start(j)), None)
        if requested is not None:
            self.requested.remove(requested)
            self.dispatch(requested, "manual")
            return 0.0
        if not paused:
            now = time.time()
            ready = [
                j for j in cadence.JOBS if j in nexts and nexts[j] <= now and self.can_start(j)
            ]
            if ready:
                job = ready[0]
                trigger = "retry" if history.get(job, cadence.History()).failures else "schedule"
                self.dispatch(job, trigger)
                return 0.0
        waits = (
            [t - time.time() for j, t in nexts.items() if self.can_start(j)] if not paused else []
        )
        waits.append(self.d.settings.tick)
        if self.facts_at is not None:
            waits.append(self.facts_at + self.d.settings.facts_every - time.time())
        return max(0.5, min(waits))

    def history(self) -> dict[str, cadence.History]:
        """Each job's history: the daemon's records, overridden by the repository where it
        knows of a newer success (a backup or drill run by hand counts)."""
        out = {}
        for job in cadence.JOBS:
            ok = self.d.state.last(self.name, job, st.OK)
            last = self.d.state.last(self.name, job)
            failures = self.d.state.failures_since_ok(self.name, job)
            start = ok.started_at if ok else None
            end = ok.ended_at if ok else None
            repo_start, repo_end = self._repo_success(job)
            if repo_start is not None and (start is None or repo_start > start):
                start, end = repo_start, repo_end or repo_start
            out[job] = cadence.History(
                last_ok_start=start,
                last_ok_end=end,
                last_failure_end=last.ended_at if last and last.status != st.OK else None,
                failures=failures,
            )
        return out

    def _repo_success(self, job: str) -> tuple[float | None, float | None]:
        if job == "backup":
            runs = (self.facts.get("runs") or {}).get("runs") or []
            complete = [r for r in runs if r.get("complete")]
            if complete:
                newest = complete[-1]
                return rpo.parse_time(newest.get("started_at")), rpo.parse_time(
                    newest.get("finished_at")
                )
        if job == "drill":
            last = (self.facts.get("status") or {}).get("last_drill") or {}
            t = rpo.parse_time(last.get("started_at"))
            return t, t
        if job == "check":
            repo = (self.facts.get("status") or {}).get("repository") or {}
            t = rpo.parse_time(repo.get("last_check")) if repo.get("last_check_ok") else None
            return t, t
        return None, None

    # -- jobs -----------------------------------------------------------------------------

    def run_job(self, job: str, trigger: str, lane: str = "jobs") -> st.Run | None:
        assert self.plan is not None
        plan = self.plan
        with self.d.slots:
            if self.d.stopping.is_set():
                return None
            attempt = self.d.state.failures_since_ok(self.name, job) + 1
            run_id = self.d.state.start(self.name, job, trigger, attempt)
            args = jobs.argv(job, self.path, plan, self.d.settings.report_dir / self.name)
            log.info("plan %s: %s started (%s, attempt %d)", self.name, job, trigger, attempt)
            with self.lock:
                self.running[lane] = {"job": job, "run": run_id, "started_at": time.time()}
            try:
                child = jobs.Child(args, on_pid=lambda pid: self.d.state.set_pid(run_id, pid))
                self.children[lane] = child
                if self.d.stopping.is_set():  # the stop came while the child was starting
                    child.stop()
                outcome = child.wait(timeout=self.d.settings.job_timeout)
            except OSError as exc:
                outcome = jobs.Outcome(exit_code=127, error=f"cannot start drplan: {exc}")
            finally:
                self.children.pop(lane, None)
                with self.lock:
                    self.running.pop(lane, None)
        status = st.OK if outcome.ok else st.INTERRUPTED if outcome.interrupted else st.FAILED
        self.d.state.finish(
            run_id,
            status,
            exit_code=outcome.exit_code,
            ref=outcome.ref,
            nbytes=outcome.nbytes,
            message=outcome.error if status != st.OK else None,
            details=outcome.document,
        )
        run = self.d.state.run(run_id)
        log_fn = log.info if status == st.OK else log.warning
        log_fn(
            "plan %s: %s %s in %.1fs%s",
            self.name,
            job,
            status,
            run.seconds or 0.0,
            f": {outcome.error}" if outcome.error and status != st.OK else "",
        )
        if status != st.INTERRUPTED:
            self.refresh_facts()
            self.tell(job, run, outcome)
        return run

    def tell(self, job: str, run: st.Run, outcome: jobs.Outcome) -> None:
        """Notifications for the end of a job: a failure (first of a streak), a success
        after failures, every drill with its RTO."""
        subject = f"job:{job}"
        if job == "drill":
            doc = outcome.document if isinstance(outcome.document, dict) else {}
            rto = doc.get("rto") or {}
            passed = run.status == st.OK and bool(doc.get("passed", True))
            measured, objective = rto.get("measured_s"), rto.get("objective_s")
            rto_text = (
                f"RTO {measured:.0f}s" if isinstance(measured, int | float) else "RTO not measured"
            ) + (f" (objective {objective:.0f}s)" if isinstance(objective, int | float) else "")
            title = f"drplan: drill of {self.name} {'passed' if passed else 'FAILED'}"
            body = rto_text + ("" if passed else f"\n{run.message or doc.get('failure') or ''}")
            self.notify(Message("drill", title, body, not passed))
            return
        previous = self.d.state.alert_state(self.name, subject)
        if run.status == st.OK:
            if previous == "failing":
                self.d.state.set_alert_state(self.name, subject, "ok")
                self.notify(
                    Message("run_failed", f"drplan: {job} of {self.name} succeeded again", "")
                )
            return
        if previous != "failing":
            self.d.state.set_alert_state(self.name, subject, "failing")
            event = "check_failed" if job == "check" else "run_failed"
            body = f"{run.message or 'failed'} (exit {run.exit_code}, attempt {run.attempt})"
            self.notify(Message(event, f"drplan: {job} of {self.name} failed", body, True))

    def notify(self, msg: Message) -> None:
        if self.plan is not None:
            self.d.notifier.send(self.plan, self.path.parent, msg)

    # -- what the repository says -------------------------------------------------------------

    def refresh_facts(self) -> None:
        """Read the repository back: what `drplan status`, `drplan runs` and `drplan
        drills` print with --json, by the same functions, in this process (a child
        each time would cost a Python start-up per read, most of an idle daemon's CPU).
        A failure keeps the previous facts and is logged; an unreachable repository is
        also a run failure when a job meets it."""
        pc = self.pc
        if pc is None:
            return
        with self.facts_lock:
            self._read_facts(pc)

    def _read_facts(self, pc: PlanContext) -> None:
        for kind, read in facts.READERS.items():
            try:
                doc = read(pc)
            except DrplanError as exc:
                log.warning("plan %s: cannot read the %s: %s", self.name, kind, exc)
                continue
            except Exception:  # a bug in one read must not end the worker
                log.exception("plan %s: internal error reading the %s", self.name, kind)
                continue
            self.d.state.put_fact(self.name, kind, doc)
            with self.lock:
                self.facts[kind] = doc
        with self.lock:
            self.facts_at = time.time()

    def watch_rpo(self) -> list[rpo.ServiceRpo]:
        """Each service's RPO state; a notification when one enters at-risk or breached."""
        assert self.plan is not None
        warning = min((n.rpo_warning for n in self.plan.notifications), default=0.8)
        states = rpo.watch(self.facts.get("status"), time.time(), warning)
        for s in states:
            subject = f"rpo:{s.service}"
            previous = self.d.state.alert_state(self.name, subject)
            if s.state == previous:
                continue
            self.d.state.set_alert_state(self.name, subject, s.state)
            if s.state in (rpo.AT_RISK, rpo.BREACHED):
                event = "rpo_at_risk" if s.state == rpo.AT_RISK else "rpo_breached"
                word = "at risk" if s.state == rpo.AT_RISK else "BREACHED"
                age = f"{s.age_s:.0f}s" if s.age_s is not None else "unknown"
                self.notify(
                    Message(
                        event,
                        f"drplan: RPO of {self.name}/{s.service} {word}",
                        f"newest complete backup is {age} old; objective {s.objective_s:.0f}s",
                        s.state == rpo.BREACHED,
                    )
                )
        return states

    def view(self) -> PlanView:
        with self.lock:
            facts = dict(self.facts)
            view = PlanView(
                name=self.name,
                path=self.path,
                plan=self.plan,
                error=self.error,
                paused=False,
                running=[dict(r) for r in self.running.values()],
                next=dict(self.next),
                facts=facts,
                facts_at=self.facts_at,
                last={},
            )
        view.rpo = rpo.watch(facts.get("status"), time.time())
        return view

    def stop_child(self) -> None:
        for child in list(self.children.values()):
            child.stop()


class Daemon:
    """The plans' workers, their shared state and notifier."""

    def __init__(
        self,
        plan_paths: list[Path],
        state: st.State,
        settings: Settings,
        notifier: Notifier | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.stopping = threading.Event()
        self.slots = threading.BoundedSemaphore(max(1, settings.max_parallel))
        self.started_at = time.time()
        self.reaped = state.reap()
        self.workers = [PlanWorker(self, p.resolve()) for p in plan_paths]
        for run in self.reaped:
            log.warning(
                "plan %s: %s run %d was left by a stopped daemon: dead", run.plan, run.job, run.id
            )
            worker = self.worker(run.plan)
            if worker is not None:
                worker.notify(
                    Message(
                        "daemon",
                        f"drplan: {run.job} of {run.plan} was cut short",
                        run.message or "",
                        True,
                    )
                )

    def worker(self, name: str) -> PlanWorker | None:
        return next((w for w in self.workers if w.name == name), None)

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def stop(self, grace: float | None = None) -> None:
        """Start nothing new; give running jobs `grace` seconds, then stop them."""
        grace = self.settings.grace if grace is None else grace
        self.stopping.set()
        for w in self.workers:
            w.wake.set()
        deadline = time.monotonic() + grace
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for w in self.workers:
            if w.is_alive():
                w.stop_child()
        for w in self.workers:
            w.join(jobs.TERM_GRACE_S + 5)

    def request(self, name: str, job: str) -> bool:
        """Run `job` of plan `name` as soon as it is free (an authenticated action)."""
        w = self.worker(name)
        if w is None or job not in cadence.JOBS:
            return False
        w.requested.append(job)
        w.wake.set()
        return True

    def views(self) -> list[PlanView]:
        out = []
        for w in self.workers:
            v = w.view()
            v.paused = self.state.paused(v.name) is not None
            v.last = {
                job: run
                for job in cadence.JOBS
                if (run := self.state.last(v.name, job)) is not None
            }
            out.append(v)
        return out
