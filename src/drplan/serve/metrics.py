"""The Prometheus endpoint: what the daemon knows, as metrics, computed at scrape time.

A custom collector (prometheus_client's documented way for values that live elsewhere)
reads the workers' in-memory views and one grouped query of the state file, so a scrape
costs no repository access and stays in milliseconds with hundreds of sources. Names
follow Prometheus conventions: base units (`_seconds`, `_bytes`), times as
`_timestamp_seconds`, counters with `_total`; labels are `plan`, `job`, `service`,
`source`. The RPO age is computed against the clock at each scrape, so an alert does not
wait for the next backup to see it grow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drplan.serve import cadence, rpo
from drplan.serve import state as st

if TYPE_CHECKING:
    from drplan.serve.daemon import Daemon

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class DaemonCollector(Collector):
    """Collects the daemon's metrics on every scrape."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        views = self.d.views()
        up = _gauge("drplan_up", "1 while the drplan daemon runs.", [])
        up.add_metric([], 1)
        yield up
        started = _gauge("drplan_start_time_seconds", "When the daemon started.", [])
        started.add_metric([], self.d.started_at)
        yield started
        reaped = _gauge(
            "drplan_dead_runs_found", "Runs a stopped daemon left unfinished, found at start.", []
        )
        reaped.add_metric([], len(self.d.reaped))
        yield reaped

        loaded = _gauge("drplan_plan_valid", "1 when the plan file loads and validates.", ["plan"])
        paused = _gauge("drplan_plan_paused", "1 while the plan's schedule is paused.", ["plan"])
        last_ok = _gauge(
            "drplan_job_last_success_timestamp_seconds",
            "End of the job's newest successful run.",
            ["plan", "job"],
        )
        last_start = _gauge(
            "drplan_job_last_run_timestamp_seconds",
            "Start of the job's newest run.",
            ["plan", "job"],
        )
        last_duration = _gauge(
            "drplan_job_last_duration_seconds",
            "Duration of the job's newest ended run.",
            ["plan", "job"],
        )
        last_failed = _gauge(
            "drplan_job_last_failed", "1 when the job's newest ended run failed.", ["plan", "job"]
        )
        running = _gauge("drplan_job_running", "1 while the job runs.", ["plan", "job"])
        next_run = _gauge(
            "drplan_job_next_run_timestamp_seconds", "When the job is next due.", ["plan", "job"]
        )
        src_bytes = _gauge(
            "drplan_source_backup_bytes",
            "Size of the source in the newest successful backup.",
            ["plan", "service", "source"],
        )
        src_seconds = _gauge(
            "drplan_source_backup_duration_seconds",
            "Time the source took in the newest successful backup.",
            ["plan", "service", "source"],
        )
        src_success = _gauge(
            "drplan_source_last_success_timestamp_seconds",
            "End of the newest successful backup of the source.",
            ["plan", "service", "source"],
        )
        backup_bytes = _gauge(
            "drplan_backup_bytes", "Size of the newest successful backup.", ["plan"]
        )
        rpo_age = _gauge(
            "drplan_rpo_age_seconds",
            "Age of the service's newest complete run (its recovery point).",
            ["plan", "service"],
        )
        rpo_objective = _gauge(
            "drplan_rpo_objective_seconds", "The service's RPO objective.", ["plan", "service"]
        )
        drill_time = _gauge(
            "drplan_drill_last_timestamp_seconds", "Start of the newest drill.", ["plan"]
        )
        drill_rto = _gauge(
            "drplan_drill_rto_seconds", "RTO measured by the newest drill.", ["plan"]
        )
        drill_objective = _gauge(
            "drplan_drill_rto_objective_seconds", "RTO objective of the newest drill.", ["plan"]
        )
        drill_passed = _gauge("drplan_drill_passed", "1 when the newest drill passed.", ["plan"])
        check_ok = _gauge("drplan_check_ok", "1 when the newest repository check passed.", ["plan"])
        repo_up = _gauge(
            "drplan_repository_up", "1 when the repository opened at the last read.", ["plan"]
        )
        facts_age = _gauge(
            "drplan_repository_read_timestamp_seconds",
            "When the daemon last read the repository back.",
            ["plan"],
        )

        for v in views:
            p = [v.name]
            loaded.add_metric(p, 0 if v.error or v.plan is None else 1)
            paused.add_metric(p, 1 if v.paused else 0)
            if v.facts_at is not None:
                facts_age.add_metric(p, v.facts_at)
            for job in cadence.JOBS:
                run = v.last.get(job)
                running.add_metric([*p, job], int(any(r["job"] == job for r in v.running)))
                if job in v.next:
                    next_run.add_metric([*p, job], max(v.next[job], now))
                if run is None:
                    continue
                last_start.add_metric([*p, job], run.started_at)
                if run.ended_at is not None:
                    last_duration.add_metric([*p, job], run.ended_at - run.started_at)
                    last_failed.add_metric([*p, job], 0 if run.status == st.OK else 1)
            for job, ended in self.d.state.last_success_times(v.name).items():
                last_ok.add_metric([*p, job], ended)
            doc = self.d.state.last_details(v.name, "backup")
            if isinstance(doc, dict):
                total = 0
                ended = rpo.parse_time(doc.get("finished_at"))
                for s in doc.get("sources") or []:
                    labels = [*p, str(s.get("service")), str(s.get("source"))]
                    size = int(s.get("bytes") or 0)
                    total += size
                    src_bytes.add_metric(labels, size)
                    if s.get("seconds") is not None:
                        src_seconds.add_metric(labels, float(s["seconds"]))
                    if ended is not None:
                        src_success.add_metric(labels, ended)
                backup_bytes.add_metric(p, total)
            for s in v.rpo:
                if s.objective_s is not None:
                    rpo_objective.add_metric([*p, s.service], s.objective_s)
                if s.age_s is not None:
                    rpo_age.add_metric([*p, s.service], s.age_s)
            status = v.facts.get("status") or {}
            drill = status.get("last_drill") or {}
            if drill:
                started_at = rpo.parse_time(drill.get("started_at"))
                if started_at is not None:
                    drill_time.add_metric(p, started_at)
                if drill.get("rto_s") is not None:
                    drill_rto.add_metric(p, float(drill["rto_s"]))
                if drill.get("rto_objective_s") is not None:
                    drill_objective.add_metric(p, float(drill["rto_objective_s"]))
                drill_passed.add_metric(p, 1 if drill.get("passed") else 0)
            repo = status.get("repository") or {}
            if repo:
                repo_up.add_metric(p, 1 if repo.get("opens") else 0)
                if repo.get("last_check") is not None:
                    check_ok.add_metric(p, 1 if repo.get("last_check_ok") else 0)
        yield from (
            loaded, paused, last_ok, last_start, last_duration, last_failed, running, next_run,
            src_bytes, src_seconds, src_success, backup_bytes, rpo_age, rpo_objective,
            drill_time, drill_rto, drill_objective, drill_passed, check_ok, repo_up, facts_age,
        )  # fmt: skip
        runs = CounterMetricFamily(
            "drplan_job_runs",
            "Runs the daemon ended, by outcome.",
            labels=["plan", "job", "status"],
        )
        for (plan, job, status_), count in self.d.state.run_counts().items():
            runs.add_metric([plan, job, status_], count)
        yield runs


def registry(daemon: Daemon) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DaemonCollector(daemon))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
