"""The runbook's output directory: drplan writes only where it cannot destroy anything.

``drplan runbook -o DIR`` is typically run by hand, maybe with a typo or the wrong
directory (``-o ~``, ``-o /etc/drplan``). It therefore writes only into a directory that
is new (it creates it), empty, or that it made before, and in the latter only over the
files it wrote itself. What it wrote is listed in a marker file, ``.drplan-runbook``, in
the directory; regenerating replaces those files and removes the ones no longer part of
the runbook (steps that disappeared), and leaves anything else (notes an operator put
there) alone. A non-empty directory without the marker is refused, naming it, before
anything is written or removed.

Files are written atomically (a temporary file renamed over the target), which also
means a symbolic link planted where a runbook file goes is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import secrets
from pathlib import Path

from drplan.errors import InputError

MARKER = ".drplan-runbook"
FORMAT = 1


def _valid_rel(rel: object) -> bool:
    return (
        isinstance(rel, str)
        and bool(rel)
        and not rel.startswith("/")
        and posixpath.normpath(rel) == rel
        and ".." not in rel.split("/")
        and rel != MARKER
        and "\x00" not in rel
    )


def previous_files(out: Path) -> set[str]:
    """The files drplan wrote into `out` before: an empty set when `out` does not exist
    yet or is empty. Refuses (InputError naming the directory) when `out` is not a
    directory, or holds anything without drplan's marker, or a marker it cannot read."""
    if not out.exists() and not out.is_symlink():
        return set()
    if not out.is_dir():
        raise InputError(f"{out} exists and is not a directory", where="--output")
    marker = out / MARKER
    if not marker.exists() and not marker.is_symlink():
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as exc:
            raise InputError(f"cannot read {out}: {exc.strerror}", where="--output") from None
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise InputError(
                f"{out} is not empty ({shown}) and was not written by drplan runbook (it has "
                f"no {MARKER} file): refusing to write into it, so that nothing there is "
                "overwritten; give a new or empty directory",
                where="--output",
            )
        return set()
    try:
        if marker.is_symlink() or not marker.is_file():
            raise ValueError("not a regular file")
        doc = json.loads(marker.read_text("utf-8"))
        files = doc["files"]
        if doc.get("format") != FORMAT or not isinstance(files, list):
            raise ValueError("unknown format")
        if not all(_valid_rel(f) for f in files):
            raise ValueError("it lists a path outside the directory")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{out}: its {MARKER} file is not one drplan wrote ({exc}): refusing to write "
            "into the directory; give a new or empty directory",
            where="--output",
        ) from None
    return set(files)


def _odd_parent(out: Path, rel: str) -> Path | None:
    """The first folder between `out` and `rel` that is not a real folder (a symbolic
    link there would send a write or a removal elsewhere), or None."""
    path = out
    for part in rel.split("/")[:-1]:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return path
    return None


def plan_writes(out: Path, names: list[str]) -> set[str]:
    """Check that `names` (relative paths) can be written into `out` without touching a
    file drplan did not write; the files written before. Nothing is changed."""
    previous = previous_files(out)
    for rel in names:
        if not _valid_rel(rel):
            raise ValueError(f"not a relative path inside the runbook: {rel!r}")
        odd = _odd_parent(out, rel)
        if odd is not None:
            raise InputError(
                f"{out}: {odd.relative_to(out)} is not a plain folder: refusing to write "
                f"{rel} through it",
                where="--output",
            )
        target = out / rel
        if (target.exists() or target.is_symlink()) and rel not in previous:
            raise InputError(
                f"{out}: {rel} exists and was not written by drplan runbook: refusing to "
                "overwrite it (move it away, or give another directory)",
                where="--output",
            )
        if target.is_dir() and not target.is_symlink():
            raise InputError(f"{out}: {rel} is a folder", where="--output")
    return previous


def _write_marker(out: Path, files: set[str]) -> None:
    text = json.dumps(
        {
            "format": FORMAT,
            "written_by": "drplan runbook",
            "note": "the files drplan wrote here; it replaces or removes only these",
            "files": sorted(files),
        },
        indent=1,
    )
    _atomic_write(out / MARKER, text.encode())


def _atomic_write(target: Path, data: bytes) -> None:
    """Write through a new temporary file renamed over `target` (mode 0666 less the
    umask, like any file the operator creates)."""
    while True:
        tmp = target.parent / f".{target.name[:40]}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_files(out: Path, files: dict[str, str]) -> None:
    """Write `files` (relative path -> text) into `out`, created if missing, replacing
    only files drplan wrote there before and removing those of them not in `files`."""
    previous = plan_writes(out, list(files))
    out.mkdir(parents=True, exist_ok=True)
    # claimed before written: an interrupted run leaves no file that is not listed
    _write_marker(out, previous | set(files))
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, text.encode("utf-8"))
    for rel in sorted(previous - set(files)):
        stale = out / rel
        if _odd_parent(out, rel) is not None:
            continue
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
        parent = stale.parent
        while parent != out:  # folders left empty by it (compose/a/)
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
    _write_marker(out, set(files))
