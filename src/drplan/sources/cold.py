"""The cold method: for engines with no safe live copy (Elasticsearch, Cassandra...).

The services that write to the volume are quiesced (scaled to 0, dependents first), the
volume is copied file by file, and they are scaled back in dependency order and waited
healthy. Whatever happens during the copy, the services are brought back. The downtime
of each service is measured and reported.
"""

from __future__ import annotations

import time

from drplan.sources.base import BackupResult, SourceContext
from drplan.sources.files import SOURCE as files


class Cold:
    consistency = "cold copy: writers stopped during the copy"

    def backup(self, ctx: SourceContext) -> BackupResult:
        stopped: list[tuple[str, int, float]] = []
        downtime: dict[str, float] = {}
        try:
            for service in ctx.quiesce:  # dependents first
                replicas = ctx.engine.service_replicas(ctx.stack, service)
                if not replicas:
                    continue
                t0 = time.monotonic()
                ctx.engine.scale(ctx.stack, service, 0)
                stopped.append((service, replicas, t0))
            for service, _, _ in stopped:
                ctx.engine.wait_stopped(ctx.stack, service, ctx.deadline)
            result = files.backup(ctx)
        finally:
            for service, replicas, t0 in reversed(stopped):  # dependencies first
                ctx.engine.scale(ctx.stack, service, replicas)
                ctx.engine.wait_running(ctx.stack, service, time.monotonic() + 600)
                downtime[service] = round(time.monotonic() - t0, 3)
        result.consistency = self.consistency
        result.downtime_s = downtime
        return result

    def fingerprint(self, ctx: SourceContext) -> dict:
        return files.fingerprint(ctx)

    def compare(self, expected: dict, actual: dict) -> list[str]:
        return files.compare(expected, actual)

    def stored_fingerprint(self, repo, record) -> dict:
        return files.stored_fingerprint(repo, record)

    def is_empty(self, ctx: SourceContext) -> bool:
        return files.is_empty(ctx)

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        files.restore(ctx, snapshot, path, fingerprint)


SOURCE = Cold()
