"""SIGINT and SIGTERM as an orderly stop, not a crash.

A long operation (backup, recovery) runs its steps in worker threads. A signal must not
kill the process under them: a cold backup would leave production scaled to 0, a restore
half-written. Inside `signals_stop()`, the first SIGINT/SIGTERM raises `Interrupted` in
the main thread; the executor then starts nothing new, asks the running steps to stop
(`on_interrupt`: remove this run's helpers, kill restic), waits for their clean-up, and
re-raises. Later signals are only noted: the clean-up is not itself interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from drplan.errors import OperationError


class Interrupted(OperationError):
    """The operation was stopped by a signal (after its clean-up ran)."""


@contextlib.contextmanager
def signals_stop(what: str) -> Iterator[dict]:
    """Turn the first SIGINT/SIGTERM into `Interrupted` in the main thread. Yields a dict
    whose "signal" names the signal received, if any."""
    state: dict = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handle(signum, frame) -> None:
        first = state["signal"] is None
        state["signal"] = state["signal"] or signal.Signals(signum).name
        if first:
            raise Interrupted(f"interrupted by {state['signal']}", where=what)

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield state
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
