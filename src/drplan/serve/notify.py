"""Telling people: each plan's `notifications` entries, sent through Apprise.

Apprise speaks e-mail, Mattermost, Slack, Teams, ntfy, generic JSON webhooks and a hundred
more behind one URL scheme, so drplan writes none of those protocols. The URL carries
tokens and passwords, so the plan names it as a secret reference, resolved when sending
and never logged. Sending happens in a thread of its own: a slow or dead mail server
delays no backup, and a failure to notify is logged (without the URL), never fatal.

Apprise is imported on the first notification only: a daemon with none configured does
not pay for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from drplan import secrets
from drplan.errors import DrplanError
from drplan.plan import model as m

log = logging.getLogger("drplan.serve")


@dataclass(frozen=True)
class Message:
    event: str  # one of model.NOTIFICATION_EVENTS
    title: str
    body: str
    failure: bool = False  # sent as a failure (Apprise's notify type)


class Notifier:
    """Sends a plan's messages to the entries that subscribe to their event."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.sent: list[tuple[str, str, bool]] = []  # (plan, event, delivered), newest last
        self._lock = threading.Lock()

    def send(self, plan: m.Plan, base: Path, msg: Message, *, wait: bool = False) -> None:
        targets = [(i, n) for i, n in enumerate(plan.notifications) if msg.event in n.events]
        if not targets:
            return
        thread = threading.Thread(
            target=self._deliver,
            args=(plan, base, msg, targets),
            name=f"drplan-notify-{msg.event}",
            daemon=True,
        )
        thread.start()
        if wait:
            thread.join(self.timeout)

    def _deliver(
        self, plan: m.Plan, base: Path, msg: Message, targets: list[tuple[int, m.Notification]]
    ) -> None:
        for i, entry in targets:
            where = f"notifications[{i}].url"
            try:
                url = secrets.resolve(entry.url, base=base, what=where)
            except DrplanError as exc:
                log.warning("plan %s: cannot notify (%s): %s", plan.stack.name, where, exc)
                self._note(plan, msg, False)
                continue
            delivered = False
            try:
                import apprise

                ap = apprise.Apprise()
                if not ap.add(url):
                    log.warning("plan %s: %s is not a URL Apprise knows", plan.stack.name, where)
                else:
                    kind = apprise.NotifyType.FAILURE if msg.failure else apprise.NotifyType.INFO
                    delivered = bool(ap.notify(title=msg.title, body=msg.body, notify_type=kind))
                    if not delivered:
                        log.warning(
                            "plan %s: notification %s via %s was not delivered",
                            plan.stack.name,
                            msg.event,
                            where,
                        )
            except Exception as exc:  # a notification must never take the daemon down
                log.warning(
                    "plan %s: notification %s via %s failed: %s",
                    plan.stack.name,
                    msg.event,
                    where,
                    type(exc).__name__,
                )
            self._note(plan, msg, delivered)

    def _note(self, plan: m.Plan, msg: Message, delivered: bool) -> None:
        with self._lock:
            self.sent.append((plan.stack.name, msg.event, delivered))
            del self.sent[:-200]
