#!/usr/bin/env python3
"""What reaching an engine over ssh:// or TLS costs a backup and a restore: the stream of
a dump out of a container, and of a replay into one, through each transport.

    .venv/bin/python bench/remote_transport.py [--mb 512] [--repeat 3]

One container on the testbed's primary engine; through each transport drplan's own
DockerEngine streams --mb MB out of it (`head -c` of /dev/zero, read as exec_out reads a
pg_dump) and --mb MB into it (exec_in feeding `sha256sum`, as a replay is fed; the
digest is checked). Transports, in the same invocation:
- baseline: the engine's unix socket, as drplan reaches a local engine;
- ssh: `ssh://` through a real sshd on 127.0.0.1 whose key runs only `docker system
  dial-stdio` (testbed/servers.docker_ssh_server; the ed25519/chacha20 default ciphers);
- tls: `tcp://` with mutual TLS (testbed/servers.docker_tls_endpoint: socat), dialled by
  the docker CLI behind drplan's bridge.
Best of --repeat, MB/s and the ratio to the baseline. On loopback the network costs
nothing: what is measured is the transport's own CPU (encryption, the bridge's pumps,
the extra processes), i.e. the ceiling it puts on a restore over a fast LAN.
Results go to bench/remote-transport-results.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drplan.plan.model import TlsFiles
from drplan.platform.docker import Container, DockerEngine
from testbed import servers, sites

CHUNK = 1 << 16


def stream_out(engine: DockerEngine, c: Container, nbytes: int) -> float:
    t = time.perf_counter()
    got = 0
    for chunk in engine.exec_out(c, ["head", "-c", str(nbytes), "/dev/zero"], what="bench"):
        got += len(chunk)
    assert got == nbytes, (got, nbytes)
    return time.perf_counter() - t


def stream_in(engine: DockerEngine, c: Container, nbytes: int) -> float:
    block = os.urandom(CHUNK)
    count = nbytes // CHUNK
    want = hashlib.sha256(block * count).hexdigest()
    t = time.perf_counter()
    res = engine.exec_in(c, ["sha256sum"], (block for _ in range(count)), what="bench")
    elapsed = time.perf_counter() - t
    assert res.stdout.split()[0].decode() == want, res
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    nbytes = args.mb << 20
    url = sites.up()["primary"]
    client = sites.client(url)
    image = next(t for i in client.images.list() for t in i.tags if "postgres" in t)
    box = client.containers.run(image, ["86400"], entrypoint=["sleep"], detach=True)
    c = Container(id=box.id, name=box.name)
    results: dict[str, dict[str, float]] = {}
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            servers.docker_ssh_server(Path(tmp) / "ssh", url) as ssh,
            servers.docker_tls_endpoint(Path(tmp) / "tls", url) as tls,
        ):
            engines = {
                "baseline (unix socket)": DockerEngine("bench", url),
                "ssh": DockerEngine("bench", ssh.url, ssh_config=str(ssh.ssh_config)),
                "tls": DockerEngine("bench", tls.url, tls=TlsFiles(**tls.tls)),
            }
            for name, engine in engines.items():
                out = min(stream_out(engine, c, nbytes) for _ in range(args.repeat))
                inn = min(stream_in(engine, c, nbytes) for _ in range(args.repeat))
                results[name] = {"out_mb_s": args.mb / out, "in_mb_s": args.mb / inn}
                engine.close()
    finally:
        box.remove(force=True)
    base = results["baseline (unix socket)"]
    where = f"{platform.node()}, {os.cpu_count()} cores"
    print(f"{args.mb} MB each way, best of {args.repeat} ({where})")
    print(f"{'transport':24} {'out MB/s':>9} {'ratio':>6} {'in MB/s':>9} {'ratio':>6}")
    for name, r in results.items():
        print(
            f"{name:24} {r['out_mb_s']:9.0f} {r['out_mb_s'] / base['out_mb_s']:6.2f} "
            f"{r['in_mb_s']:9.0f} {r['in_mb_s'] / base['in_mb_s']:6.2f}"
        )
    out_file = Path(__file__).with_name("remote-transport-results.json")
    out_file.write_text(
        json.dumps(
            {"mb": args.mb, "repeat": args.repeat, "cores": os.cpu_count(), "results": results},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
