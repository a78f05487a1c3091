"""Redis: a fresh RDB (BGSAVE, waited for) read from the server's own container and
stored in restic. An RDB is a point-in-time image of the whole dataset. On recovery the
file is put back into the fresh volume before Redis starts, and Redis loads it.
The fingerprint is the key count (read from the RDB's own header) and the file's hash.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
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
    LiveSigns,
    Procedure,
    ReadyProbe,
    ShellKit,
    SourceContext,
    compare_dicts,
    image_keyword,
    wait_until_ready,
)

if TYPE_CHECKING:
    from drplan.store.manifest import SourceRecord

IMAGES = ("redis", "valkey", "keydb")
SERVERS = ("redis-server", "valkey-server", "keydb-server")
READY_PROBE = ReadyProbe(
    [
        "sh",
        "-c",
        "command -v redis-cli >/dev/null || exit 127; "
        'out=$(redis-cli --no-auth-warning ping 2>&1); echo "$out"; '
        'case "$out" in PONG*|NOAUTH*) exit 0;; esac; exit 1',
    ],
    "redis-cli ping",
)
DATA_DIRS = ("/data", "/bitnami/redis/data")


class Redis(EngineDefaults):
    name = "redis"
    live_signs = LiveSigns(
        processes=SERVERS, files=(("dump.rdb",), ("appendonly.aof",), ("appendonlydir/",))
    )
    summary = "Redis: a fresh RDB (BGSAVE), put back into the volume before Redis starts"
    consistency = "point-in-time RDB snapshot (BGSAVE)"
    dump_needs_server = True
    restore_bps = 100 * MB  # an RDB file copy, then Redis loads it

    def _cli(self, ctx: SourceContext, container, *args: str) -> str:
        return ctx.engine.exec_run(
            container,
            ["redis-cli", "--no-auth-warning", *args],
            what=f"{ctx.what}: redis-cli {args[0]}",
        ).stdout.decode()

    def _info(self, ctx: SourceContext, container) -> dict[str, str]:
        out = self._cli(ctx, container, "INFO", "persistence")
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def _bgsave(self, ctx: SourceContext, container) -> None:
        before = self._info(ctx, container)
        saves = int(before.get("rdb_saves", "0").strip() or 0)
        last = int(self._cli(ctx, container, "LASTSAVE").strip() or 0)
        while True:
            out = self._cli(ctx, container, "BGSAVE").strip()
            if "already in progress" not in out:
                break
            time.sleep(0.2)
        while True:
            info = self._info(ctx, container)
            done = info.get("rdb_bgsave_in_progress", "1").strip() == "0"
            if done and (
                ("rdb_saves" in info and int(info["rdb_saves"].strip()) > saves)
                or int(self._cli(ctx, container, "LASTSAVE").strip() or 0) > last
            ):
                if info.get("rdb_last_bgsave_status", "ok").strip() != "ok":
                    raise OperationError(
                        "BGSAVE failed (rdb_last_bgsave_status is err)", where=ctx.what
                    )
                return
            if time.monotonic() > ctx.deadline:
                raise OperationError("BGSAVE did not finish in time", where=ctx.what)
            time.sleep(0.1)

    def _rdb_path(self, ctx: SourceContext, container) -> str:
        d = self._cli(ctx, container, "CONFIG", "GET", "dir").splitlines()
        f = self._cli(ctx, container, "CONFIG", "GET", "dbfilename").splitlines()
        return posixpath.join(d[1], f[1])

    def backup(self, ctx: SourceContext) -> BackupResult:
        container = ctx.container()
        self._bgsave(ctx, container)
        path = self._rdb_path(ctx, container)
        base = ctx.spec.path or posixpath.dirname(path)
        rel = posixpath.relpath(path, base)
        owner = (
            ctx.engine.exec_run(
                container, ["stat", "-c", "%u:%g", path], what=ctx.what, check=False
            )
            .stdout.decode()
            .strip()
        )
        digest = hashlib.sha256()
        head = bytearray()

        def watched():
            for chunk in ctx.engine.exec_out(
                container, ["cat", path], what=f"{ctx.what}: cat {path}"
            ):
                digest.update(chunk)
                if len(head) < 1 << 16:
                    head.extend(chunk[: (1 << 16) - len(head)])
                yield chunk

        filename = f"{ctx.service}.{ctx.name}.rdb"
        summary = ctx.repo.backup_stream(
            ctx.counted(watched()),
            filename=filename,
            tags=ctx.tags("rdb"),
            host=ctx.host,
            what=ctx.what,
        )
        return BackupResult(
            snapshot=summary["snapshot_id"],
            bytes=int(summary.get("total_bytes_processed", 0)),
            fingerprint={
                "keys": rdb_keys(bytes(head)),
                "sha256": digest.hexdigest(),
                "file": rel,
                "owner": owner if ":" in owner else "",
            },
            path=f"/{filename}",
            consistency=self.consistency,
        )

    def wait_ready(self, ctx: SourceContext, deadline: float) -> None:
        """PONG (or NOAUTH: the server is up, a password guards it) from redis-cli in the
        container; while Redis loads the restored RDB it answers LOADING instead."""
        wait_until_ready(ctx, READY_PROBE, deadline)

    def fingerprint(self, ctx: SourceContext) -> dict:
        container = ctx.container()
        out = self._cli(ctx, container, "INFO", "keyspace")
        keys = 0
        for line in out.splitlines():
            if line.startswith("db0:"):
                keys = int(line.split("keys=")[1].split(",")[0])
        return {"keys": keys}

    def compare(self, expected: dict, actual: dict) -> list[str]:
        keys = ["keys"] + (["sha256"] if "sha256" in actual else [])
        return compare_dicts({k: expected.get(k) for k in keys}, {k: actual.get(k) for k in keys})

    def stored_fingerprint(self, repo, record, **where) -> dict:
        digest = hashlib.sha256()
        head = bytearray()
        for chunk in repo.dump(record.snapshot, record.path, what="check"):
            digest.update(chunk)
            if len(head) < 1 << 16:
                head.extend(chunk[: (1 << 16) - len(head)])
        return {"keys": rdb_keys(bytes(head)), "sha256": digest.hexdigest()}

    def is_empty(self, ctx: SourceContext) -> bool:
        return vol.is_empty(ctx.engine, ctx.volume or "", vol.labels_of(ctx))

    def restore(self, ctx: SourceContext, snapshot: str, path: str, fingerprint: dict) -> None:
        if not ctx.volume:
            raise OperationError("a Redis source needs `volume` to be restored", where=ctx.what)
        vol.put_file(
            ctx,
            fingerprint.get("file") or "dump.rdb",
            ctx.counted(ctx.repo.dump(snapshot, path, what=ctx.what)),
            owner=fingerprint.get("owner", ""),
        )

    # -- drplan init and runbook -------------------------------------------------------

    def detect(self, svc: ComposeService) -> Detection | None:
        """The image's name (redis, valkey, keydb as whole words: not `redis_exporter`,
        `redisinsight` or `redis-commander`), else the server run by its command or
        entrypoint (a custom image running `redis-server`)."""
        found = image_keyword(svc, IMAGES)
        if found is None:
            run = " ".join(
                str(part)
                for value in (svc.entrypoint, svc.command)
                for part in (value if isinstance(value, list) else [value])
                if part is not None
            )
            server = next((s for s in SERVERS if s in run.split() or f"/{s}" in run), None)
            if server:
                found = Detection("dump", f"its command runs {server}", strength=2)
        return found

    def data_dirs(self, svc: ComposeService) -> tuple[str, ...]:
        return DATA_DIRS

    def guess_health(self, name: str, svc: ComposeService) -> tuple[dict[str, Any], str]:
        return {
            "type": "command",
            "command": ["redis-cli", "ping"],
            "expect_output": "PONG",
            "retries": 30,
        }, "redis-cli ping"

    def runbook_restore(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> Procedure:
        return byhand.put_file(
            kit,
            service,
            source,
            spec,
            record,
            kind="the RDB file, which Redis loads",
            default_file="dump.rdb",
        )

    def runbook_verify(
        self, kit: ShellKit, service: str, source: str, spec: m.DataSource, record: SourceRecord
    ) -> str:
        keys = record.fingerprint.get("keys")
        if keys is None:
            return ""
        return kit.container(service) + kit.expect(
            'docker exec "$C" redis-cli --no-auth-warning DBSIZE', keys, "keys"
        )


def _length(data: bytes, pos: int) -> tuple[int, int, bool]:
    """An RDB length: (value, new position, is_special_encoding)."""
    b = data[pos]
    kind = b >> 6
    if kind == 0:
        return b & 0x3F, pos + 1, False
    if kind == 1:
        return ((b & 0x3F) << 8) | data[pos + 1], pos + 2, False
    if kind == 2:
        if b == 0x80:
            return int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5, False
        return int.from_bytes(data[pos + 1 : pos + 9], "big"), pos + 9, False
    return b & 0x3F, pos + 1, True


def _skip_string(data: bytes, pos: int) -> int:
    n, pos, special = _length(data, pos)
    if not special:
        return pos + n
    if n in (0, 1, 2):  # integers of 1, 2, 4 bytes
        return pos + (1, 2, 4)[n]
    if n == 3:  # LZF: compressed length, then uncompressed length
        clen, pos, _ = _length(data, pos)
        _, pos, _ = _length(data, pos)
        return pos + clen
    raise ValueError(f"unknown RDB string encoding {n}")


def rdb_keys(head: bytes) -> int | None:
    """Keys of database 0, read from the RDB's RESIZEDB record (None if not found)."""
    if not head.startswith(b"REDIS"):
        return None
    pos = 9
    try:
        while pos < len(head):
            op = head[pos]
            pos += 1
            if op == 0xFA:  # AUX key value
                pos = _skip_string(head, pos)
                pos = _skip_string(head, pos)
            elif op == 0xFE:  # SELECTDB
                db, pos, _ = _length(head, pos)
                if db != 0:
                    return 0
            elif op == 0xFB:  # RESIZEDB
                keys, pos, _ = _length(head, pos)
                return keys
            elif op == 0xFF:  # EOF: an empty dataset
                return 0
            else:
                return None
    except (IndexError, ValueError):
        return None
    return None


ENGINE = SOURCE = Redis()
