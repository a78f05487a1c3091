"""Merging per-image exports into one `docker load` archive."""

from __future__ import annotations

import io
import json
import tarfile

from drplan.platform import image_archive


def _export(files: dict[str, bytes], *, symlink: tuple[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({name.split("/")[0] for name in files if "/" in name})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tar.addfile(info)
    return buf.getvalue()


def _chunks(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i : i + size]


BASE = "a" * 64
layer = bytes(range(256)) * 40  # 10 KiB, not a multiple of the block size plus a tail
db_layer = b"postgres" * 3001
app_layer = b"app" * 5003


def _image_export(repo: str, tag: str, top: str, top_layer: bytes, **kw) -> bytes:
    """A legacy `docker save` of one image: the shared base layer, its own top layer."""
    config = f"cfg{top[0]}.json"
    return _export(
        {
            f"{BASE}/layer.tar": layer,
            f"{BASE}/VERSION": b"1.0",
            f"{top}/layer.tar": top_layer,
            config: json.dumps({"image": repo}).encode(),
            "manifest.json": json.dumps(
                [
                    {
                        "Config": config,
                        "RepoTags": [f"{repo}:{tag}"],
                        "Layers": [f"{BASE}/layer.tar", f"{top}/layer.tar"],
                    }
                ]
            ).encode(),
            "repositories": json.dumps({repo: {tag: top}}).encode(),
        },
        **kw,
    )


def _two_exports() -> list[bytes]:
    return [
        _image_export("tb/pg", "15", "b" * 64, db_layer),
        _image_export(
            "tb/app",
            "latest",
            "c" * 64,
            app_layer,
            symlink=("d" * 64 + "/layer.tar", "../" + "c" * 64 + "/layer.tar"),
        ),
    ]


def test_merge_keeps_every_file_once_and_merges_the_indexes():
    merged = b"".join(image_archive.merge(_chunks(e) for e in _two_exports()))
    with tarfile.open(fileobj=io.BytesIO(merged)) as tar:
        names = tar.getnames()
        assert names.count(f"{BASE}/layer.tar") == 1  # the shared base layer, once
        assert tar.extractfile(f"{BASE}/layer.tar").read() == layer
        assert tar.extractfile("b" * 64 + "/layer.tar").read() == db_layer
        assert tar.extractfile("c" * 64 + "/layer.tar").read() == app_layer
        assert tar.getmember("d" * 64 + "/layer.tar").issym()
        assert tar.getmember(BASE).isdir()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        assert [m["RepoTags"] for m in manifest] == [["tb/pg:15"], ["tb/app:latest"]]
        repos = json.loads(tar.extractfile("repositories").read())
        assert repos == {"tb/pg": {"15": "b" * 64}, "tb/app": {"latest": "c" * 64}}
        assert names.count("manifest.json") == 1


def test_exports_are_read_one_after_the_other():
    """The engine stages an export while it is being read: the next one must not start
    before the previous is consumed."""
    started: list[int] = []
    exports = _two_exports()

    def lazily(i):
        started.append(i)
        yield from _chunks(exports[i])

    stream = image_archive.merge(lazily(i) for i in range(2))
    next(stream)
    assert started == [0]
    for _ in stream:
        pass
    assert started == [0, 1]


def test_oci_index_manifests_are_concatenated():
    def oci(digest: str) -> bytes:
        return _export(
            {
                f"blobs/sha256/{digest}": digest.encode(),
                "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
                "index.json": json.dumps(
                    {"schemaVersion": 2, "manifests": [{"digest": f"sha256:{digest}"}]}
                ).encode(),
            }
        )

    merged = b"".join(image_archive.merge(_chunks(e) for e in (oci("1" * 64), oci("2" * 64))))
    with tarfile.open(fileobj=io.BytesIO(merged)) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        assert index["schemaVersion"] == 2
        assert [m["digest"] for m in index["manifests"]] == [
            "sha256:" + "1" * 64,
            "sha256:" + "2" * 64,
        ]
        assert tar.getnames().count("oci-layout") == 1
