"""Several `docker save` exports merged, as they stream, into one archive `docker load` reads.

Why not one export of all the images: the Engine API stages an export in its data root's
tmp directory before sending it, so exporting the whole stack at once costs the disk the
size of every image together. Exported one by one, the staging is bounded by the largest
image, and merging keeps the repository's format a single `images.tar` that a plain
`restic dump ... | docker load` can read.

Both export formats are content-addressed: a path (a layer directory named by its chain,
a config or blob named by its digest) has the same content in every export, so a path
already written is skipped (shared base layers are stored once). The index files
(`manifest.json`, `repositories`, and the OCI `index.json`) are merged and written last.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
INDEX_FILES = ("manifest.json", "repositories", "index.json")


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % _BLOCK)


def _merge_index(name: str, merged: dict, data: bytes) -> None:
    doc = json.loads(data)
    if name == "manifest.json":
        merged.setdefault(name, []).extend(doc)
    elif name == "repositories":
        repos = merged.setdefault(name, {})
        for repo, tags in doc.items():
            repos.setdefault(repo, {}).update(tags)
    else:  # OCI index.json: one list of manifests
        index = merged.setdefault(name, {k: v for k, v in doc.items() if k != "manifests"})
        index.setdefault("manifests", []).extend(doc.get("manifests", []))


def merge(exports: Iterable[Iterable[bytes]]) -> Iterator[bytes]:
    """One tar stream from several image exports, each read only once the previous one
    is done (so the engine stages one export at a time)."""
    seen: set[str] = set()
    merged: dict = {}
    for chunks in exports:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), CHUNK), mode="r|") as tar:
            for info in tar:
                if info.name in INDEX_FILES:
                    _merge_index(info.name, merged, tar.extractfile(info).read())
                    continue
                if info.name in seen:
                    continue
                seen.add(info.name)
                yield info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
                if info.isreg():
                    f = tar.extractfile(info)
                    while chunk := f.read(CHUNK):
                        yield chunk
                    yield b"\0" * (-info.size % _BLOCK)
    for name in INDEX_FILES:
        if name in merged:
            yield _member(name, json.dumps(merged[name]).encode())
    yield b"\0" * (2 * _BLOCK)
