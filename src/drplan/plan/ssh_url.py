"""`ssh://[user@]host[:port]` Docker endpoints, read strictly.

The parts of such a URL end up as arguments of `ssh` (platform/stdio_bridge.py). A host or
a user that ssh could read as an option (`-oProxyCommand=...`), or any character a shell
or ssh's own parsing would treat specially, is refused here, in the plan's validation
and again before ssh runs: a node's address comes from the cluster (Swarm reports it),
not from the plan's author.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")

SSH_URL_RULE = (
    "must be ssh://[user@]host[:port]: a host name or address, an optional user and port, "
    "nothing else (no path, no options)"
)


@dataclass(frozen=True)
class SshTarget:
    host: str  # as ssh takes it: an IPv6 address without its brackets
    user: str | None = None
    port: int | None = None


def parse_ssh_url(url: str) -> SshTarget:
    """The target of an ssh:// Docker URL; ValueError (saying what is wrong, to follow the
    URL in a message) otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. brackets around something not an IPv6 address
        raise ValueError(f"{exc}; {SSH_URL_RULE}") from None
    if parts.scheme != "ssh":
        raise ValueError("is not an ssh:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
        raise ValueError(SSH_URL_RULE)
    netloc = parts.netloc
    user, _, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else rest
        if not _IPV6.fullmatch(host):
            raise ValueError(f"{host!r} is not an IPv6 address; {SSH_URL_RULE}")
        host = host[1:-1]
    else:
        host, _, port = hostport.partition(":")
        if not _HOST.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name or address; {SSH_URL_RULE}")
    if user and not _USER.fullmatch(user):
        raise ValueError(f"{user!r} is not a user name; {SSH_URL_RULE}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{port!r} is not a port; {SSH_URL_RULE}")
    return SshTarget(host=host, user=user or None, port=int(port) if port else None)
