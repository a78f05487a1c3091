"""Where a crisis journal's lines live: a small interface and a local-file implementation.

The journal only ever *appends* lines and *reads them all*; nothing rewrites it. Keeping
storage behind :class:`JournalStore` lets a later change mirror the journal elsewhere
(e.g. into the backup repository, so it survives the loss of the machine it was written
on) without touching the hash chain logic in :mod:`drplan.crisis.journal`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from drplan.errors import InputError, OperationError


class JournalStore(Protocol):
    """Append-only line storage."""

    location: str
    """Where the journal is, for messages (a path or URL)."""

    def exists(self) -> bool:
        """Whether anything was ever written."""
        ...

    def read_all(self) -> list[str]:
        """Every line, in order, without line terminators."""
        ...

    def append(self, line: str) -> None:
        """Durably append one line (no newline inside)."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive access for a read-then-append (so two writers cannot fork the chain)."""
        ...


class LocalFileStore:
    """A JSON-lines file: ``O_APPEND`` writes, ``fsync`` after each, ``flock`` for writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = str(path)
        self._fd: int | None = None

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def read_all(self) -> list[str]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", where=self.location) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise InputError("not UTF-8 text", where=f"{self.location}:{line}") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def _open(self) -> int:
        created = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise OperationError(
                f"cannot open for appending: {exc.strerror or exc}", where=self.location
            ) from None
        if created:
            with contextlib.suppress(OSError):
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return fd

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        if self._fd is not None:  # re-entrant within one store
            yield
            return
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
            yield
        finally:
            self._fd = None
            os.close(fd)  # closing releases the lock

    def append(self, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ValueError("a journal line cannot contain a line break")
        data = (line + "\n").encode("utf-8")
        with self.lock():
            assert self._fd is not None
            try:
                # a journal ending without a newline (a crash mid-write) gets one first, so
                # the torn line stays visible to verify instead of swallowing this entry
                if self.path.stat().st_size and not self._ends_with_newline():
                    data = b"\n" + data
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OperationError(
                        f"short write ({written} of {len(data)} bytes)", where=self.location
                    )
                os.fsync(self._fd)
            except OSError as exc:
                raise OperationError(
                    f"cannot append: {exc.strerror or exc}", where=self.location
                ) from None

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
