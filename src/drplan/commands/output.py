"""Where a command's document goes: a file (`-o`), or standard output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from drplan.errors import InputError


def emit(
    text: str, output: str | None, out: Callable[[str], None], err: Callable[[str], None]
) -> None:
    """Write `text` to `output` (saying so on stderr), or print it when no file is given."""
    if not output:
        out(text.rstrip("\n"))
        return
    try:
        Path(output).write_text(text, "utf-8")
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", where=output) from None
    err(f"wrote {output}")
