"""The helper image: restic and a few tools, made from this host's own binaries.

No registry is needed (a recovery site may have none): the image is assembled here from
the binaries drplan itself runs (restic, ssh for SFTP repositories, sqlite3 for online
SQLite backups, a shell and coreutils for fingerprints) with the shared libraries `ldd`
names, and imported into the target engine through the API. Its tag is a hash of its
content, so each engine gets it once. It assumes the engine's CPU architecture is this
host's, as a recovery site of the same kind would have.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
from functools import cache

from drplan import process
from drplan.errors import OperationError
from drplan.platform.docker import DockerEngine

REPOSITORY = "drplan/helper"
TOOLS = [
    "restic",
    "ssh",
    "sqlite3",
    "sh",
    "sleep",
    "cat",
    "find",
    "sort",
    "sha256sum",
    "dirname",
    "mv",
    "xargs",
    "wc",
    "tar",
    "mkdir",
    "rm",
    "chown",
    "stat",
    "ls",
    "du",
    "sync",
]
OPTIONAL_TOOLS = {"ssh", "sqlite3"}
EXTRA_FILES = ["/etc/ssl/certs/ca-certificates.crt"]


def _libs(binary: str) -> list[str]:
    """The shared libraries `binary` loads (none for a static one: ldd then fails)."""
    done = process.capture(["ldd", binary], timeout=60)
    if done.why is not None:  # ldd missing or stuck: the image would lack libraries
        done.check(what="building the helper image")
    out = done.text
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)", line.split("=>")[-1])
        if m and os.path.exists(m.group(1)):
            libs.append(m.group(1))
    return libs


@cache
def rootfs() -> tuple[bytes, str]:
    """The helper's root filesystem as a tar, and its content tag."""
    files: dict[str, str] = {}
    for tool in TOOLS:
        path = shutil.which(tool)
        if path is None:
            if tool in OPTIONAL_TOOLS:
                continue
            raise OperationError(
                f"{tool} is not installed on this host (needed in the helper image)"
            )
        real = os.path.realpath(path)
        files[f"/usr/bin/{tool}"] = real
        for lib in _libs(real):
            files[lib] = os.path.realpath(lib)
    for extra in EXTRA_FILES:
        if os.path.exists(extra):
            files[extra] = os.path.realpath(extra)
    buf = io.BytesIO()
    digest = hashlib.sha256()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("tmp", "root", "etc", "bin", "v", "repo"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for name, data in {
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
            "etc/group": b"root:x:0:\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for arc, real in sorted(files.items()):
            tar.add(real, arcname=arc.lstrip("/"), recursive=False)
            with open(real, "rb") as fh:
                digest.update(arc.encode() + hashlib.sha256(fh.read()).digest())
        link = tarfile.TarInfo("bin/sh")
        link.type = tarfile.SYMTYPE
        link.linkname = "/usr/bin/sh"
        tar.addfile(link)
    return buf.getvalue(), digest.hexdigest()[:12]


def image_name() -> str:
    return f"{REPOSITORY}:{rootfs()[1]}"


def ensure(engine: DockerEngine) -> str:
    """Make sure the engine has the helper image; return its name."""
    name = image_name()
    if engine.image_id(name) is None:
        data, tag = rootfs()
        engine.import_image(
            data,
            REPOSITORY,
            tag,
            changes=["ENV PATH=/usr/bin:/bin", "ENV HOME=/root", "WORKDIR /"],
        )
    return name
