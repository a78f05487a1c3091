"""A file restored into a volume from a stream that dies half-way is never put in place
(threat model, class 6).

Redis and SQLite restores write one file into the fresh volume from `restic dump`. Here the
stream fails after a few megabytes, as when restic is killed: the step fails, the file the
volume held before is still there unchanged, and no partial file is left beside it. A real
engine and helper container; only the stream is made to fail.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from drplan.platform.docker import DockerEngine
from drplan.sources import volume as vol
from testbed import sites

pytestmark = pytest.mark.integration


class Killed(OSError):
    pass


def _dying_stream():
    for _ in range(4):
        yield b"x" * (1 << 20)
    raise Killed("restic dump was killed")


def _files(client, volume: str) -> dict[str, str]:
    out = client.containers.run(
        "drplan-tb/app:latest",
        [
            "sh",
            "-c",
            "cd /v && for f in $(ls -A); do "
            'printf \'%s %s\\n\' "$f" "$(md5sum < "$f" | cut -c1-8)"; '
            "done",
        ],
        volumes={volume: {"bind": "/v"}},
        remove=True,
        network_mode="none",
        labels={"org.drplan.test": "put-file"},
    )
    return dict(line.split() for line in out.decode().splitlines())


def test_a_stream_that_dies_leaves_the_volume_as_it_was(testbed):
    client = sites.client(testbed["primary"])
    name = f"putfile{uuid.uuid4().hex[:6]}"
    client.volumes.create(name, labels={"org.drplan.test": "put-file"})
    engine = DockerEngine("primary", testbed["primary"])
    ctx = SimpleNamespace(
        engine=engine, volume=name, plan_name=name, run_id="fault", what="test put_file"
    )
    try:
        vol.put_file(ctx, "dump.rdb", [b"the data as it was\n"])
        before = _files(client, name)
        assert set(before) == {"dump.rdb"}, before
        with pytest.raises(Killed):
            vol.put_file(ctx, "dump.rdb", _dying_stream())
        assert _files(client, name) == before
        # and a whole stream does replace it
        vol.put_file(ctx, "dump.rdb", [b"new\n"])
        after = _files(client, name)
        assert set(after) == {"dump.rdb"} and after != before, after
    finally:
        engine.remove_helpers({"org.drplan.plan": name}, only_dead=False)
        client.volumes.get(name).remove(force=True)
        engine.close()
