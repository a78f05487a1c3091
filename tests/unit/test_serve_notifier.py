"""`drplan serve`'s notifications (drplan.serve.notify) through Apprise's real e-mail and
JSON-webhook plugins, against a real SMTP server (aiosmtpd) and a real HTTP receiver on
127.0.0.1: what arrives, what a dead or slow receiver does to the sender (nothing), and
that no URL or token reaches the daemon's log. `MailSink` and `HookSink` are also the
receivers of tests/integration/test_serve_notify.py."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from drplan.plan import model as m
from drplan.serve import notify
from drplan.serve.notify import Message, Notifier
from testbed.serve import free_port
from testbed.serve import wait_for as _wait_for
from tests.unit.plan_helpers import PLAN


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    return _wait_for(what, cond, timeout, every=0.05)


class MailSink:
    """A real SMTP server on 127.0.0.1 (no TLS) keeping every message; with `login`
    (user, password), it requires SMTP AUTH (LOGIN/PLAIN) before accepting mail."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[str] = []
        self.login = login
        self.port = free_port()
        auth = {"authenticator": self._authenticate, "auth_require_tls": False} if login else {}
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, auth_required=bool(login), **auth
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        given = (data.login.decode(), data.password.decode())
        self.logins.append(given[0])
        return AuthResult(success=given == self.login)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"

    def url(self, to: str = "ops@example.org") -> str:
        """The Apprise URL of plain SMTP on a custom port (`mailto://` is never TLS;
        `mailtos://` is, with `mode=starttls` or `mode=ssl`)."""
        user = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"mailto://{user}127.0.0.1:{self.port}?from=drplan@example.org&to={to}"

    def texts(self) -> list[str]:
        """Each message as subject + plain-text body."""
        out = []
        for msg in self.messages:
            part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
            out.append(f"{msg['Subject']}\n{part.get_content() if part else ''}")
        return out

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class HookSink:
    """A real HTTP server on 127.0.0.1 keeping every POSTed JSON document (`delay`: how
    long it takes to answer, to play a slow receiver)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(delay)
                sink.paths.append(self.path)
                sink.posts.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_plan(*entries: dict[str, Any]) -> m.Plan:
    doc = yaml.safe_load(PLAN)
    doc["notifications"] = list(entries)
    return m.Plan.model_validate(doc)


@pytest.fixture
def mail() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


@pytest.fixture
def hook() -> Iterator[HookSink]:
    with HookSink() as sink:
        yield sink


FAILED = Message("run_failed", "drplan: backup of campus failed", "repository unreachable", True)


def test_mail_and_webhook_arrive_with_title_body_and_type(mail, hook, monkeypatch, tmp_path):
    monkeypatch.setenv("T_MAIL", mail.url())
    monkeypatch.setenv("T_HOOK", hook.url("/drplan/hook"))
    plan = make_plan({"url": {"env": "T_MAIL"}}, {"url": {"env": "T_HOOK"}})
    n = Notifier()
    n.send(plan, tmp_path, FAILED, wait=True)
    assert n.sent == [("campus", "run_failed", True), ("campus", "run_failed", True)]
    (text,) = mail.texts()
    assert "backup of campus failed" in text and "repository unreachable" in text
    assert mail.messages[0]["To"] == "ops@example.org"
    (post,) = hook.posts
    assert hook.paths == ["/drplan/hook"]
    assert post["title"] == "drplan: backup of campus failed"
    assert "repository unreachable" in post["message"]
    assert post["type"] == "failure"
    n.send(plan, tmp_path, Message("drill", "drplan: drill of campus passed", "RTO 42s"), wait=True)
    assert hook.posts[-1]["type"] == "info" and "RTO 42s" in hook.posts[-1]["message"]


def test_authenticated_smtp_and_a_wrong_password(monkeypatch, tmp_path, daemon_log):
    with MailSink(login=("notifier", "m4il-Pa55")) as mail:
        monkeypatch.setenv("T_MAIL", mail.url())
        plan = make_plan({"url": {"env": "T_MAIL"}})
        n = Notifier()
        n.send(plan, tmp_path, FAILED, wait=True)
        assert n.sent == [("campus", "run_failed", True)] and len(mail.messages) == 1
        # cto: the SMTP socket timeout; a refused login otherwise waits out its 15 s
        monkeypatch.setenv("T_MAIL", mail.url().replace("m4il-Pa55", "wr0ng-Pa55") + "&cto=2")
        n.send(plan, tmp_path, FAILED, wait=True)  # refused by the server: logged, not raised
        assert n.sent[-1] == ("campus", "run_failed", False) and len(mail.messages) == 1
        assert mail.logins == ["notifier", "notifier"]
    text = daemon_log.text()
    assert "notifications[0].url not delivered" in text, text
    assert "wr0ng-Pa55" not in text and "m4il-Pa55" not in text, text


def test_only_subscribed_events_are_sent(hook, monkeypatch, tmp_path):
    monkeypatch.setenv("T_HOOK", hook.url())
    plan = make_plan({"url": {"env": "T_HOOK"}, "events": ["drill"]})
    n = Notifier()
    n.send(plan, tmp_path, FAILED, wait=True)
    assert n.sent == [] and hook.posts == []
    n.send(plan, tmp_path, Message("drill", "drill passed", ""), wait=True)
    assert n.sent == [("campus", "drill", True)]
    assert hook.posts[0]["message"].startswith("drill passed")  # an empty body: the title


def test_url_read_from_a_file_at_send_time(hook, tmp_path):
    secret = tmp_path / "notify.url"
    plan = make_plan({"url": {"file": "notify.url"}})
    n = Notifier()
    n.send(plan, tmp_path, FAILED, wait=True)  # no file yet: not delivered, no exception
    assert n.sent == [("campus", "run_failed", False)]
    secret.write_text(hook.url() + "\n")
    n.send(plan, tmp_path, FAILED, wait=True)
    assert n.sent[-1] == ("campus", "run_failed", True) and len(hook.posts) == 1


class DaemonLog(logging.Handler):
    """What `drplan serve`'s stderr would show: a handler on the root logger at debug
    level, as logging.basicConfig installs it (pytest's caplog also listens to
    non-propagating loggers, which the daemon's log never sees)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.name} {r.getMessage()}" for r in self.records)


@pytest.fixture
def daemon_log() -> Iterator[DaemonLog]:
    root = logging.getLogger()
    handler, level = DaemonLog(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_dead_receiver_never_raises_and_the_url_stays_out_of_the_log(
    monkeypatch, tmp_path, daemon_log
):
    token = "T0KEN5ecretXYZ"
    dead = free_port()  # nothing listens there
    monkeypatch.setenv("T_HOOK", f"json://hookuser:{token}@127.0.0.1:{dead}/hooks/{token}")
    plan = make_plan({"url": {"env": "T_HOOK"}})
    n = Notifier()
    n.send(plan, tmp_path, FAILED, wait=True)
    assert n.sent == [("campus", "run_failed", False)]
    text = daemon_log.text()
    assert "notifications[0].url not delivered" in text, text
    assert token not in text and "hookuser" not in text and f":{dead}/" not in text, text


def test_unknown_scheme_and_missing_variable_are_reported_by_reference(
    monkeypatch, tmp_path, daemon_log
):
    monkeypatch.setenv("T_BAD", "nosuchscheme://user:pa55word@example.org/x")
    monkeypatch.delenv("T_UNSET", raising=False)
    plan = make_plan({"url": {"env": "T_BAD"}}, {"url": {"env": "T_UNSET"}})
    n = Notifier()
    n.send(plan, tmp_path, FAILED, wait=True)
    assert n.sent == [("campus", "run_failed", False)] * 2
    text = daemon_log.text()
    assert "notifications[0].url not delivered: not a URL Apprise knows" in text, text
    assert "T_UNSET is not set" in text and "notifications[1].url" in text, text
    assert "pa55word" not in text and "nosuchscheme" not in text, text


def test_a_slow_receiver_delays_nothing(monkeypatch, tmp_path):
    with HookSink(delay=2.0) as slow:
        monkeypatch.setenv("T_HOOK", slow.url())
        n = Notifier()
        t0 = time.monotonic()
        n.send(make_plan({"url": {"env": "T_HOOK"}}), tmp_path, FAILED)
        assert time.monotonic() - t0 < 0.5  # the caller (a plan's worker) goes on at once
        wait_for("the slow delivery", lambda: n.sent)
        assert n.sent == [("campus", "run_failed", True)] and len(slow.posts) == 1


def test_a_failing_sender_is_logged_never_raised(monkeypatch, tmp_path, daemon_log):
    def boom(url: str, msg: Message) -> tuple[bool, str]:
        raise ConnectionResetError(url)  # an exception carrying the URL

    monkeypatch.setattr(notify, "_apprise_send", boom)
    monkeypatch.setenv("T_HOOK", "json://127.0.0.1:9/secret-path")
    n = Notifier()
    n.send(make_plan({"url": {"env": "T_HOOK"}}), tmp_path, FAILED, wait=True)
    assert n.sent == [("campus", "run_failed", False)]
    text = daemon_log.text()
    assert "ConnectionResetError" in text and "secret-path" not in text, text


@pytest.mark.parametrize(
    ("url", "gone"),
    [
        ("json://user:p%40ss@hooks.example.org:8443/a/b0123tok", ["p@ss", "p%40ss", "b0123tok"]),
        ("slack://TokenA/TokenB/TokenC/#ops", ["TokenA", "TokenB", "TokenC"]),
        ("mailtos://me:pw5678@mail.example.org?to=ops@example.org", ["pw5678", "ops@example.org"]),
        ("ntfy://ntfy.example.org/drplan-topic-42?priority=high", ["drplan-topic-42"]),
    ],
)
def test_redact_masks_every_piece_of_the_url(url, gone):
    said = f"A Connection error occurred sending to {url} ({' / '.join(gone)})"
    out = notify.redact(said, url)
    assert out.startswith("A Connection error occurred sending to ***")
    for piece in gone:
        assert piece not in out, out


def test_apprise_logs_never_reach_the_daemon_log(monkeypatch, tmp_path, daemon_log, hook):
    monkeypatch.setenv("T_HOOK", hook.url("/p/T0KEN5ecret"))
    Notifier().send(make_plan({"url": {"env": "T_HOOK"}}), tmp_path, FAILED, wait=True)
    assert hook.posts  # Apprise and urllib3 did log at debug level: the URL, the path
    assert "notified run_failed via notifications[0].url" in daemon_log.text()
    assert "T0KEN5ecret" not in daemon_log.text(), daemon_log.text()
    assert not [r for r in daemon_log.records if r.name.startswith(("apprise", "urllib3"))]
