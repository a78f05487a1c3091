"""Resolve the plan's secret references (env, file, command) without ever logging them."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from drplan.errors import InputError
from drplan.plan.model import Secret


def resolve(secret: Secret, *, base: Path, what: str) -> str:
    """The secret's value. `base` is the plan's directory (for relative files); `what`
    names the reference in errors, e.g. "repositories.main.password"."""
    if secret.env:
        value = os.environ.get(secret.env)
        if value is None:
            raise InputError(f"environment variable {secret.env} is not set", where=what)
        return value
    if secret.file:
        path = Path(secret.file)
        if not path.is_absolute():
            path = base / path
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise InputError(f"cannot read secret file {path}: {exc.strerror}", where=what) from exc
        if not lines or not lines[0]:
            raise InputError(f"secret file {path} is empty", where=what)
        return lines[0]
    assert secret.command
    try:
        proc = subprocess.run(
            shlex.split(secret.command), capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"secret command failed: {exc}", where=what) from exc
    if proc.returncode != 0:
        raise InputError(f"secret command exited with status {proc.returncode}", where=what)
    # the secret is the first line, as for {file:}: a blank first line is an error, not an
    # empty password taken while the secret sits on a later line
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    if not first.strip():
        raise InputError("secret command printed no secret on its first line", where=what)
    return first
