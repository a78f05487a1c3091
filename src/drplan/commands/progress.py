"""Progress display for long runs: a live table on a terminal, quiet otherwise."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from drplan.executor import Event


class StepProgress:
    """One line per step: spinner, bytes, rate, elapsed; a final status mark."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.console = Console(stderr=True)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.ids: dict[str, int] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> StepProgress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def event(self, e: Event) -> None:
        if not self.enabled:
            return
        with self.lock:
            if e.kind == "started":
                self.ids[e.task.id] = self.progress.add_task(e.task.id, total=None)
            else:
                mark = {
                    "ok": "[green]✓",
                    "done-before": "[green]✓ (done before)",
                    "skipped": "[yellow]skipped",
                    "cancelled": "[yellow]cancelled",
                }.get(e.outcome.status, "[red]✗")
                tid = self.ids.get(e.task.id)
                if tid is None:
                    tid = self.ids[e.task.id] = self.progress.add_task(e.task.id, total=None)
                self.progress.update(tid, description=f"{e.task.id} {mark}", total=1, completed=1)

    def bytes(self, task_id: str, n: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            tid = self.ids.get(task_id)
            if tid is not None:
                self.progress.advance(tid, n)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False)


def silent(_: str, __: int) -> None:
    pass


Printer = Callable[[str], None]
