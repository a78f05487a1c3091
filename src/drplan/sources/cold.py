"""The cold method: for engines with no safe live copy (Elasticsearch, Cassandra...).

The services that write to the volume are quiesced (scaled to 0, dependents first), the
volume is copied file by file, and they are scaled back in dependency order and waited
healthy. Production must never stay down because a backup failed:
- every service is scaled back whatever fails, the copy or another scale-back (errors are
  collected, the first one raised after all were tried);
- SIGINT/SIGTERM interrupt the copy (the executor removes this run's helpers) and these
  `finally` blocks still run before drplan exits;
- each stopped service carries a mark on the engine (its replicas, drplan's pid): after a
  SIGKILL, the next drplan command on the plan scales it back (`restore_abandoned`).
The downtime of each service is measured and reported.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.platform.docker import DockerEngine
from drplan.sources.base import BackupResult, Procedure, ShellKit, SourceContext
from drplan.sources.files import ENGINE as files

if TYPE_CHECKING:
    from drplan.store.manifest import SourceRecord

# how long a service brought back may take to be running again before it is reported
BACK_WAIT_S = 600.0


class Cold:
    """The cold method of any engine: a files copy of its volume with the writers
    stopped. Not an engine of its own: :func:`drplan.sources.registry.operations` gives
    it for `method: cold`."""

    consistency = "cold copy: writers stopped during the copy"

    def backup(self, ctx: SourceContext) -> BackupResult:
        stopped: list[tuple[str, float]] = []
        downtime: dict[str, float] = {}
        try:
            for service in ctx.quiesce:  # dependents first
                t0 = time.monotonic()
                if ctx.engine.scale_down_marked(ctx.stack, service):
                    stopped.append((service, t0))
            for service, _ in stopped:
                ctx.engine.wait_stopped(ctx.stack, service, ctx.deadline)
            result = files.backup(ctx)
        finally:
            downtime = scale_back(ctx.engine, ctx.stack, stopped, what=ctx.what)
        result.consistency = self.consistency
        result.downtime_s = downtime
        return result

    def fingerprint(self, ctx: SourceContext) -> dict:
        return files.fingerprint(ctx)

    def compare(self, expected: dict, actual: dict) -> list[str]:
        return files.compare(expected, actual)

    def stored_fingerprint(self, repo, record, **where) -> dict:
        return files.stored_fingerprint(repo, record, **where)

    def is_empty(self, ctx: SourceContext) -> bool:
        return files.is_empty(ctx)

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        files.restore(ctx, snapshot, path, fingerprint)

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        return files.runbook_restore(kit, service, source, spec, record)

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        return files.runbook_verify(kit, service, source, spec, record)


def scale_back(
    engine: DockerEngine, stack: str, stopped: list[tuple[str, float]], *, what: str
) -> dict[str, float]:
    """Scale every stopped service back, dependencies first, each waited running before
    the next (a dependent must find what it needs). Every one is tried whatever fails
    before it; the first error is raised once all were."""
    errors: list[BaseException] = []
    downtime = {}
    for service, t0 in reversed(stopped):  # dependencies first
        try:
            engine.scale_back_marked(stack, service)
            engine.wait_running(stack, service, time.monotonic() + BACK_WAIT_S)
        except Exception as exc:
            errors.append(exc)
        downtime[service] = round(time.monotonic() - t0, 3)
    if errors:
        raise OperationError(
            f"bringing services back after the cold copy: {errors[0]}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            where=what,
        ) from errors[0]
    return downtime


def restore_abandoned(engine: DockerEngine, stack: str) -> list[str]:
    """Scale back the services a killed cold backup left at 0 (their owner is dead);
    the names of those brought back."""
    names = engine.abandoned_scale_downs(stack)
    for name in names:
        engine.scale_back_marked(stack, name)
    return names


SOURCE = Cold()
