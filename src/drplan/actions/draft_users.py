"""The login a drafted dump uses, and a *reference* to its password, never its value.

The engine says which variables of the service's environment name the user and the
password (:meth:`drplan.sources.base.Engine.draft_user`); this module turns them into
plan fields:

- a password in a variable becomes ``{env: VAR}``: the variable Compose interpolated it
  from when the value is one whole ``${VAR}`` expression (the operator exports what the
  stack's ``.env`` says), else the service's own variable name;
- a password in a file (``*_FILE=/run/secrets/NAME``) becomes ``{file: PATH}`` when the
  compose file's top-level secret ``NAME`` is a ``file:`` (relative to the plan), ``{env:
  VAR}`` when it is an ``environment:`` secret, and ``{env: NAME}`` with a note when it is
  external (only the Swarm knows it);
- a user in a file (``POSTGRES_USER_FILE``) is read from that secret's file, when the
  compose files ship it: a login name is not a secret, and a dump needs it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from drplan.plan.compose import ComposeProject, ComposeService
from drplan.sources.base import DraftUser

SECRETS_DIR = "/run/secrets/"


def _secret_name(container_path: str, raw: dict[str, Any]) -> str | None:
    """The compose secret mounted at `container_path` in the service."""
    for entry in raw.get("secrets") or []:
        if isinstance(entry, str) and container_path == SECRETS_DIR + entry:
            return entry
        if isinstance(entry, dict) and entry.get("source"):
            target = str(entry.get("target") or entry["source"])
            target = target if target.startswith("/") else SECRETS_DIR + target
            if target == container_path:
                return str(entry["source"])
    if container_path.startswith(SECRETS_DIR):
        return container_path[len(SECRETS_DIR) :]
    return None


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).upper()


class Credentials:
    """Plan fields for one service's dumps: `fields` (user, password, databases) and
    `notes` for the author."""

    def __init__(self, project: ComposeProject, plan_dir: Path) -> None:
        self.secrets = project.secrets
        self.plan_dir = plan_dir

    def _secret_ref(self, name: str, notes: list[str]) -> dict[str, str]:
        spec = self.secrets.get(name)
        if spec is not None and spec.file:
            return {"file": os.path.relpath(spec.file, self.plan_dir)}
        if spec is not None and spec.environment:
            return {"env": spec.environment}
        var = _env_name(name)
        notes.append(f"password in secret {name!r}, which only the Swarm holds: export it as {var}")
        return {"env": var}

    def _secret_text(self, name: str) -> str | None:
        spec = self.secrets.get(name)
        if spec is None or not spec.file:
            return None
        try:
            lines = Path(spec.file).read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        return lines[0].strip() if lines and lines[0].strip() else None

    def fields(
        self, svc: ComposeService, raw: dict[str, Any], found: DraftUser
    ) -> tuple[dict[str, Any], list[str]]:
        """The source's `user`, `password` and `databases` fields, and notes."""
        notes: list[str] = []
        out: dict[str, Any] = {}
        user = found.user
        if found.user_file:
            secret = _secret_name(found.user_file, raw)
            user = self._secret_text(secret) if secret else None
            if user is None:
                notes.append(f"user in {found.user_file}, not readable here: set `user`")
        if user:
            out["user"] = user
        if found.password_file:
            secret = _secret_name(found.password_file, raw)
            if secret:
                out["password"] = self._secret_ref(secret, notes)
            else:
                notes.append(f"password in {found.password_file}: set `password`")
        elif found.password_env:
            origin = svc.env.get(found.password_env)
            out["password"] = {"env": (origin.ref if origin else None) or found.password_env}
        if found.databases:
            out["databases"] = list(found.databases)
        if user:
            notes.append(
                f"dumps log in as {user} (from {found.why})"
                + (f", password from {out['password']}" if "password" in out else "")
            )
        return out, notes


_URL_USER = re.compile(r"^[a-z][a-z0-9+.-]*://([^:@/\s]+)(?::[^@/\s]*)?@([^:/?\s]+)")
_HOST_KEYS = ("_HOST", "_HOSTNAME", "_SERVER", "_ADDR")
_USER_KEYS = ("_USER", "_USERNAME")


def client_user(name: str, services: dict[str, ComposeService]) -> tuple[str, str] | None:
    """The login the database's clients use, when the database service names none: in
    a URL whose host is the service (`postgres://admin:...@db:5432/x`), or a `*_USER`
    beside a `*_HOST` naming it. The most common wins; (user, why) or None."""
    counts: dict[str, int] = {}
    for other, svc in services.items():
        if other == name:
            continue
        env = svc.environment
        for value in env.values():
            m = _URL_USER.match(value)
            if m and m.group(2) == name:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        prefixes = {
            k[: -len(s)] for k, v in env.items() for s in _HOST_KEYS if k.endswith(s) and v == name
        }
        for k, v in env.items():
            if v and any(k.endswith(s) and k[: -len(s)] in prefixes for s in _USER_KEYS):
                counts[v] = counts.get(v, 0) + 1
    if not counts:
        return None
    user = max(counts, key=lambda u: (counts[u], u))
    return user, f"{counts[user]} client setting(s) of other services"
