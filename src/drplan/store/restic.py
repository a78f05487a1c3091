"""A restic repository driven through its `--json` output.

Every snapshot drplan writes is tagged (`drplan`, `plan:NAME`, `run:ID`, `kind:KIND`,
`service:S`, `source:X`), so a run is found from the repository alone, without any local
index: after a disaster the repository and its password are all one has.
The password reaches restic through its environment, never its argv.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from drplan import owner, process
from drplan.errors import InputError, OperationError

# restic's snapshot ids: hex, full (64) or a unique prefix. Every id given to restic is
# checked against it and comes after `--`: ids are read back from manifests, which an
# attacker with write access to the repository can forge (threat model, class 1).
SNAPSHOT_ID_RE = re.compile(r"[0-9a-f]{8,64}")

# restic commands that never add or remove snapshots
_READ_ONLY = frozenset({"snapshots", "cat", "ls", "dump", "stats", "check", "list", "unlock"})
LOCK_DIR = Path(os.environ.get("DRPLAN_LOCK_DIR", "/run/lock/drplan"))


@dataclass
class Repository:
    """One restic repository with its resolved secrets."""

    name: str
    url: str
    password: str = field(repr=False)
    type: str = "local"
    append_only: bool = False
    # a local path that remote engines see at the same path (shared storage)
    shared: bool = False
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # restic extended options (`-o key=value`), given to every restic command
    options: dict[str, str] = field(default_factory=dict)
    # drplan's snapshots as listed by open(), served to the next snapshots() call: every
    # restic command pays the key's derivation (scrypt, ~0.5 s of CPU), and a command
    # that opens the repository nearly always lists runs next
    _listing: list[dict] | None = field(default=None, init=False, repr=False)

    @property
    def where(self) -> str:
        return f"repository {self.name} ({self.url})"

    def environ(self) -> dict[str, str]:
        return {"RESTIC_REPOSITORY": self.url, "RESTIC_PASSWORD": self.password, **self.env}

    def option_args(self) -> list[str]:
        """`-o key=value` for each extended option (also for restic in helper containers)."""
        return [arg for k, v in sorted(self.options.items()) for arg in ("-o", f"{k}={v}")]

    # -- running restic --------------------------------------------------------------

    def run(
        self,
        args: list[str],
        *,
        what: str | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> process.Completed:
        if args[0] not in _READ_ONLY:
            self._listing = None  # it may write snapshots: what open() listed may be stale
        proc = process.run(
            ["restic", *self.option_args(), *args],
            env=self.environ(),
            input=input,
            timeout=timeout,
            what=what or self.where,
            check=False,
        )
        if check and proc.returncode != 0:
            self._raise(args, proc.stderr, what)
        return proc

    def _raise(self, args: list[str], stderr: bytes, what: str | None) -> None:
        text = _brief(stderr)
        low = " ".join(stderr.decode(errors="replace").split()).lower()
        where = what or self.where
        if "wrong password" in low:
            raise InputError(f"wrong password for {self.where}", where=where)
        if "is there a repository at the following location" in low or (
            "unable to open config file" in low
        ):
            raise OperationError(
                f"no restic repository at {self.url} (run `drplan repo init`)", where=where
            )
        if "repository is already locked" in low:
            raise OperationError(
                f"{self.where} is locked by another operation: {text}", where=where
            )
        raise OperationError(f"restic {args[0]} failed: {text}", where=where)

    def json(self, args: list[str], *, what: str | None = None, timeout: float | None = None):
        out = self.run([*args, "--json"], what=what, timeout=timeout).stdout
        return json.loads(out) if out.strip() else None

    # -- repository ------------------------------------------------------------------

    def exists(self) -> bool:
        proc = self.run(
            ["snapshots", "--no-lock", "--tag", "drplan", "--json"],
            check=False,
            timeout=process.repo_timeout(),
        )
        if proc.returncode == 0:
            self._listing = json.loads(proc.stdout) if proc.stdout.strip() else []
            return True
        low = process.tail(proc.stderr).lower()
        if "wrong password" in low:
            raise InputError(f"wrong password for {self.where}")
        if "is there a repository" in low or "unable to open config file" in low:
            return False
        raise OperationError(f"cannot reach {self.where}: {_brief(proc.stderr)}")

    def open(self) -> None:
        """Check the repository exists and the password opens it (clear errors otherwise)."""
        if not self.exists():
            raise OperationError(
                f"no restic repository at {self.url} (run `drplan repo init`)", where=self.where
            )

    def init(self) -> bool:
        """Create the repository; False when it already existed (nothing is changed then)."""
        if self.exists():
            return False
        self.run(["init"], timeout=process.repo_timeout())
        return True

    # -- snapshots --------------------------------------------------------------------

    def snapshots(self, tags: list[str]) -> list[dict]:
        """Snapshots carrying every one of `tags`, oldest first."""
        listing, self._listing = self._listing, None
        if listing is not None and "drplan" in tags:
            want = set(tags)
            return [snap for snap in listing if want <= set(snap.get("tags") or ())]
        args = ["snapshots", "--no-lock"]
        if tags:
            args += ["--tag", ",".join(tags)]
        return self.json(args, timeout=process.repo_timeout()) or []

    def backup_stream(
        self, chunks: Iterable[bytes], *, filename: str, tags: list[str], host: str, what: str
    ) -> dict:
        """Back up a stream (a dump) as one file; return restic's summary.

        If the producer fails, restic is stopped before it can write a snapshot, and the
        producer's error is raised: a failed dump never becomes a short snapshot.
        """
        argv = [
            "restic",
            *self.option_args(),
            "backup",
            "--stdin",
            "--stdin-filename",
            filename,
            "--host",
            host,
            "--json",
            *_tag_args(tags),
        ]
        proc = process.start(
            argv, env=self.environ(), stdin=process.PIPE, stdout=process.PIPE
        )
        out, stderr = process.drain_in_background(proc, keep=lambda line: b'"summary"' in line)
        assert proc.stdin is not None
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # restic stopped reading: its exit status says why
        except BaseException:
            # the producer failed: kill restic *before* it sees end-of-input, so no
            # snapshot of a truncated stream is ever written
            process.kill_tree(proc)
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                proc.stdin.close()
        proc.wait()
        if proc.returncode != 0:
            self._raise(["backup"], stderr.result(), what)
        return summary(out.result())

    def dump(self, snapshot: str, path: str, *, what: str) -> Iterator[bytes]:
        """Stream one file of a snapshot; the exit status is checked when it ends. A dump
        that stalls (no byte for DRPLAN_REPO_TIMEOUT seconds when asked) is stopped."""
        proc = process.start(
            [
                "restic",
                *self.option_args(),
                "dump",
                "--no-lock",
                "--",
                snapshot_id(snapshot),
                stored_path(path),
            ],
            env=self.environ(),
            stdin=process.DEVNULL,
        )
        stderr = process.Collected(proc.stderr)
        try:
            yield from process.read_chunks(proc, idle_s=process.repo_timeout(), what=what)
        finally:
            if proc.poll() is None:  # the consumer stopped early: no orphan restic
                process.kill_tree(proc)
            proc.wait()
        if proc.returncode != 0:
            self._raise(["dump"], stderr.result(), what)

    def read_file(self, snapshot: str, path: str, *, what: str) -> bytes:
        return b"".join(self.dump(snapshot, path, what=what))

    def ls(self, snapshot: str) -> Iterator[dict]:
        """The nodes of a snapshot (restic ls --json), streamed: a volume of millions of
        files is never held whole in memory, and a stalled backend is stopped."""
        proc = process.start(
            [
                "restic",
                *self.option_args(),
                "ls",
                "--no-lock",
                "--json",
                "--",
                snapshot_id(snapshot),
            ],
            env=self.environ(),
            stdin=process.DEVNULL,
        )
        stderr = process.Collected(proc.stderr)
        try:
            for line in process.read_lines(proc, idle_s=process.repo_timeout(), what=self.where):
                if line.startswith(b"{"):
                    obj = json.loads(line)
                    if obj.get("struct_type") == "node":
                        yield obj
        finally:
            if proc.poll() is None:
                process.kill_tree(proc)
            proc.wait()
        if proc.returncode != 0:
            self._raise(["ls"], stderr.result(), None)

    def forget(self, snapshot_ids: list[str], *, what: str) -> None:
        if snapshot_ids:
            self.refuse_if_append_only("forget")
            self.run(["forget", "--", *map(snapshot_id, snapshot_ids)], what=what, timeout=3600)

    def prune(self, *, what: str) -> None:
        self.refuse_if_append_only("prune")
        self.run(["prune"], what=what, timeout=24 * 3600)

    def refuse_if_append_only(self, action: str) -> None:
        if self.append_only:
            raise InputError(
                f"{self.where} is append-only: {action} is refused here (run it on the "
                "repository's own host, where deletions are allowed)"
            )

    def unlock(self) -> None:
        """Remove the locks whose owner is provably dead, and only those.

        restic's own `unlock` removes locks of a dead process of this host and locks not
        refreshed for 30 minutes. Locks taken in helper containers name their drplan
        process instead (`owner.helper_hostname`): when every lock left is provably dead
        by either rule, all are removed; a live lock of another operation or host is
        never touched. A local repository with no lock file needs no restic run at all.
        """
        if self.type == "local":
            locks = Path(self.url, "locks")
            with contextlib.suppress(OSError):
                if not any(locks.iterdir()):
                    return
        quick = process.repo_timeout()
        ids = self.run(["list", "locks", "--no-lock"], timeout=quick).stdout.decode().split()
        if not ids:
            return
        held = []
        for lock_id in ids:
            proc = self.run(["cat", "--no-lock", "lock", "--", lock_id], timeout=quick, check=False)
            if proc.returncode == 0:  # else removed meanwhile by its owner
                with contextlib.suppress(ValueError):
                    held.append(json.loads(proc.stdout))
        dead = [lock for lock in held if owner.lock_is_dead(lock)]
        if held and len(dead) == len(held):
            self.run(["unlock", "--remove-all"], timeout=quick)
        else:
            self.run(["unlock"], timeout=quick)

    def check(self, *, read_data_subset: str | None = None) -> str:
        args = ["check"]
        if read_data_subset:
            args += [f"--read-data-subset={read_data_subset}"]
        proc = self.run(args, check=False, timeout=24 * 3600)
        if proc.returncode != 0:
            raise OperationError(
                f"restic check found problems: {process.tail(proc.stderr + proc.stdout)}",
                where=self.where,
            )
        return proc.stdout.decode(errors="replace")

    def copy_to(self, target: Repository, snapshot_ids: list[str], *, what: str) -> None:
        """`restic copy` of these snapshots into `target` (its password via RESTIC_PASSWORD2)."""
        if not snapshot_ids:
            return
        env = {
            "RESTIC_REPOSITORY": target.url,
            "RESTIC_PASSWORD": target.password,
            "RESTIC_FROM_REPOSITORY": self.url,
            "RESTIC_FROM_PASSWORD": self.password,
            **self.env,
            **target.env,
        }
        # -o applies to both ends of a copy; the target's options win on a clash
        options = {**self.options, **target.options}
        opts = [arg for k, v in sorted(options.items()) for arg in ("-o", f"{k}={v}")]
        proc = process.run(
            ["restic", *opts, "copy", "--", *map(snapshot_id, snapshot_ids)],
            env=env,
            what=what,
            check=False,
            timeout=24 * 3600,
        )
        if proc.returncode != 0:
            target._raise(["copy"], proc.stderr, what)

    # -- one writer per repository ------------------------------------------------------

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold this host's lock on the repository for a writing operation.

        An flock dies with its process, so a SIGKILLed run never leaves this lock behind;
        restic's own locks left by such a run are then known to be stale and removed.
        """
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        fd = os.open(LOCK_DIR / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise OperationError(
                    f"another drplan operation is writing to {self.where}; try again when it "
                    "has finished",
                    where=what,
                ) from exc
            yield
        finally:
            os.close(fd)


def snapshot_id(value: str) -> str:
    """`value` if it has the shape of a restic snapshot id; refused otherwise, so a forged
    id can never become an option of restic."""
    if not isinstance(value, str) or not SNAPSHOT_ID_RE.fullmatch(value):
        raise InputError(f"not a restic snapshot id: {str(value)[:80]!r}")
    return value


def stored_path(value: str) -> str:
    """An absolute, normalised path inside a snapshot (no `..`, no control character)."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.startswith("//")
        or posixpath.normpath(value) != value
        or any(ord(c) < 32 for c in value)
    ):
        raise InputError(f"not a path inside a snapshot: {str(value)[:80]!r}")
    return value


def summary(stdout: bytes) -> dict:
    """The final summary object of `restic backup --json`."""
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{") and '"summary"' in line:
            return json.loads(line)
    raise OperationError("restic backup printed no summary")


def _brief(stderr: bytes, limit: int = 600) -> str:
    """restic's error output on one line, keeping its beginning and its end: for network
    backends the cause (e.g. ssh's "Connection refused") comes first, restic's summary last."""
    text = " ".join(stderr.decode(errors="replace").split())
    if len(text) <= limit:
        return text
    return text[: limit // 2] + " ... " + text[-limit // 2 :]


def _tag_args(tags: list[str]) -> list[str]:
    return ["--tag", ",".join(tags)] if tags else []
