"""SQLite: an online backup with SQLite's own backup API (`sqlite3 DB .backup`), taken in a
helper container on the volume's engine — never a copy of a file being written. The
fingerprint is SQLite's content hash (`.sha3sum`, independent of page layout) and the row
count of every table.
"""

from __future__ import annotations

import posixpath

from drplan.errors import OperationError
from drplan.sources import volume as vol
from drplan.sources.base import BackupResult, SourceContext, compare_dicts

TMP = "/tmp/drplan-backup.sqlite"
# How long a sqlite3 call waits on a lock held by the service (a WAL checkpoint, a write
# transaction) before failing with "database is locked"; SQLite's default is not to wait.
BUSY_TIMEOUT_MS = 60_000


def sqlite3(db: str, *args: str, readonly: bool = True) -> list[str]:
    """The sqlite3 command line for `db`, waiting on locks instead of failing at once."""
    ro = ["-readonly"] if readonly else []
    return ["sqlite3", *ro, "-batch", "-noheader", "-cmd", f".timeout {BUSY_TIMEOUT_MS}", db, *args]


class SQLite:
    consistency = "transactional: SQLite online backup API"

    def _rel(self, ctx: SourceContext) -> str:
        if not ctx.spec.path or not ctx.volume:
            raise OperationError(
                "a SQLite source needs `volume` and `path` (the database file)", where=ctx.what
            )
        return ctx.mount_relative(ctx.spec.path)

    def _fingerprint_file(self, ctx: SourceContext, c, db: str) -> dict:
        run = ctx.engine.exec_run
        tables = (
            run(
                c,
                sqlite3(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1"),
                what=f"{ctx.what}: sqlite3",
            )
            .stdout.decode()
            .split()
        )
        counts = {}
        for t in tables:
            n = run(
                c,
                sqlite3(db, f'SELECT count(*) FROM "{t}"'),
                what=f"{ctx.what}: sqlite3",
            ).stdout
            counts[t] = int(n.strip() or 0)
        sha = (
            run(c, sqlite3(db, ".sha3sum"), what=f"{ctx.what}: sqlite3 .sha3sum")
            .stdout.decode()
            .strip()
        )
        return {"tables": counts, "sha3": sha}

    def backup(self, ctx: SourceContext) -> BackupResult:
        rel = self._rel(ctx)
        src = posixpath.join(vol.MOUNT, rel)
        filename = f"{ctx.service}.{ctx.name}.sqlite"
        # read-write: a WAL database needs its -shm file even to be read
        with vol.holding(ctx.engine, ctx.volume, labels=vol.labels_of(ctx), read_only=False) as (
            c,
            _,
        ):
            ctx.engine.exec_run(
                c,
                sqlite3(src, f".backup {TMP}", readonly=False),
                what=f"{ctx.what}: sqlite3 .backup",
            )
            fp = self._fingerprint_file(ctx, c, TMP)
            owner = ctx.engine.exec_run(c, ["stat", "-c", "%u:%g", src], what=ctx.what).stdout
            summary = ctx.repo.backup_stream(
                ctx.counted(ctx.engine.exec_out(c, ["cat", TMP], what=f"{ctx.what}: cat")),
                filename=filename,
                tags=ctx.tags("sqlite"),
                host=ctx.host,
                what=ctx.what,
            )
        fp["file"] = rel
        fp["owner"] = owner.decode().strip()
        return BackupResult(
            snapshot=summary["snapshot_id"],
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint=fp,
            path=f"/{filename}",
            consistency=self.consistency,
        )

    def fingerprint(self, ctx: SourceContext) -> dict:
        src = posixpath.join(vol.MOUNT, self._rel(ctx))
        with vol.holding(ctx.engine, ctx.volume, labels=vol.labels_of(ctx), read_only=False) as (
            c,
            _,
        ):
            return self._fingerprint_file(ctx, c, src)

    def compare(self, expected: dict, actual: dict) -> list[str]:
        keep = ("tables", "sha3")
        return compare_dicts({k: expected.get(k) for k in keep}, {k: actual.get(k) for k in keep})

    def stored_fingerprint(self, repo, record) -> dict:
        import subprocess
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".sqlite") as tmp:
            for chunk in repo.dump(record.snapshot, record.path, what="check"):
                tmp.write(chunk)
            tmp.flush()

            def q(*args: str) -> str:
                return subprocess.run(
                    sqlite3(tmp.name, *args),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()

            tables = q("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1").split()
            counts = {t: int(q(f'SELECT count(*) FROM "{t}"') or 0) for t in tables}
            return {"tables": counts, "sha3": q(".sha3sum")}

    def is_empty(self, ctx: SourceContext) -> bool:
        return vol.is_empty(ctx.engine, ctx.volume or "", vol.labels_of(ctx))

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        vol.put_file(
            ctx,
            self._rel(ctx),
            ctx.counted(ctx.repo.dump(snapshot, path, what=ctx.what)),
            owner=fingerprint.get("owner", ""),
            drop=("-wal", "-shm"),
        )


SOURCE = SQLite()
