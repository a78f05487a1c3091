"""`drplan serve` (the daemon that runs the plans' schedules) and `drplan prometheus-rules`."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import typer

from drplan.errors import InputError, OperationError


def _state_dir() -> Path:
    env = os.environ.get("DRPLAN_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/drplan")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "drplan"


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InputError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9180")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token(env: str | None, file: str | None) -> str | None:
    if env and file:
        raise InputError("give --token-env or --token-file, not both")
    if env:
        value = os.environ.get(env)
        if not value:
            raise InputError(f"environment variable {env} is not set", where="--token-env")
        return value.strip()
    if file:
        try:
            value = Path(file).read_text().strip().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise InputError(f"cannot read a token from {file}", where="--token-file") from exc
        return value
    return None


def serve(
    plans: list[str] = typer.Argument(..., help="Plan files (YAML), one or several."),
    listen: str = typer.Option(
        "127.0.0.1:9180", "--listen", help="HOST:PORT of the dashboard and /metrics."
    ),
    state_dir: str | None = typer.Option(
        None,
        "--state-dir",
        help="Where the daemon keeps its SQLite file and drill reports "
        "(default: $DRPLAN_STATE_DIR, /var/lib/drplan as root, else ~/.local/state/drplan).",
    ),
    token_env: str | None = typer.Option(
        None, "--token-env", help="Environment variable holding the access token."
    ),
    token_file: str | None = typer.Option(
        None, "--token-file", help="File whose first line is the access token."
    ),
    proxy_auth_header: str | None = typer.Option(
        None,
        "--proxy-auth-header",
        help="Trust this header (e.g. X-Forwarded-User) set by an authenticating reverse proxy.",
    ),
    max_parallel: int = typer.Option(
        2, "--max-parallel", min=1, help="Jobs running at once across plans."
    ),
    refresh: float = typer.Option(
        3600.0,
        "--refresh",
        min=5.0,
        help="Seconds between two reads of each repository when no job ran (each job is "
        "followed by one).",
    ),
    grace: float = typer.Option(
        30.0, "--grace", min=0.0, help="On SIGTERM, seconds a running job has to end."
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
) -> None:
    """Run the plans' backups, copies, retention, checks and drills on their schedule;
    watch the RPO; serve /metrics and a dashboard; notify (until SIGTERM)."""
    from drplan.serve import state as st
    from drplan.serve.daemon import Daemon, Settings
    from drplan.serve.http import Access, Server

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    host, port = _listen(listen)
    token = _token(token_env, token_file)
    local = _is_loopback(host)
    if not local and token is None and proxy_auth_header is None:
        raise InputError(
            f"--listen {listen} is reachable from other machines: give an access token "
            "(--token-env/--token-file) or --proxy-auth-header"
        )
    paths = [Path(p) for p in plans]
    for p in paths:
        if not p.is_file():
            raise InputError(f"no plan file {p}")
    root = Path(state_dir) if state_dir else _state_dir()
    root.mkdir(parents=True, exist_ok=True)
    db = root / "serve.sqlite"
    try:
        lock_fd = st.lock(db)
    except BlockingIOError:
        raise OperationError(
            f"another drplan serve uses {db} (its lock {db}.lock is held)"
        ) from None
    state = st.State(db)
    settings = Settings(
        report_dir=root / "reports", max_parallel=max_parallel, facts_every=refresh, grace=grace
    )
    daemon = Daemon(paths, state, settings)
    try:
        server = Server(daemon, host, port, Access(token, proxy_auth_header, local))
    except OSError as exc:
        raise OperationError(f"cannot listen on {listen}: {exc.strerror}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logging.getLogger("drplan.serve").info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    daemon.start()
    h, p = server.address
    logging.getLogger("drplan.serve").info(
        "serving %d plan(s) on http://%s:%d/ (state %s)", len(paths), h, p, db
    )
    while not stop.wait(3600):
        pass
    daemon.stop()
    server.stop()
    os.close(lock_fd)
    logging.getLogger("drplan.serve").info("stopped")
