"""Resolve the plan's secret references (env, file, command) without ever logging them."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from drplan import process
from drplan.errors import InputError
from drplan.plan.model import Secret


def resolve(
    secret: Secret, *, base: Path, what: str, dotenv: Mapping[str, str] | None = None
) -> str:
    """The secret's value. `base` is the plan's directory (for relative files); `what`
    names the reference in errors, e.g. "repositories.main.password".

    `dotenv`: what the stack's ``.env`` sets. An `{env: VAR}` reference that drplan's
    environment does not set is read there, as Compose reads the same variable for the
    service: the password a draft names (``{env: POSTGRES_PASSWORD}``) is the one the
    stack was deployed with, without exporting it before every run."""
    if secret.env:
        value = os.environ.get(secret.env)
        if value is None and dotenv:
            value = dotenv.get(secret.env)
        if value is None:
            where_else = " (nor by the stack's .env)" if dotenv is not None else ""
            raise InputError(
                f"environment variable {secret.env} is not set{where_else}", where=what
            )
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
        argv = shlex.split(secret.command)
    except ValueError as exc:
        raise InputError(f"cannot split the secret command into words: {exc}", where=what) from None
    if not argv:
        raise InputError("the secret command is empty", where=what)
    # it may prompt (sudo, gpg): it keeps the terminal. Messages name its program only
    # and never what it printed (its stdout is the secret; stderr is discarded, as the
    # user guide says)
    done = process.capture(argv, timeout=60, terminal=True, shown=1)
    done.check(what=what, error=InputError, output=False)
    # the secret is the first line, as for {file:}: a blank first line is an error, not an
    # empty password taken while the secret sits on a later line
    text = done.text
    first = text.splitlines()[0] if text else ""
    if not first.strip():
        raise InputError("secret command printed no secret on its first line", where=what)
    return first
