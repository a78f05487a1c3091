"""Files in a volume: restic runs next to the data, in a helper on the volume's engine.

File-level and incremental: with the previous run's snapshot as parent, restic re-reads
only files whose size, mtime or inode changed. Consistency is per file (crash-consistent),
which is what an application writing whole files (uploads, attachments) needs; data that
must be frozen uses the `cold` method instead.
The fingerprint (file count, bytes, and a hash over every path and size) is taken from the
snapshot itself, so it describes exactly what was stored; content is guaranteed by
restic's own authenticated, content-addressed storage.
"""

from __future__ import annotations

import hashlib
import json

from drplan.errors import OperationError
from drplan.sources import volume as vol
from drplan.sources.base import BackupResult, SourceContext, compare_dicts


def tree_fingerprint(entries: list[tuple[str, int]]) -> dict:
    h = hashlib.sha256()
    total = 0
    for path, size in sorted(entries):
        h.update(f"{path}\t{size}\n".encode())
        total += size
    return {"files": len(entries), "bytes": total, "tree": h.hexdigest()}


class Files:
    consistency = "file-level, crash-consistent per file (live)"

    def _volume(self, ctx: SourceContext) -> str:
        if not ctx.volume:
            raise OperationError("this data source names no volume", where=ctx.what)
        return ctx.volume

    def backup(self, ctx: SourceContext) -> BackupResult:
        volume = self._volume(ctx)
        if not ctx.engine.volume_exists(volume):
            raise OperationError(
                f"volume {volume} does not exist on {ctx.engine.where}", where=ctx.what
            )
        argv = [
            "restic",
            *ctx.repo.option_args(),
            "backup",
            vol.MOUNT,
            "--json",
            "--host",
            ctx.host,
            "--tag",
            ",".join(ctx.tags("files")),
        ]
        if ctx.parent:
            argv += ["--parent", ctx.parent]
        else:
            # No parent of *this* source: without --force restic would pick the latest
            # snapshot with the same host and path (/volume), i.e. another source's, and
            # trust its metadata for files that merely look alike.
            argv += ["--force"]
        for pattern in ctx.spec.exclude:
            argv += ["--exclude", pattern]
        summary: dict = {}
        done = 0
        with vol.holding(ctx.engine, volume, labels=vol.labels_of(ctx), repo=ctx.repo) as (c, env):
            rest = b""
            for chunk in ctx.engine.exec_out(c, argv, what=f"{ctx.what}: restic backup", env=env):
                data = rest + chunk
                *whole, rest = data.split(b"\n")
                for line in whole:
                    if not line.startswith(b"{"):
                        continue
                    msg = json.loads(line)
                    if msg.get("message_type") == "status":
                        now = int(msg.get("bytes_done", 0))
                        if now > done:
                            ctx.progress(now - done)
                            done = now
                    elif msg.get("message_type") == "summary":
                        summary = msg
        if not summary:
            raise OperationError("restic backup printed no summary", where=ctx.what)
        snapshot = summary["snapshot_id"]
        return BackupResult(
            snapshot=snapshot,
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint=self.snapshot_fingerprint(ctx.repo, snapshot),
            path=vol.MOUNT,
            consistency=self.consistency,
            stats={
                k: summary.get(k)
                for k in (
                    "files_new",
                    "files_changed",
                    "files_unmodified",
                    "data_added",
                    "total_files_processed",
                    "total_bytes_processed",
                )
            },
        )

    def stored_fingerprint(self, repo, record) -> dict:
        return self.snapshot_fingerprint(repo, record.snapshot)

    def snapshot_fingerprint(self, repo, snapshot: str) -> dict:
        prefix = vol.MOUNT + "/"
        entries = [
            (n["path"][len(prefix) :], int(n.get("size", 0)))
            for n in repo.ls(snapshot)
            if n.get("type") == "file" and n["path"].startswith(prefix)
        ]
        return tree_fingerprint(entries)

    def fingerprint(self, ctx: SourceContext) -> dict:
        volume = self._volume(ctx)
        with vol.holding(ctx.engine, volume, labels=vol.labels_of(ctx)) as (c, _):
            out = ctx.engine.exec_run(
                c,
                ["find", vol.MOUNT, "-type", "f", "-printf", "%P\\t%s\\n"],
                what=f"{ctx.what}: listing files",
            ).stdout
        entries = []
        for line in out.decode(errors="surrogateescape").splitlines():
            path, _, size = line.rpartition("\t")
            entries.append((path, int(size)))
        return tree_fingerprint(entries)

    def compare(self, expected: dict, actual: dict) -> list[str]:
        return compare_dicts(expected, actual)

    def is_empty(self, ctx: SourceContext) -> bool:
        return vol.is_empty(ctx.engine, self._volume(ctx), vol.labels_of(ctx))

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        volume = self._volume(ctx)
        ctx.engine.create_volume(volume)
        with vol.holding(
            ctx.engine, volume, labels=vol.labels_of(ctx), read_only=False, repo=ctx.repo
        ) as (c, env):
            ctx.engine.exec_run(
                c,
                [
                    "restic",
                    *ctx.repo.option_args(),
                    "restore",
                    snapshot,
                    "--target",
                    "/",
                    "--no-lock",
                ],
                what=f"{ctx.what}: restic restore",
                env=env,
            )


SOURCE = Files()
