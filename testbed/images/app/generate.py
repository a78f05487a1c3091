"""Writes deterministic data through the application's own connections (run inside the app).

  python3 /opt/app/generate.py --seed 1 --rows 1000 --files 50 --file-size 65536 --keys 500
  python3 /opt/app/generate.py --continuous --interval 0.2     # keep writing until killed
  python3 /opt/app/generate.py --touch-files 1                 # rewrite 1% of the files

Same seed and sizes give the same data on any engine, so two sites can be compared.
Rows get ids from --start (default: after the largest existing id).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import app

WORDS = [
    "exam",
    "course",
    "quiz",
    "grade",
    "ticket",
    "server",
    "backup",
    "restore",
    "network",
    "site",
    "crisis",
    "plan",
    "moodle",
    "glpi",
    "grafana",
    "volume",
    "swarm",
    "node",
    "disk",
    "login",
    "session",
    "upload",
    "report",
]


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def rows(seed: int, table: str, start: int, count: int) -> list[tuple]:
    rng = random.Random(f"{seed}:{table}:{start}")
    out = []
    for i in range(start, start + count):
        out.append(
            (
                i,
                rng.randrange(1, 100000),
                f"{table} {i}: {text(rng, 4)}",
                text(rng, rng.randrange(5, 60)),
                round(rng.uniform(0, 20), 2),
                f"2026-01-01T00:00:{i % 60:02d}+{i // 60}",
            )
        )
    return out


def next_id(cur, table: str) -> int:
    cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
    return int(cur.fetchone()[0]) + 1


def write_rows(seed: int, count: int, start: int | None) -> None:
    conn, ph = app.connect()
    app.create_schema(conn)
    cur = conn.cursor()
    for table in app.TABLES:
        first = start if start is not None else next_id(cur, table)
        for off in range(0, count, 1000):
            batch = rows(seed, table, first + off, min(1000, count - off))
            cur.executemany(
                f"INSERT INTO {table} (id, owner, title, body, score, created) "
                f"VALUES ({', '.join([ph] * 6)})",
                batch,
            )
            conn.commit()
    conn.close()


def file_bytes(seed: int, i: int, size: int) -> bytes:
    """Half incompressible bytes, half text: like uploads of documents and images."""
    rng = random.Random(f"{seed}:file:{i}")
    half = size // 2
    body = text(rng, size // 6 + 1).encode()[: size - half]
    return rng.randbytes(half) + body


def write_files(seed: int, count: int, size: int, start: int | None) -> None:
    root = app.files_dir()
    if not root:
        return
    first = start if start is not None else sum(len(f) for _, _, f in os.walk(root)) + 1
    for i in range(first, first + count):
        d = os.path.join(root, f"{i % 97:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"upload-{i:07d}.bin"), "wb") as fh:
            fh.write(file_bytes(seed, i, size))


def touch_files(percent: float, seed: int) -> int:
    """Rewrite `percent` % of the files (a deterministic choice), as users editing uploads."""
    root = app.files_dir()
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    rng = random.Random(f"{seed}:touch")
    chosen = rng.sample(paths, max(1, int(len(paths) * percent / 100))) if paths else []
    for p in chosen:
        size = os.path.getsize(p)
        with open(p, "r+b") as fh:
            fh.write(rng.randbytes(min(size, 4096)))
    return len(chosen)


def write_keys(seed: int, count: int, start: int | None) -> None:
    r = app.redis_client()
    if r is None:
        return
    rng = random.Random(f"{seed}:redis")
    first = start if start is not None else int(r.get(f"seq:{app.INSTANCE}") or 0) + 1
    pipe = r.pipeline(transaction=False)
    for i in range(first, first + count):
        pipe.hset(
            f"session:{app.INSTANCE}:{i}",
            mapping={
                "user": rng.randrange(1, 100000),
                "course": rng.randrange(1, 3000),
                "data": text(rng, 8),
            },
        )
        pipe.set(f"cache:{app.INSTANCE}:{i}", text(rng, 12))
    pipe.set(f"seq:{app.INSTANCE}", first + count - 1)
    pipe.execute()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=0, help="rows per table")
    ap.add_argument("--files", type=int, default=0)
    ap.add_argument("--file-size", type=int, default=64 * 1024)
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--start", type=int, default=None)
    ap.add_argument("--touch-files", type=float, default=0, metavar="PERCENT")
    ap.add_argument("--continuous", action="store_true")
    ap.add_argument("--interval", type=float, default=0.2)
    a = ap.parse_args()
    if a.continuous:
        n = 0
        while True:
            n += 1
            write_rows(a.seed + n, 20, None)
            write_keys(a.seed + n, 5, None)
            write_files(a.seed + n, 1, 4096, None)
            print(f"batch {n}", flush=True)
            time.sleep(a.interval)
    if a.rows:
        write_rows(a.seed, a.rows, a.start)
    if a.files:
        write_files(a.seed, a.files, a.file_size, a.start)
    if a.keys:
        write_keys(a.seed, a.keys, a.start)
    if a.touch_files:
        print(touch_files(a.touch_files, a.seed))


if __name__ == "__main__":
    main()
