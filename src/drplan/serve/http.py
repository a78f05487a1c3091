"""The daemon's HTTP side: /metrics, /healthz, the dashboard, and a few actions.

The standard library's threading HTTP server is enough for a handful of server-rendered
pages and a scrape every few seconds, and adds no framework to a DR tool's footprint.

Access: bound to localhost by default. With a token (`--token-env`/`--token-file`),
every request must carry it (`Authorization: Bearer TOKEN`, or the `drplan_token`
cookie the login form sets), so the daemon can be exposed; behind a reverse proxy that
authenticates, `--proxy-auth-header X-Forwarded-User` trusts that header instead.
Actions (run a job now, pause, resume) are POST requests and are refused without the
token or the proxy's header, even on localhost: reading is harmless, acting is not.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from drplan.serve import dashboard, metrics

if TYPE_CHECKING:
    from drplan.serve.daemon import Daemon

log = logging.getLogger("drplan.serve")
COOKIE = "drplan_token"
ACTIONS = ("run", "pause", "resume")


class Access:
    """Who may read and who may act."""

    def __init__(self, token: str | None, proxy_header: str | None, local_only: bool) -> None:
        self.token = token
        self.proxy_header = proxy_header
        self.local_only = local_only

    def authenticated(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.proxy_header and handler.headers.get(self.proxy_header):
            return True
        if not self.token:
            return False
        given = None
        auth = handler.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer ") :].strip()
        else:
            cookie = SimpleCookie(handler.headers.get("Cookie", ""))
            if COOKIE in cookie:
                given = cookie[COOKIE].value
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def may_read(self, handler: BaseHTTPRequestHandler) -> bool:
        """Reading needs nothing on localhost without a token; otherwise credentials."""
        if self.token is None and self.proxy_header is None:
            return self.local_only
        return self.authenticated(handler)


def make_handler(daemon: Daemon, access: Access) -> type[BaseHTTPRequestHandler]:
    registry = metrics.registry(daemon)

    class Handler(BaseHTTPRequestHandler):
        server_version = "drplan"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s %s", self.address_string(), format % args)

        def send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            # the pages use no script, no external resource, forms to this origin only
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                "form-action 'self'; frame-ancestors 'none'",
            )
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def text(self, status: int, message: str) -> None:
            self.send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            if path == "/healthz":
                body = json.dumps({"up": True, "plans": [w.name for w in daemon.workers]})
                self.send(200, body.encode(), "application/json")
                return
            if path == "/login":
                self.send(200, dashboard.login_page().encode(), dashboard.HTML)
                return
            if not access.may_read(self):
                if path.startswith("/metrics") or path.startswith("/api/"):
                    self.text(HTTPStatus.UNAUTHORIZED, "unauthorized: a token is needed")
                else:
                    self.send(303, b"", "text/plain", {"Location": "/login"})
                return
            if path == "/metrics":
                self.send(200, metrics.render(registry), metrics.CONTENT_TYPE)
                return
            if path == "/api/plans":
                body = json.dumps(dashboard.api_plans(daemon), default=str)
                self.send(200, body.encode(), "application/json")
                return
            page = dashboard.page(daemon, path, parse_qs(url.query))
            if page is None:
                self.text(HTTPStatus.NOT_FOUND, f"not found: {path}")
                return
            status, ctype, body = page
            self.send(status, body, ctype)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            parts = [p for p in unquote(url.path).split("/") if p]
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            if parts == ["login"]:
                token = (form.get("token") or [""])[0]
                if access.token and hmac.compare_digest(token.encode(), access.token.encode()):
                    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                    self.send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
                else:
                    self.text(HTTPStatus.UNAUTHORIZED, "unauthorized: wrong token")
                return
            if not access.authenticated(self):
                self.text(
                    HTTPStatus.FORBIDDEN,
                    "forbidden: actions need the daemon's token (Authorization: Bearer) "
                    "or the reverse proxy's authentication",
                )
                return
            # /plans/NAME/run/JOB, /plans/NAME/pause, /plans/NAME/resume
            if len(parts) >= 3 and parts[0] == "plans" and parts[2] in ACTIONS:
                name, action = parts[1], parts[2]
                if daemon.worker(name) is None:
                    self.text(HTTPStatus.NOT_FOUND, f"no plan {name!r}")
                    return
                if action == "run":
                    job = parts[3] if len(parts) > 3 else ""
                    if not daemon.request(name, job):
                        self.text(HTTPStatus.BAD_REQUEST, f"unknown job {job!r}")
                        return
                else:
                    daemon.state.set_paused(name, action == "pause")
                    worker = daemon.worker(name)
                    if worker is not None:
                        worker.wake.set()
                log.info("plan %s: %s %s asked over HTTP", name, action, "/".join(parts[3:]))
                self.send(303, b"", "text/plain", {"Location": f"/plans/{name}"})
                return
            self.text(HTTPStatus.NOT_FOUND, f"not found: {url.path}")

    return Handler


class Server:
    """The HTTP server in a thread of its own."""

    def __init__(self, daemon: Daemon, host: str, port: int, access: Access) -> None:
        self.httpd = ThreadingHTTPServer((host, port), make_handler(daemon, access))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="drplan-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
