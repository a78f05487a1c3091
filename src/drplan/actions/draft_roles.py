"""What a compose service is for, as `drplan init` guesses it: a job, a tool, a front end.

A plan's tiers and criticality must follow what users reach, not how deep a service sits
in the dependency graph: a reverse proxy on which nothing depends is what every user goes
through, and an admin UI on which nothing depends either is not worth failing a recovery
for. The rules, in order (the first that applies wins):

1. A service only started under a Compose profile that is not active: not critical, P3.
2. A one-shot job (restart "no"/"on-failure" with an init/migrate/setup-like name or
   command, or a name ending in -init, -migrate, -setup), a data container (a bare base
   image such as busybox running nothing), an admin tool (adminer, pgAdmin,
   mongo-express, Redis Commander, RedisInsight, visualizers), an exporter or a helper
   (cron, cleanup, backup, certificate companions, SMTP relays, machine-learning
   sidecars): not critical, P3.
3. A database: critical, P1.
4. A service users reach: it publishes a port or runs a proxy/front-end image (nginx,
   Traefik, Caddy, HAProxy, Kong, Envoy, Apache): critical, P1.
5. Any other service: critical, P2 when at most one level above the bottom of the
   dependency graph, P3 deeper.

The restart policy, which :class:`~drplan.plan.compose.ComposeService` does not carry, is
read from the compose documents themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drplan.plan.compose import ComposeProject, ComposeService, published_ports
from drplan.sources.base import image_basename, image_components

ONE_SHOT_WORDS = frozenset(
    {"init", "migrate", "migration", "migrations", "setup", "register", "bootstrap", "seed"}
    | {"fix", "permission", "permissions", "install", "upgrade", "createbuckets"}
)
ONE_SHOT_SUFFIXES = ("init", "migrate", "migration", "setup")
BASE_IMAGES = frozenset({"busybox", "alpine", "debian", "ubuntu", "scratch"})
ADMIN_TOOLS = frozenset(
    {"adminer", "pgadmin", "pgadmin4", "phpmyadmin", "redisinsight", "visualizer", "unsee"}
    | {"dozzle", "akhq", "kafdrop", "portainer-agent"}
)
ADMIN_PAIRS = (("mongo", "express"), ("redis", "commander"), ("kafka", "ui"))
HELPER_WORDS = frozenset(
    {"cron", "cleanup", "exporter", "companion", "backup", "smtp", "postfix", "mailhog"}
)
HELPER_PAIRS = (("machine", "learning"),)
PROXY_WORDS = frozenset(
    {"nginx", "traefik", "caddy", "haproxy", "kong", "envoy", "httpd", "apache", "proxy"}
)


@dataclass
class Role:
    """A service's role in a drafted plan, and why (shown to the author)."""

    critical: bool
    tier: str
    why: str
    job: bool = False  # one-shot job or data container: never a database, never an owner
    helper: bool = False  # a job, a tool, a helper: the last choice as a volume's owner
    user_facing: bool = False


def raw_services(project: ComposeProject) -> dict[str, dict[str, Any]]:
    """Every service's compose mapping, later files overriding earlier keys."""
    merged: dict[str, dict[str, Any]] = {}
    for doc in project.documents:
        services = doc.data.get("services") if isinstance(doc.data, dict) else None
        for name, raw in (services or {}).items() if isinstance(services, dict) else []:
            if isinstance(raw, dict):
                merged.setdefault(str(name), {}).update(raw)
    return merged


def words(text: str) -> list[str]:
    """Lower-case words of a name or a command."""
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value) if value is not None else ""


def _restart(raw: dict[str, Any]) -> str:
    deploy = raw.get("deploy") if isinstance(raw.get("deploy"), dict) else {}
    policy = deploy.get("restart_policy") if isinstance(deploy.get("restart_policy"), dict) else {}
    if policy.get("condition"):
        return str(policy["condition"]).strip('"')
    return str(raw.get("restart", "")).strip('"')


def is_job(name: str, svc: ComposeService, raw: dict[str, Any]) -> str | None:
    """Why the service is a one-shot job or a data container (None when it is not)."""
    restart = _restart(raw)
    name_words = set(words(name))
    cmd_words = set(words(_text(svc.command) + " " + _text(svc.entrypoint)))
    if restart in ("no", "on-failure", "none") and (
        restart in ("no", "none") or (name_words | cmd_words) & ONE_SHOT_WORDS
    ):
        return f"one-shot job (restart {restart})"
    if words(name) and words(name)[-1] in ONE_SHOT_SUFFIXES:
        return "one-shot job (by its name)"
    base = image_basename(svc.image)
    if base in BASE_IMAGES and not svc.command and not svc.ports:
        return f"data container ({base} running nothing)"
    return None


def is_tool(name: str, svc: ComposeService) -> str | None:
    """Why the service is an admin tool, an exporter or a helper (None when not)."""
    image = set(image_components(svc.image)) | {image_basename(svc.image)}
    named = set(words(name)) | image
    if named & ADMIN_TOOLS or any(set(p) <= named for p in ADMIN_PAIRS):
        return "admin tool"
    if named & HELPER_WORDS or any(set(p) <= named for p in HELPER_PAIRS):
        return "helper (" + ", ".join(sorted(named & HELPER_WORDS) or ["optional feature"]) + ")"
    return None


def is_front(name: str, svc: ComposeService) -> str | None:
    """Why users reach the service (None when they do not, as far as compose says)."""
    if published_ports(svc.ports):
        return "publishes a port"
    if set(image_components(svc.image)) & PROXY_WORDS or set(words(name)) & PROXY_WORDS:
        return "a proxy/front end"
    return None


def role(
    name: str,
    svc: ComposeService,
    raw: dict[str, Any],
    *,
    database: bool,
    height: int,
) -> Role:
    """The service's role by the rules of this module's docstring."""
    if not svc.active:
        profiles = ", ".join(svc.profiles)
        return Role(False, "P3", f"only under profile {profiles}, not active", helper=True)
    job = is_job(name, svc, raw)
    if job:
        return Role(False, "P3", job, job=True, helper=True)
    tool = is_tool(name, svc)
    if tool:
        return Role(False, "P3", tool, helper=True)
    if database:
        return Role(True, "P1", "a database")
    front = is_front(name, svc)
    if front:
        return Role(True, "P1", f"users reach it ({front})", user_facing=True)
    tier = "P2" if height <= 1 else "P3"
    return Role(True, tier, f"application, dependency depth {height}")
