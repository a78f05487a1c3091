"""Files in a volume: restic runs next to the data, in a helper on the volume's engine.

File-level and incremental: with the previous run's snapshot as parent, restic re-reads
only files whose size, mtime or inode changed. Consistency is per file (crash-consistent),
which is what an application writing whole files (uploads, attachments) needs; data that
must be frozen uses the `cold` method instead.
The fingerprint (file count, bytes, and a hash over every path and size) must describe
exactly what was stored; content is guaranteed by restic's own authenticated,
content-addressed storage. It is computed from a listing of the volume taken, in the same
helper, just before and just after restic reads it, when the two listings are identical
(no file created, removed, resized or touched meanwhile) and agree with restic's own
count of files and bytes. Otherwise (live writes, exclusions) it is read back from the
snapshot with `restic ls`: one more restic process, a key derivation and a tree walk,
which the quiet case, by far the common one, does without. `drplan check` compares the
two for every run it samples.
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
        h.update(f"{path}\t{size}\n".encode(errors="surrogateescape"))
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
            before = _listing(ctx, c)
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
            after = _listing(ctx, c) if summary else None
        if not summary:
            raise OperationError("restic backup printed no summary", where=ctx.what)
        snapshot = summary["snapshot_id"]
        fingerprint = None if ctx.spec.exclude else quiet_fingerprint(before, after, summary)
        return BackupResult(
            snapshot=snapshot,
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint=fingerprint or self.snapshot_fingerprint(ctx.repo, snapshot),
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
            listed = _listing(ctx, c)
        return tree_fingerprint([(path, size) for path, size, _ in listed])

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
            # on disk before the journal records the step done (a resume skips it then)
            ctx.engine.exec_run(c, ["sync", "-f", vol.MOUNT], what=f"{ctx.what}: sync")


SOURCE = Files()


Listing = list[tuple[str, int, str]]  # (path under the volume, size, mtime)


def _listing(ctx: SourceContext, container) -> Listing:
    """Every regular file of the volume with its size and modification time."""
    out = ctx.engine.exec_run(
        container,
        ["find", vol.MOUNT, "-type", "f", "-printf", "%P\\t%s\\t%T@\\0"],
        what=f"{ctx.what}: listing files",
    ).stdout
    entries = []
    for line in out.decode(errors="surrogateescape").split("\0"):  # names may hold newlines
        if line:
            path, size, mtime = line.rsplit("\t", 2)
            entries.append((path, int(size), mtime))
    return entries


def quiet_fingerprint(before: Listing, after: Listing | None, summary: dict) -> dict | None:
    """The fingerprint of what restic stored, from listings taken around its run; None
    unless nothing changed meanwhile and restic counted the same files and bytes."""
    if after is None or sorted(before) != sorted(after):
        return None
    fp = tree_fingerprint([(path, size) for path, size, _ in before])
    counted = (int(summary.get("total_files_processed", -1)),
               int(summary.get("total_bytes_processed", -1)))
    return fp if counted == (fp["files"], fp["bytes"]) else None
