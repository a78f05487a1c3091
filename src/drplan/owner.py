"""Who owns a helper container or a repository lock: this host, this boot, this process.

drplan removes what a killed run left behind (helper containers, restic locks) only when
its owner is provably dead: the same host and boot, and a process with that pid and start
time no longer exists. Anything else (another host's run, a live process of this host)
may be working right now and is left alone: operations must never kill each other.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache


@cache
def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip().replace("-", "")[:16]
    except OSError:
        return "unknown"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or
    None when no such process exists: with the pid it names one process for this boot."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int
    start: str

    def label(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}/{self.start}"

    @classmethod
    def parse(cls, value: str | None) -> Owner | None:
        parts = (value or "").split("/")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def is_dead(self) -> bool:
        """True only when provably dead: same host and boot, and its process is gone."""
        me = current()
        if self.host != me.host or self.boot != me.boot:
            return False  # another host, or a boot we cannot see: not provable
        return start_time(self.pid) != self.start


def current() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), boot_id(), pid, start_time(pid) or "0")


def removable(value: str | None) -> bool:
    """May a cleanup remove what carries this owner label? Yes when it is this very
    process's leftover or its owner is provably dead; an absent or unreadable label, or a
    live owner elsewhere, is left alone."""
    owner = Owner.parse(value)
    return owner is not None and (owner == current() or owner.is_dead())


HELPER_HOST_PREFIX = "drplan-"


def helper_hostname() -> str:
    """The hostname of this process's helpers: restic records it in the locks it takes
    inside them, so a lock left by a killed run names its owner (boot, pid, start)."""
    me = current()
    return f"{HELPER_HOST_PREFIX}{me.boot[:12]}-{me.pid}-{me.start}"


def lock_is_dead(lock: dict) -> bool:
    """Is a restic lock's owner provably dead? Locks taken in a helper name their drplan
    process (`helper_hostname`); locks taken on a host name that host and restic's pid."""
    host, pid = str(lock.get("hostname", "")), lock.get("pid")
    me = current()
    if host.startswith(HELPER_HOST_PREFIX):
        parts = host[len(HELPER_HOST_PREFIX) :].split("-")
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        boot, owner_pid, start = parts
        return boot == me.boot[:12] and start_time(int(owner_pid)) != start
    return host == me.host and isinstance(pid, int) and pid > 0 and start_time(pid) is None
