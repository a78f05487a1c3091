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
which the quiet case, by far the common one, does without. `drplan check` recomputes it
from the snapshot for every source of the newest run it samples.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.plan.compose import ComposeService
from drplan.sources import byhand
from drplan.sources import volume as vol
from drplan.sources.base import (
    MB,
    BackupResult,
    Detection,
    EngineDefaults,
    Procedure,
    ShellKit,
    SourceContext,
    SourceLoc,
    compare_dicts,
    image_basename,
)
from drplan.sources.split import restore_split
from drplan.sources.stores import find_store
from drplan.store.restic import snapshot_id

if TYPE_CHECKING:
    from drplan.store.manifest import SourceRecord



def tree_fingerprint(entries: list[tuple[str, int]]) -> dict:
    h = hashlib.sha256()
    total = 0
    for path, size in sorted(entries):
        h.update(f"{path}\t{size}\n".encode(errors="surrogateescape"))
        total += size
    return {"files": len(entries), "bytes": total, "tree": h.hexdigest()}


class Files(EngineDefaults):
    name = "files"
    summary = "Files of a volume: restic next to the data, in a helper (incremental)"
    consistency = "file-level, crash-consistent per file (live)"
    restore_bps = 150 * MB  # restic restore of a volume's files

    def source_problems(self, src: m.DataSource) -> list[tuple[SourceLoc, str]]:
        found: list[tuple[SourceLoc, str]] = []
        if not (src.volume or src.bind):
            found.append(
                ((), "a files source needs a `volume` or a `bind` (a host directory it copies)")
            )
        if src.volume and src.bind:
            found.append((("bind",), "a files source copies a `volume` or a `bind`, not both"))
        if src.databases:
            found.append((("databases",), "a files source has no databases"))
        return found

    def _volume(self, ctx: SourceContext) -> str:
        if not ctx.volume:
            raise OperationError("this data source names no volume", where=ctx.what)
        return ctx.volume

    def backup(self, ctx: SourceContext) -> BackupResult:
        if ctx.bind:
            if not vol.dir_exists(ctx.engine, ctx.bind, vol.labels_of(ctx)):
                raise OperationError(
                    f"host directory {ctx.bind} does not exist on the node of {ctx.engine.where}",
                    where=ctx.what,
                )
        elif not ctx.engine.volume_exists(self._volume(ctx)):
            raise OperationError(
                f"volume {self._volume(ctx)} does not exist on {ctx.engine.where}", where=ctx.what
            )
        argv = [
            "restic",
            *ctx.repo.option_args(),
            "backup",
            "--json",
            "--host",
            ctx.host,
            "--tag",
            ",".join(ctx.tags("files")),
        ]
        if ctx.parent:
            argv += [f"--parent={snapshot_id(ctx.parent)}"]
        else:
            # No parent of *this* source: without --force restic would pick the latest
            # snapshot with the same host and path (/volume), i.e. another source's, and
            # trust its metadata for files that merely look alike.
            argv += ["--force"]
        argv += [f"--exclude={pattern}" for pattern in ctx.spec.exclude]
        argv += ["--", vol.MOUNT]
        summary: dict = {}
        done = 0
        with vol.holding_source(ctx, repo=ctx.repo) as (c, env):
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
        entries = None if ctx.spec.exclude else quiet_entries(before, after, summary)
        if entries is None:
            entries = self.snapshot_entries(ctx.repo, snapshot)
        stats = {
            k: summary.get(k)
            for k in (
                "files_new",
                "files_changed",
                "files_unmodified",
                "data_added",
                "total_files_processed",
                "total_bytes_processed",
            )
        }
        halves = restore_split(entries)
        if halves:
            stats["restore_split"] = halves
        return BackupResult(
            snapshot=snapshot,
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint=tree_fingerprint(entries),
            path=vol.MOUNT,
            consistency=self.consistency,
            stats=stats,
        )

    def stored_fingerprint(self, repo, record, **where) -> dict:
        return self.snapshot_fingerprint(repo, record.snapshot)

    def snapshot_fingerprint(self, repo, snapshot: str) -> dict:
        return tree_fingerprint(self.snapshot_entries(repo, snapshot))

    def snapshot_entries(self, repo, snapshot: str) -> list[tuple[str, int]]:
        """(path under the volume, size) of every regular file the snapshot holds."""
        prefix = vol.MOUNT + "/"
        return [
            (n["path"][len(prefix) :], int(n.get("size", 0)))
            for n in repo.ls(snapshot)
            if n.get("type") == "file" and n["path"].startswith(prefix)
        ]

    def fingerprint(self, ctx: SourceContext) -> dict:
        with vol.holding_source(ctx) as (c, _):
            listed = _listing(ctx, c)
        return tree_fingerprint([(path, size) for path, size, _ in listed])

    def compare(self, expected: dict, actual: dict) -> list[str]:
        return compare_dicts(expected, actual)

    def is_empty(self, ctx: SourceContext) -> bool:
        if ctx.bind:
            return vol.is_empty_dir(ctx.engine, ctx.bind, vol.labels_of(ctx))
        return vol.is_empty(ctx.engine, self._volume(ctx), vol.labels_of(ctx))

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        """restic restore into the volume through a helper; a big volume whose backup
        recorded two halves is restored by two restic processes side by side (see
        `split`). Synced to disk before returning. A `bind` source goes to its host
        directory on the engine's node, created when missing."""
        if ctx.bind:
            vol.ensure_dir(ctx.engine, ctx.bind, vol.labels_of(ctx))
        else:
            ctx.engine.create_volume(self._volume(ctx))
        halves = ctx.backup_stats.get("restore_split") or []
        patterns = [posixpath.join(vol.MOUNT, p) for p in halves]
        shares = (
            [[f"--include={p}" for p in patterns], [f"--exclude={p}" for p in patterns]]
            if patterns
            else [[]]
        )
        with vol.holding_source(ctx, read_only=False, repo=ctx.repo) as (c, env):

            def restore(share: list[str]) -> None:
                ctx.engine.exec_run(
                    c,
                    [
                        "restic",
                        *ctx.repo.option_args(),
                        "restore",
                        "--target=/",
                        "--no-lock",
                        *share,
                        "--",
                        snapshot_id(snapshot),
                    ],
                    what=f"{ctx.what}: restic restore",
                    env=env,
                )

            with ThreadPoolExecutor(len(shares)) as pool:
                for done in [pool.submit(restore, share) for share in shares]:
                    done.result()  # the first failure, once both have ended
            # on disk before the journal records the step done (a resume skips it then)
            ctx.engine.exec_run(c, ["sync", "-f", vol.MOUNT], what=f"{ctx.what}: sync")

    # -- drplan init and runbook -------------------------------------------------------

    def detect(self, svc: ComposeService) -> Detection | None:
        """Stores with no native method in drplan (:mod:`drplan.sources.stores`): copied
        cold, and the reason says which store and what a live copy would risk."""
        found = find_store(svc)
        if found is None:
            return None
        store, why = found
        return Detection(
            "cold",
            f"{why}: {store.name}, no native dump in drplan ({store.risk})",
            strength=3 if why.startswith("image") else 2,
        )

    def guess_health(self, name: str, svc: ComposeService) -> tuple[dict[str, Any], str] | None:
        base = image_basename(svc.image)
        if "elasticsearch" in base or "opensearch" in base:
            return {
                "type": "http",
                "url": f"http://{name}:9200/_cluster/health",
                "body_contains": "status",
                "retries": 30,
            }, "HTTP /_cluster/health"
        if "cassandra" in base or "scylla" in base:
            return {"type": "tcp", "host": name, "port": 9042, "retries": 60}, "TCP 9042"
        return None

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        """Extract the snapshot into the empty volume: straight into its directory when
        the engine is on this host, else through a container of the service's image."""
        snap, path, fp = record.snapshot, record.path, record.fingerprint
        if spec.bind:
            return Procedure(
                f"Put the files of {byhand.what(service, source, record)} back into the "
                f"empty host directory {spec.bind} (or the directory this site's `paths` "
                f"maps it to) on the node of the engine, before the service starts "
                f"(snapshot {snap}: {fp.get('files')} files, {fp.get('bytes')} bytes).",
                [
                    (
                        "On that node: extract the snapshot into the directory",
                        f'D={kit.sh(spec.bind)}\nmkdir -p "$D"\n'
                        f'{kit.dump(snap, path)} | tar -x -C "$D" --numeric-owner '
                        "--strip-components=1\n",
                    )
                ],
            )
        volume = kit.volume(spec.volume or "")
        image = kit.image(service) or "IMAGE-WITH-TAR"
        # --mount type=volume: a name holding `/` or `:` cannot turn into a bind mount of
        # a host directory, as it could with -v NAME:/volume
        mount = kit.sh(f"--mount=type=volume,{csv_field('source=' + volume)},target=/volume")
        through = (
            f"{kit.dump(snap, path)} | docker run --rm -i --network none {mount} "
            f"--entrypoint tar -- {kit.sh(image)} "
            "-x -C /volume --numeric-owner --strip-components=1\n"
        )
        direct = (
            kit.mountpoint(volume) + f'{kit.dump(snap, path)} | tar -x -C "$MP" '
            "--numeric-owner --strip-components=1\n"
        )
        purpose = (
            f"Put the files of {byhand.what(service, source, record)} back into the empty "
            f"volume {volume} before the service starts (snapshot {snap}: {fp.get('files')} "
            f"files, {fp.get('bytes')} bytes)."
        )
        if not kit.local:
            return Procedure(
                purpose, [("Extract the snapshot into the volume through a container", through)]
            )
        return Procedure(
            purpose,
            [("Extract the snapshot into the volume (the engine is on this host)", direct)],
            alternatives=[("With a remote engine", "extract through a container", through)],
        )

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        """File count and the hash of paths and sizes, read from the volume's directory:
        only with an engine on this host."""
        if not kit.local or spec.bind:
            return ""
        fp = record.fingerprint
        return (
            kit.mountpoint(kit.volume(spec.volume or ""))
            + kit.expect('cd "$MP" && find . -type f | wc -l', fp.get("files"), "files")
            + kit.expect(
                "cd \"$MP\" && find . -type f -printf '%P\\t%s\\n' | LC_ALL=C sort | sha256sum "
                "| cut -d' ' -f1",
                fp.get("tree"),
                "paths and sizes",
            )
        )


def csv_field(value: str) -> str:
    """One field of docker's CSV-parsed --mount value: double-quoted when it holds a
    comma, a quote or a line break, so a name cannot add `type=bind` or `source=/`."""
    if any(ch in value for ch in ',"\r\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


ENGINE = SOURCE = Files()


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


def quiet_entries(
    before: Listing, after: Listing | None, summary: dict
) -> list[tuple[str, int]] | None:
    """(path, size) of what restic stored, from listings taken around its run; None
    unless nothing changed meanwhile and restic counted the same files and bytes."""
    if after is None or sorted(before) != sorted(after):
        return None
    entries = [(path, size) for path, size, _ in before]
    counted = (
        int(summary.get("total_files_processed", -1)),
        int(summary.get("total_bytes_processed", -1)),
    )
    return entries if counted == (len(entries), sum(s for _, s in entries)) else None
