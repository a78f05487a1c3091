"""Helper containers that hold a volume (and, when needed, the repository) for a moment.

Volumes are read and written on the engine that holds them, through the Engine API, so it
works on a remote engine and never assumes the volume's directory is on this disk. When
restic must run next to the data (file-level backup and restore), the repository reaches
the helper as the engine would see it: a local path is bind-mounted at the same path (the
engine must see that path: same host or a shared mount), network repositories by URL.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from pathlib import PurePosixPath

from drplan import labels as lbl
from drplan import owner
from drplan.errors import InputError, OperationError
from drplan.plan.model import engine_on_this_host
from drplan.platform import helper as helper_image
from drplan.platform.docker import DockerEngine
from drplan.store.restic import Repository

MOUNT = "/volume"
# How the engine says a bind mount's source is missing ("bind source path does not exist")
_MISSING = "bind source path does not exist"
CACHE_VOLUME = "drplan-restic-cache"


@contextlib.contextmanager
def holding(
    engine: DockerEngine,
    volume: str | None,
    *,
    labels: dict[str, str],
    read_only: bool = True,
    repo: Repository | None = None,
    bind: bool = False,
) -> Iterator[tuple[object, dict[str, str]]]:
    """A running helper with `volume` at /volume (with `bind`, `volume` is a host
    directory of the engine's node; None: no data, only the repository); yields
    (container, restic env)."""
    image = helper_image.ensure(engine)
    mount = DockerEngine.bind_mount if bind else DockerEngine.volume_mount
    mounts = [mount(volume, MOUNT, read_only=read_only)] if volume is not None else []
    env: dict[str, str] = {}
    if repo is not None:
        if repo.type == "local":
            if not engine_on_this_host(engine.url) and not repo.shared:
                raise InputError(
                    f"{repo.where} is a local path, which the engine at {engine.url} cannot "
                    "see: use an sftp, rest or s3 repository with remote engines (or "
                    "`shared: true` for shared storage mounted at the same path there)",
                    where=engine.where,
                )
            mounts.append(DockerEngine.bind_mount(repo.url, repo.url))
        mounts.append(DockerEngine.volume_mount(CACHE_VOLUME, "/cache"))
        # the password reaches restic in the environment of each command that needs it
        # (an exec's environment is not stored in the container or shown by inspect),
        # never in a file of the container that outlives the command
        env = {
            "RESTIC_REPOSITORY": repo.url,
            "RESTIC_PASSWORD": repo.password,
            "RESTIC_CACHE_DIR": "/cache",
            **repo.env,
        }
    try:
        container = engine.start_helper(
            image, mounts=mounts, labels=labels, hostname=owner.helper_hostname()
        )
    except OperationError as exc:
        if repo is not None and repo.type == "local" and f"{_MISSING}: {repo.url}" in str(exc):
            raise OperationError(
                f"{repo.where} does not exist on the node of {engine.where}: a local "
                "repository must be a path every node holding data sees",
                where=engine.where,
            ) from exc
        raise
    try:
        yield container, env
    finally:
        with contextlib.suppress(Exception):
            engine.remove_container(container)


@contextlib.contextmanager
def holding_dir(
    engine: DockerEngine,
    path: str,
    *,
    labels: dict[str, str],
    read_only: bool = True,
    repo: Repository | None = None,
) -> Iterator[tuple[object, dict[str, str]]]:
    """A running helper with the host directory `path` (on the engine's node) at /volume,
    as :func:`holding` does for a volume; a missing directory is a located error."""
    try:
        with holding(engine, path, labels=labels, read_only=read_only, repo=repo, bind=True) as h:
            yield h
    except OperationError as exc:
        if _MISSING in str(exc):
            raise OperationError(
                f"host directory {path} does not exist on the node of {engine.where}",
                where=engine.where,
            ) from exc
        raise


def dir_exists(engine: DockerEngine, path: str, labels: dict[str, str]) -> bool:
    """Whether the host directory exists on the engine's node (seen from a helper)."""
    try:
        with holding(engine, path, labels=labels, bind=True):
            return True
    except OperationError as exc:
        if _MISSING in str(exc):
            return False
        raise


def ensure_dir(engine: DockerEngine, path: str, labels: dict[str, str]) -> None:
    """Create the host directory `path` on the engine's node, through a helper that
    mounts its nearest existing ancestor (the engine refuses to bind a missing path)."""
    parts = PurePosixPath(path).parts
    for depth in range(len(parts) - 1, 0, -1):
        ancestor = str(PurePosixPath(*parts[:depth]))
        if not dir_exists(engine, ancestor, labels):
            continue
        rest = posixpath.join(MOUNT, *parts[depth:])
        with holding(engine, ancestor, labels=labels, read_only=False, bind=True) as (c, _):
            engine.exec_run(c, ["mkdir", "-p", "--", rest], what=f"creating {path}")
        return


def is_empty_dir(engine: DockerEngine, path: str, labels: dict[str, str]) -> bool:
    """True when the host directory does not exist or holds no file at all."""
    try:
        with holding_dir(engine, path, labels=labels) as (c, _):
            res = engine.exec_run(
                c, ["find", MOUNT, "-mindepth", "1", "-print", "-quit"], what=f"directory {path}"
            )
    except OperationError as exc:
        if "does not exist" in str(exc):
            return True
        raise
    return not res.stdout.strip()


@contextlib.contextmanager
def holding_source(
    ctx, *, read_only: bool = True, repo: Repository | None = None
) -> Iterator[tuple[object, dict[str, str]]]:
    """A helper holding the source's data at /volume: its host directory (`bind`) or its
    volume."""
    if ctx.bind:
        with holding_dir(
            ctx.engine, ctx.bind, labels=labels_of(ctx), read_only=read_only, repo=repo
        ) as h:
            yield h
    else:
        with holding(
            ctx.engine, ctx.volume, labels=labels_of(ctx), read_only=read_only, repo=repo
        ) as h:
            yield h


def is_empty(engine: DockerEngine, volume: str, labels: dict[str, str]) -> bool:
    """True when the volume does not exist or holds no file at all."""
    if not engine.volume_exists(volume):
        return True
    with holding(engine, volume, labels=labels) as (c, _):
        res = engine.exec_run(
            c, ["find", MOUNT, "-mindepth", "1", "-print", "-quit"], what=f"volume {volume}"
        )
    return not res.stdout.strip()


def labels_of(ctx) -> dict[str, str]:
    """Labels of the helpers a data source starts (found again after a killed run)."""
    return lbl.owned_by(ctx.plan_name, ctx.run_id or "none")


def put_file(ctx, rel: str, chunks, *, owner: str = "", drop: tuple[str, ...] = ()) -> None:
    """Write a stream as file `rel` of the source's volume, atomically, removing the
    sibling files `drop` (suffixes, e.g. SQLite's -wal and -shm) and giving it `owner`
    (uid:gid) as it had when backed up. Used before the service starts.

    The stream goes to a temporary file; only once it has ended well does a second
    command rename it into place. If the stream fails (restic dump killed), the writer is
    killed before it sees end-of-input (`DockerEngine.exec_in`) and the temporary file is
    removed: a partial file is never renamed into place. The file is on disk before this
    returns: the recovery journal then records the step done, and a resume trusts it."""
    target = posixpath.join(MOUNT, rel)
    temp = target + ".drplan-partial"
    ctx.engine.create_volume(ctx.volume)
    commit = (
        'set -e; t=$1; p=$2; shift 2; for s in "$@"; do rm -f -- "$t$s"; done; '
        'sync -- "$p"; mv -f -- "$p" "$t"; sync -f -- "$t"'
    )
    with holding(ctx.engine, ctx.volume, labels=labels_of(ctx), read_only=False) as (c, _):
        try:
            ctx.engine.exec_in(
                c,
                ["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && exec cat > "$1"', "sh", temp],
                chunks,
                what=ctx.what,
            )
        except BaseException:
            ctx.engine.exec_run(c, ["rm", "-f", "--", temp], what=ctx.what, check=False)
            raise
        ctx.engine.exec_run(c, ["sh", "-c", commit, "sh", target, temp, *drop], what=ctx.what)
        if owner:
            ctx.engine.exec_run(c, ["chown", "--", owner, target], what=ctx.what)
