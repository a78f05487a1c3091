"""Sharing one volume's restore between two restic processes.

restic's restorer leaves part of the machine idle (restic 0.18 keeps about one core busy,
0.14 about 1.4 of 2): two `restic restore` of the same snapshot, one with `--include` of about
half the bytes and one with `--exclude` of the same paths, finish sooner than one. The
halves are chosen at backup time, from the listing the fingerprint is made of, and kept in
the run's manifest (the source's `stats.restore_split`), so the restore needs no extra
pass over the snapshot. Everything the first process does not take, the second does: a
split can make a restore slower, never incomplete.
"""

from __future__ import annotations

import os

from drplan.errors import InputError

# Below this, the second process's start (a key derivation, the index) costs more than
# it saves. DRPLAN_RESTORE_SPLIT_MIN_BYTES overrides it (0: never split).
MIN_BYTES = 256 << 20
MIN_BYTES_ENV = "DRPLAN_RESTORE_SPLIT_MIN_BYTES"
# restic matches every path it visits against every pattern: keep patterns x files small.
MAX_MATCHES = 5_000_000
MAX_PATTERNS = 64
# restic's patterns are globs; a name holding one of these would need escaping.
UNSAFE = frozenset("*?[]\\\n")


def split_floor() -> int:
    """The size from which a volume's restore is split (0: never)."""
    raw = os.environ.get(MIN_BYTES_ENV, "").strip()
    if not raw:
        return MIN_BYTES
    if not raw.isdigit():
        raise InputError(f"{MIN_BYTES_ENV}={raw!r} is not a number of bytes", where="environment")
    return int(raw)


def restore_split(entries: list[tuple[str, int]], min_bytes: int | None = None) -> list[str] | None:
    """Paths (relative to the volume) holding 35-65 % of its bytes, or None.

    Starts from the volume's top-level entries and descends into a directory as long as
    it holds most of the bytes (one `filedir/` holding a whole Moodle data volume).
    """
    floor = split_floor() if min_bytes is None else min_bytes
    total = sum(size for _, size in entries)
    if not entries or floor <= 0 or total < floor:
        return None
    limit = min(MAX_PATTERNS, MAX_MATCHES // len(entries))
    prefix = ""
    for _ in range(8):
        units, dirs = _children(entries, prefix)
        if not units:
            return None
        biggest = max(units, key=units.__getitem__)
        if units[biggest] > 0.65 * total and biggest in dirs:
            prefix = biggest
            continue
        break
    half, chosen, taken = total / 2, [], 0
    for unit in sorted(units, key=lambda u: (-units[u], u)):
        if taken + units[unit] <= half * 1.1:
            chosen.append(unit)
            taken += units[unit]
    if not 0.35 * total <= taken <= 0.65 * total or len(chosen) > limit:
        return None
    if any(UNSAFE & set(path) for path in chosen):
        return None
    return sorted(chosen)


def _children(entries: list[tuple[str, int]], prefix: str) -> tuple[dict[str, int], set[str]]:
    """Bytes under each child of directory `prefix` ("" = the volume), and which children
    are directories."""
    units: dict[str, int] = {}
    dirs: set[str] = set()
    start = prefix + "/" if prefix else ""
    for path, size in entries:
        if not path.startswith(start):
            continue
        head, sep, _ = path[len(start) :].partition("/")
        child = start + head
        units[child] = units.get(child, 0) + size
        if sep:
            dirs.add(child)
    return units, dirs
