"""What dump-based sources (PostgreSQL, MariaDB) share: the dump streams into restic while
a parser fingerprints the very bytes stored; the same parser reads a live re-dump (to
verify a recovery) or the stored dump (to check the repository), so the three agree by
construction."""

from __future__ import annotations

from collections.abc import Iterator

from drplan.sources.base import BackupResult, SourceContext, compare_dicts, drain, tee_lines


class SqlDump:
    consistency = ""

    def databases(self, ctx: SourceContext, container) -> list[str]:
        raise NotImplementedError

    def dump_stream(self, ctx: SourceContext, container, dbs: list[str]) -> Iterator[bytes]:
        raise NotImplementedError

    def parser(self):
        """A fresh parser with `line(bytes)`, `.dbs` and `.tables` (a TableHasher)."""
        raise NotImplementedError

    def _hashed(self, ctx: SourceContext, container):
        dbs = self.databases(ctx, container)
        parser = self.parser()
        return dbs, parser, tee_lines(self.dump_stream(ctx, container, dbs), parser.line)

    def backup(self, ctx: SourceContext) -> BackupResult:
        dbs, parser, stream = self._hashed(ctx, ctx.container())
        filename = f"{ctx.service}.{ctx.name}.sql"
        summary = ctx.repo.backup_stream(
            ctx.counted(stream),
            filename=filename,
            tags=ctx.tags("dump"),
            host=ctx.host,
            what=ctx.what,
        )
        return BackupResult(
            snapshot=summary["snapshot_id"],
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint={"databases": dbs, "tables": parser.tables.result()},
            path=f"/{filename}",
            consistency=self.consistency,
        )

    def fingerprint(self, ctx: SourceContext) -> dict:
        dbs, parser, stream = self._hashed(ctx, ctx.container())
        drain(stream)
        return {"databases": dbs, "tables": parser.tables.result()}

    def compare(self, expected: dict, actual: dict) -> list[str]:
        return compare_dicts(expected, actual)

    def stored_fingerprint(self, repo, record, **where) -> dict:
        """Re-parsed from the stored dump, in this process (no tool reads it)."""
        parser = self.parser()
        drain(tee_lines(repo.dump(record.snapshot, record.path, what="check"), parser.line))
        return {"databases": parser.dbs, "tables": parser.tables.result()}
