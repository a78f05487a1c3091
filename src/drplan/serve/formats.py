"""How the dashboard writes times, durations, sizes and URLs (its template filters):
one time zone (UTC) for everyone reading the page, short durations for tables read under
stress, and no password of a repository URL on a page."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2

from drplan.plan.units import format_age, format_size
from drplan.serve import rpo


def when(ts: Any) -> str:
    """An epoch time as UTC text: one time zone for everyone reading the page."""
    if ts is None or isinstance(ts, jinja2.Undefined):
        return "—"
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return "—"


def duration(seconds: Any) -> str:
    """A short duration for tables read under stress (`95s`, `12min`, `3.5h`, `2.0d`)."""
    if seconds is None or isinstance(seconds, jinja2.Undefined):
        return "—"  # a value missing from a document
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(seconds):
        return "—"
    return format_age(seconds, "min")


def relative(ts: float | None, now: float) -> str:
    """`in 5min`, `12min ago`, `now`: what a person scanning the page wants first."""
    if ts is None:
        return "—"
    delta = ts - now
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def size(n: Any) -> str:
    if n is None or isinstance(n, jinja2.Undefined):
        return "—"
    try:
        value = float(n)
    except (TypeError, ValueError):
        return "—"
    return format_size(int(value))


def path_part(text: str) -> str:
    """A plan name as one URL path segment (a name is text, never a path)."""
    return quote(str(text), safe="")


def redact_url(url: str | None) -> str:
    """A repository URL without the password it may embed (`rest:https://u:p@host/`):
    no secret on a page."""
    if not url:
        return "—"
    prefix, sep, rest = url.partition(":")
    target = rest if sep and "://" in rest else url
    try:
        parts = urlsplit(target)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urlunsplit(parts._replace(netloc=netloc))
    return f"{prefix}:{clean}" if target is rest else clean


def parse_time(text: Any) -> float | None:
    """An ISO time from a document, or None when it is missing or not a time."""
    if not isinstance(text, str):
        return None
    try:
        return rpo.parse_time(text)
    except ValueError:
        return None
