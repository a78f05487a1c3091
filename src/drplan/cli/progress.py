"""Progress of long runs (backup, recovery, drill, demo): a live table on a terminal,
quiet otherwise."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drplan.executor import Event


class StepProgress:
    """One line per step: spinner, bytes, rate, elapsed; a final status mark.

    `enabled`: None shows it when stderr is a terminal; `--json` commands pass False.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        # rich.progress is imported here, by the commands that show progress, so the
        # CLI's start-up (`drplan --help`, `drplan plan`) does not pay for it
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

    @classmethod
    def unless(cls, as_json: bool) -> StepProgress:
        """Progress for a command: none with --json (a program reads the output)."""
        return cls(enabled=False if as_json else None)

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
