#!/usr/bin/env python3
"""What restic itself allows: files restore throughput of restic alone against `cp -a`.

    .venv/bin/python bench/restore_bound.py --gb 2.0 [--restic /path/to/other/restic]

drplan restores a files volume with restic. Its goal is a restore at >= 0.7x the throughput
of `cp -a` of the same data on the same disk. This benchmark measures the bound that no
wrapper can beat: restic run by hand on the host, with no drplan, no container and no Docker.
The data is the testbed generator's kind of uploads (1 MiB files, half incompressible, in 97
directories).

Each measure starts with the page cache dropped and ends with a `sync` of what it wrote, as
in `bench/recovery.py`. Trials alternate the variants to spread the machine's drift:
 - `cp -a`: the baseline, copying the generated tree;
 - `restic`: `restic restore latest` (the Debian package on PATH);
 - `restic x2`: two restic processes side by side (`--include` half of the directories,
   `--exclude` the same half), as drplan does for big volumes;
 - `restic, no compression`: the same data in a repository written with
   `--compression off`, which shows whether decompression is what costs;
 - `--restic PATH`: another restic binary on the first repository, if given.
For each variant: wall time, the CPU time of the processes (user + system), MB/s, and the
ratio cp -a time / variant time (the throughput ratio; >= 0.7 is the goal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testbed" / "images" / "app"))

import generate  # noqa: E402  (the testbed generator's file contents)
from benchlib import drop_caches  # noqa: E402

FILE_SIZE = 1 << 20
DIRS = 97


def _write(args: tuple[str, int, int]) -> int:
    root, first, last = args
    for i in range(first, last):
        d = Path(root) / f"{i % DIRS:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"upload-{i:07d}.bin").write_bytes(generate.file_bytes(3, i, FILE_SIZE))
    return last - first


def generate_tree(root: Path, files: int) -> None:
    chunks = [(str(root), i, min(i + 64, files + 1)) for i in range(1, files + 1, 64)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = 0
        for n in pool.map(_write, chunks):
            done += n
            print(f"\r  generated {done}/{files} files", end="", flush=True)
    print()


def timed(commands: list[list[str]], out: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run the commands side by side, then `sync -f out`; wall and children's CPU time."""
    shutil.rmtree(out, ignore_errors=True)
    drop_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL) for c in commands]
    for p, c in zip(procs, commands, strict=True):
        if p.wait() != 0:
            raise SystemExit(f"failed: {' '.join(c)}")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sync", "-f", str(out)], check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(out, ignore_errors=True)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="GB of generated uploads")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--restic", help="another restic binary to measure beside the packaged one")
    ap.add_argument("--workdir", default="/var/lib/drplan-bench/restore-bound")
    a = ap.parse_args()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data, out = work / "data", work / "out"
    files = int(a.gb * 1024)
    print(f"generating {files} files of 1 MiB in {data} ...", flush=True)
    generate_tree(data, files)
    env = {**os.environ, "RESTIC_PASSWORD": "bench-only-password"}
    repos = {"auto": work / "repo", "off": work / "repo-nocompress"}
    for mode, repo in repos.items():
        subprocess.run(
            ["restic", "init", "-q", "-r", str(repo)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            ["restic", "backup", "-q", "-r", str(repo), "--compression", mode, "data"],
            env=env,
            check=True,
            cwd=work,
            stdout=subprocess.DEVNULL,
        )
    half = [f"--include={data}/{d:02d}" for d in range(0, DIRS, 2)]

    def restore(binary: str, repo: Path, *extra: str) -> list[str]:
        return [binary, "restore", "-q", "-r", str(repo), "latest", "--target", str(out), *extra]

    variants: dict[str, list[list[str]]] = {
        "cp -a": [["cp", "-a", str(data), str(out)]],
        "restic": [restore("restic", repos["auto"])],
        "restic x2": [
            restore("restic", repos["auto"], *half),
            restore("restic", repos["auto"], *[h.replace("--include", "--exclude") for h in half]),
        ],
        "restic, no compression": [restore("restic", repos["off"])],
    }
    if a.restic:
        version = subprocess.run([a.restic, "version"], capture_output=True, text=True)
        variants[f"other restic ({version.stdout.split()[1]})"] = [restore(a.restic, repos["auto"])]
    data_bytes = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for trial in range(a.trials):
        for name, commands in variants.items():
            wall, cpu = timed(commands, out, env)
            runs[name].append((wall, cpu))
            print(f"trial {trial + 1}: {name:<28} {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)
    cp_s = min(w for w, _ in runs["cp -a"])
    results = {
        "data_bytes": data_bytes,
        "restic": subprocess.run(
            ["restic", "version"], capture_output=True, text=True
        ).stdout.strip(),
        "variants": {
            name: {
                "best_s": round(min(w for w, _ in r), 2),
                "runs_s": [round(w, 2) for w, _ in r],
                "cpu_s": [round(c, 2) for _, c in r],
                "mb_s": round(data_bytes / min(w for w, _ in r) / 1e6, 1),
                "throughput_vs_cp_a": round(cp_s / min(w for w, _ in r), 3),
            }
            for name, r in runs.items()
        },
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
    }
    print(json.dumps(results, indent=2))
    for name, r in results["variants"].items():
        if name != "cp -a":
            print(
                f"{name}: {r['throughput_vs_cp_a']}x the throughput of cp -a "
                f"(best of {a.trials}; goal for drplan's restore >= 0.7)"
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
