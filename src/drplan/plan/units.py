"""Durations (``30s``, ``15m``, ``2h``, ``1d``, ``1h30m``) and sizes (``10GiB``, ``500MB``).

Objectives, schedules and timeouts are written by humans in a crisis-friendly form; the
rest of drplan only ever sees seconds (float) and bytes (int).
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_FULL = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "p": 2**50,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP](i?[bB])?|[bB]|[kKmMgGtTpP][bB])?\s*$"


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1h30m"``.

    Raises ``ValueError`` with a message meant for the plan's author.
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like 30s, 15m, 2h, 1d")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a duration must be a finite, non-negative number of seconds")
        return float(value)
    if isinstance(value, str):
        text = re.sub(r"\s+", "", value).lower()
        if text and _DURATION_FULL.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
            if math.isfinite(seconds):
                return seconds
        raise ValueError(
            f"bad duration {value[:40]!r}: use a number of seconds or e.g. 30s, 15m, 2h, 1d, 1h30m"
        )
    raise ValueError("a duration must be a number of seconds or a string like 30s, 15m, 2h, 1d")


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"10GiB"``, ``"500MB"``, ``"2G"`` (bare K/M/G/T are binary)."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like 500MB, 10GiB")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a size must be a finite, non-negative number of bytes")
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.fullmatch(value.strip())
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
        raise ValueError(
            f"bad size {value[:40]!r}: use a number of bytes or e.g. 500MB, 10GiB, 2TB"
        )
    raise ValueError("a size must be a number of bytes or a string like 500MB, 10GiB")


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``1h 2m 5s``; short and stable, for tables read under stress."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f}s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return " ".join(parts)


def format_age(seconds: float, minute: str = "m") -> str:
    """``95`` → ``95s``, ``750`` → ``12m``, ``12600`` → ``3.5h``, ``172800`` → ``2.0d``:
    one number and a unit, for ages and durations in tables (`minute`: the unit's name,
    `min` where `m` could be read as months)."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}{minute}"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_size(n: int | None) -> str:
    """``10737418240`` → ``10.0 GiB``."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
