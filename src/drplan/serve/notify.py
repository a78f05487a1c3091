"""Telling people: each plan's `notifications` entries, sent through Apprise.

Apprise speaks e-mail, Mattermost, Slack, Teams, ntfy, generic JSON webhooks and a hundred
more behind one URL scheme, so drplan writes none of those protocols. The URL carries
tokens and passwords, so the plan names it as a secret reference, resolved when sending
and never logged. Sending happens in a thread of its own: a slow or dead mail server
delays no backup, and a failure to notify is logged (without the URL), never fatal.

Apprise logs through its own logger, and at debug level it writes the endpoints it posts
to (a Slack or Teams token is in the path). Its records therefore never reach drplan's
handlers as they are: they are captured per sending thread, and the gist of a failure is
logged by drplan with every piece of the URL masked.

Apprise is imported on the first notification only: a daemon with none configured does
not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from drplan import secrets
from drplan.plan import model as m

log = logging.getLogger("drplan.serve")

MASK = "***"
_URL_PIECES = re.compile(r"[/:@#,\s]+")
_MIN_PIECE = 4  # shorter pieces ("to", "443") say nothing secret and mask too much text


@dataclass(frozen=True)
class Message:
    event: str  # one of model.NOTIFICATION_EVENTS
    title: str
    body: str
    failure: bool = False  # sent as a failure (Apprise's notify type)


def redact(text: str, url: str) -> str:
    """`text` with the URL and every piece of it (user, password, host, token, path
    segment, query value, raw or %-decoded) replaced by a mask: what Apprise says about a
    failure is worth logging, the URL it may quote is not."""
    _scheme, sep, rest = url.partition("://")
    rest = rest if sep else url
    where, _, query = rest.partition("?")
    pieces = {url, unquote(url), rest, unquote(rest), where, unquote(where)}
    values = [kv.partition("=")[2] for kv in re.split(r"[&;]", query)]
    for piece in [*_URL_PIECES.split(where), *values]:
        pieces.update({piece, unquote(piece), unquote(piece.replace("+", " "))})
    for piece in sorted((p for p in pieces if len(p) >= _MIN_PIECE), key=len, reverse=True):
        text = text.replace(piece, MASK)
    return text


class _Capture(logging.Handler):
    """Collects the `apprise` logger's records of the sending thread (one buffer per
    thread, so two sends at once do not mix their diagnostics)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(self.local, "lines", None)
        if lines is not None:
            # a malformed third-party record is dropped, never raised
            with contextlib.suppress(Exception):
                lines.append(record.getMessage())

    def start(self) -> None:
        self.local.lines = []

    def stop(self) -> list[str]:
        lines: list[str] = getattr(self.local, "lines", None) or []
        self.local.lines = None
        return lines


_capture = _Capture()
_capture_installed = threading.Lock()


def _install_capture() -> None:
    """Route the `apprise` logger to the capture only (no propagation to the root
    logger that `drplan serve` writes to stderr), once per process; keep urllib3 above
    debug."""
    with _capture_installed:
        logger = logging.getLogger("apprise")
        if _capture not in logger.handlers:
            logger.addHandler(_capture)
            logger.propagate = False
            logger.setLevel(logging.WARNING)
        # urllib3 (under Apprise's HTTP plugins) logs each request line at debug level,
        # and a webhook's path is its token
        pool = logging.getLogger("urllib3")
        if pool.getEffectiveLevel() < logging.INFO:
            pool.setLevel(logging.INFO)


class Notifier:
    """Sends a plan's messages to the entries that subscribe to their event."""

    def __init__(self, timeout: float = 30.0) -> None:
        # how long `send(wait=True)` waits for the delivery thread; each Apprise plugin
        # also has its own socket timeouts (4 s for HTTP, 15 s to connect to SMTP)
        self.timeout = timeout
        self.sent: list[tuple[str, str, bool]] = []  # (plan, event, delivered), newest last
        self._lock = threading.Lock()

    def send(self, plan: m.Plan, base: Path, msg: Message, *, wait: bool = False) -> None:
        """Deliver `msg` to the plan's subscribed entries in a thread; never raises."""
        targets = [(i, n) for i, n in enumerate(plan.notifications) if msg.event in n.events]
        if not targets:
            return
        try:
            thread = threading.Thread(
                target=self._deliver,
                args=(plan, base, msg, targets),
                name=f"drplan-notify-{msg.event}",
                daemon=True,
            )
            thread.start()
        except RuntimeError as exc:  # no thread left: the daemon's jobs matter more
            log.warning("plan %s: cannot notify %s: %s", plan.stack.name, msg.event, exc)
            return
        if wait:
            thread.join(self.timeout)

    def _deliver(
        self, plan: m.Plan, base: Path, msg: Message, targets: list[tuple[int, m.Notification]]
    ) -> None:
        for i, entry in targets:
            where = f"notifications[{i}].url"
            delivered = False
            try:
                delivered = self._deliver_one(plan, base, msg, entry, where)
            except Exception as exc:  # a notification must never take the daemon down
                log.warning(
                    "plan %s: notification %s via %s failed: %s",
                    plan.stack.name,
                    msg.event,
                    where,
                    type(exc).__name__,
                )
            self._note(plan, msg, delivered)

    def _deliver_one(
        self, plan: m.Plan, base: Path, msg: Message, entry: m.Notification, where: str
    ) -> bool:
        name = plan.stack.name
        try:
            url = secrets.resolve(entry.url, base=base, what=where)
        except Exception as exc:  # InputError names the reference, never its value
            log.warning("plan %s: cannot notify (%s): %s", name, where, exc)
            return False
        _install_capture()
        _capture.start()
        try:
            ok, why = _apprise_send(url, msg)
        finally:
            said = _capture.stop()
        if ok:
            log.info("plan %s: notified %s via %s", name, msg.event, where)
            return True
        detail = why or (redact(said[-1], url) if said else "no answer")
        log.warning(
            "plan %s: notification %s via %s not delivered: %s", name, msg.event, where, detail
        )
        return False

    def _note(self, plan: m.Plan, msg: Message, delivered: bool) -> None:
        with self._lock:
            self.sent.append((plan.stack.name, msg.event, delivered))
            del self.sent[:-200]


def _apprise_send(url: str, msg: Message) -> tuple[bool, str | None]:
    """One URL, one message, through Apprise. Returns (delivered, why not: None when
    the plugin's own words, captured from its log, say it better)."""
    import apprise

    ap = apprise.Apprise()
    if not ap.add(url):
        return False, "not a URL Apprise knows (check its scheme and form)"
    kind: Any = apprise.NotifyType.FAILURE if msg.failure else apprise.NotifyType.INFO
    body = f"{msg.body.strip() or msg.title}\n\n-- drplan serve on {socket.gethostname()}"
    result = ap.notify(title=msg.title, body=body, notify_type=kind)
    return bool(result), None
