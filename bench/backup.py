"""Backup benchmark on the testbed (run by hand, not in CI; results in bench/RESULTS.md).

    bash scripts/testbed up
    .venv/bin/python bench/backup.py [--gb 1.0] [--workdir /var/tmp/drplan-bench] [--json OUT]

In one invocation, on one campus stack filled with about `--gb` GB per uploads volume
(two volumes, different content) plus rows and keys:
  1. drplan backup, first run, into a fresh repository (wall time, peak RSS of the drplan
     process and of its process tree, extra disk used outside the repository);
  2. drplan backup after rewriting 1% of the files of both volumes;
  3. files throughput: `restic backup` of the web volume's directory on disk (host restic,
     fresh repository) against drplan's files source for the same volume (a fresh
     repository that already holds the images and the plan, as after any first run),
     alternated twice; each side starts with the page cache dropped, so both read the
     volume from the disk (`--only-files`: this step alone, only the web volume filled);
  4. the seed's method: scale every service to 0, `tar czf` every volume directory, scale
     back (dependencies first) and wait healthy; all of it timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import docker
from benchlib import drop_caches

from testbed import generator, plans, sites

ENV = {**os.environ, plans.PASSWORD_ENV: plans.PASSWORD}
URL: list[str] = []
ORDER_UP = ["db", "redis", "web", "exam"]  # dependencies first


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def dir_bytes(path: Path) -> int:
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
    return total


def fs_used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def scratch_dirs(client, plan: str) -> list[Path]:
    """Where a backup could leave bytes outside the repository: restic caches (host and
    helper volume), the engine's tmp (docker save), the helpers' writable layers."""
    dirs = [
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "restic",
        Path(client.info()["DockerRootDir"]) / "tmp",
    ]
    with contextlib.suppress(docker.errors.NotFound):
        dirs.append(Path(client.volumes.get("drplan-restic-cache").attrs["Mountpoint"]))
    for c in client.containers.list(filters={"label": f"org.drplan.plan={plan}"}):
        upper = c.attrs.get("GraphDriver", {}).get("Data", {}).get("UpperDir")
        if upper:
            dirs.append(Path(upper))
    return dirs


class Monitor:
    """Peak RSS of a process (and its tree) and peak extra disk use outside `repo`:
    the filesystem's growth minus the repository's (includes anything else running on the
    machine), and the growth of the places the backup itself writes to (scratch_dirs)."""

    def __init__(self, pid: int, repo: Path, client=None, plan: str = "") -> None:
        self.pid, self.repo, self.client, self.plan = pid, repo, client, plan
        self.used0, self.repo0 = fs_used(repo), dir_bytes(repo)
        self.scratch0 = self.scratch()
        self.peak_scratch = 0
        self.by_dir: dict[str, int] = {}
        self.load = [os.getloadavg()[0]]
        self.peak_rss = self.peak_tree = self.peak_extra = 0
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        n = 0
        while not self.stop:
            self.peak_rss = max(self.peak_rss, rss_kb(self.pid))
            self.peak_tree = max(self.peak_tree, sum(rss_kb(p) for p in tree_pids(self.pid)))
            if n % 5 == 0:
                extra = (fs_used(self.repo) - self.used0) - (dir_bytes(self.repo) - self.repo0)
                self.peak_extra = max(self.peak_extra, extra)
                self.peak_scratch = max(self.peak_scratch, self.scratch() - self.scratch0)
                self.load.append(os.getloadavg()[0])
            n += 1
            time.sleep(0.1)

    def scratch(self) -> int:
        if self.client is None:
            return 0
        total = 0
        with contextlib.suppress(Exception):
            for d in scratch_dirs(self.client, self.plan):
                n = dir_bytes(d)
                total += n
                key = "helper layer" if "overlay2" in str(d) else str(d)
                if hasattr(self, "scratch0"):
                    self.by_dir[key] = max(self.by_dir.get(key, 0), n)
        return total

    def done(self) -> dict:
        self.stop = True
        self.t.join()
        return {
            "peak_rss_mb": round(self.peak_rss / 1024, 1),
            "peak_tree_rss_mb": round(self.peak_tree / 1024, 1),
            "peak_extra_disk_mb": round(max(0, self.peak_extra) / 2**20, 1),
            "peak_scratch_disk_mb": round(max(0, self.peak_scratch) / 2**20, 1),
            "load_avg_max": max(self.load),
            "scratch_peak_by_dir_mb": {k: round(v / 2**20, 1) for k, v in self.by_dir.items()},
        }


def drplan_backup(tp, *args: str, monitor: bool = True) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [plans.DRPLAN, "backup", "--json", str(tp.path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    mon = (
        Monitor(proc.pid, Path(tp.repo), docker.DockerClient(base_url=URL[0]), tp.name)
        if monitor
        else None
    )
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    res = mon.done() if mon else {}
    if proc.returncode != 0:
        raise SystemExit(f"drplan backup failed: {err[-3000:]}")
    run = json.loads(out)
    res.update(seconds=round(wall, 2), run=run)
    return res


def mountpoint(client, volume: str) -> str:
    return client.volumes.get(volume).attrs["Mountpoint"]


def seed_method(url: str, name: str, volumes: list[str], out: Path) -> float:
    """Stop everything, tar czf every volume, restart in dependency order, wait healthy."""
    client = docker.DockerClient(base_url=url)
    t0 = time.monotonic()
    for svc in reversed(ORDER_UP):
        client.services.get(f"{name}_{svc}").scale(0)
    while client.api.containers(filters={"label": f"com.docker.stack.namespace={name}"}):
        time.sleep(0.2)
    for vol in volumes:
        subprocess.run(
            ["tar", "czf", str(out / f"{vol}.tar.gz"), "-C", mountpoint(client, vol), "."],
            check=True,
        )
    for svc in ORDER_UP:
        client.services.get(f"{name}_{svc}").scale(1)
        deadline = time.monotonic() + 300
        while True:
            cs = client.containers.list(
                filters={"label": f"com.docker.swarm.service.name={name}_{svc}"}
            )
            if cs and cs[0].attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{svc} not healthy after the seed's restart")
            time.sleep(0.2)
            for c in cs:
                c.reload()
    return time.monotonic() - t0


def files_throughput(client, tp, work: Path, trials: int = 2) -> dict:
    """Raw restic of the web volume's directory vs drplan's files source for the same
    volume, alternated `trials` times, each into a fresh repository, page cache dropped
    before each. drplan's repository first gets the images and the plan (a run of the
    small redis source), as any repository has after its first run, so that the web run
    measures the files source alone. No monitor thread runs beside either side."""
    web_dir = mountpoint(client, f"{tp.name}_files")
    web_bytes = dir_bytes(Path(web_dir))
    raw_times, src_times, run_times, runs = [], [], [], []
    for n in range(trials):
        raw_repo = work / f"raw-repo-{n}"
        renv = plans.restic_env(str(raw_repo))
        subprocess.run(["restic", "init"], env=renv, check=True, capture_output=True)
        drop_caches()
        t0 = time.monotonic()
        subprocess.run(
            ["restic", "backup", "--host", "raw", web_dir],
            env=renv,
            check=True,
            capture_output=True,
        )
        raw_times.append(time.monotonic() - t0)
        shutil.rmtree(raw_repo)

        alone = plans.adapt("campus", work / f"alone-{n}", name=tp.name)
        alone.ports = tp.ports
        subprocess.run(
            [plans.DRPLAN, "repo", "init", str(alone.path)],
            env=ENV,
            check=True,
            capture_output=True,
        )
        drplan_backup(alone, "--service", "redis", monitor=False)  # images and plan stored
        drop_caches()
        web_run = drplan_backup(alone, "--service", "web", monitor=False)
        src = next(s for s in web_run["run"]["sources"] if s["service"] == "web")
        src_times.append(src["seconds"])
        run_times.append(web_run["seconds"])
        runs.append(web_run["run"]["run_id"])
        shutil.rmtree(work / f"alone-{n}")
    raw_s = sum(raw_times) / trials
    src_s = sum(src_times) / trials
    run_s = sum(run_times) / trials
    result = {
        "bytes": web_bytes,
        "trials": trials,
        "raw_restic_s": round(raw_s, 2),
        "raw_restic_runs_s": [round(x, 2) for x in raw_times],
        "drplan_source_s": round(src_s, 2),
        "drplan_source_runs_s": src_times,
        "drplan_run_s": round(run_s, 2),
        "drplan_run_runs_s": [round(x, 2) for x in run_times],
        "raw_mb_s": round(web_bytes / raw_s / 1e6, 1),
        "drplan_mb_s": round(web_bytes / src_s / 1e6, 1),
        "ratio_source": round(raw_s / src_s, 3),
        "ratio_whole_command": round(raw_s / run_s, 3),
    }
    print("files throughput:", result, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="GB of uploads per volume")
    ap.add_argument("--workdir", default="/var/tmp/drplan-bench")
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the stack and repositories")
    ap.add_argument(
        "--only-files", action="store_true", help="measure the files throughput only (step 3)"
    )
    a = ap.parse_args()
    url = sites.up()["primary"]
    URL.append(url)
    client = sites.client(url)
    work = Path(a.workdir) / uuid.uuid4().hex[:6]
    work.mkdir(parents=True)
    tp = plans.adapt("campus", work / "plan", name=f"bench{work.name}")
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "restic": subprocess.run(
                ["restic", "version"], capture_output=True, text=True
            ).stdout.strip(),
        }
    }
    plans.deploy(url, tp)
    try:
        size = generator.Size.gigabytes(a.gb)
        t0 = time.monotonic()
        writers = ("web",) if a.only_files else ("web", "exam")
        for seed, svc in enumerate(writers, start=1):
            generator.run(
                client,
                tp.name,
                svc,
                [
                    "--seed",
                    str(seed),
                    "--rows",
                    str(size.rows),
                    "--files",
                    str(size.files),
                    "--file-size",
                    str(size.file_size),
                    "--keys",
                    str(size.keys),
                ],
            )
        results["populate_s"] = round(time.monotonic() - t0, 1)
        vols = [f"{tp.name}_{v}" for v in ("db-data", "redis-data", "files", "exam-files")]
        results["data_bytes"] = sum(dir_bytes(Path(mountpoint(client, v))) for v in vols)
        print(f"data: {results['data_bytes'] / 2**30:.2f} GiB", flush=True)
        subprocess.run(
            [plans.DRPLAN, "repo", "init", str(tp.path)], env=ENV, check=True, capture_output=True
        )

        if a.only_files:
            results["files_throughput"] = files_throughput(client, tp, work)
        else:
            whole_benchmark(url, client, tp, work, vols, results)
    finally:
        if not a.keep:
            plans.remove(url, tp)
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


def whole_benchmark(url, client, tp, work: Path, vols: list[str], results: dict) -> None:
    """Steps 1, 2 and 4 (and 3): the full run, the 1 % run, the seed's method."""
    full = drplan_backup(tp)
    print("full run:", {k: v for k, v in full.items() if k != "run"}, flush=True)
    touched = sum(generator.touch_files(client, tp.name, s, percent=1) for s in ("web", "exam"))
    incr = drplan_backup(tp)
    print(f"after 1% ({touched} files):", {k: v for k, v in incr.items() if k != "run"}, flush=True)
    results["full"] = {k: v for k, v in full.items() if k != "run"} | {
        "timings": full["run"]["timings"],
        "bytes": sum(s["bytes"] for s in full["run"]["sources"]),
    }
    results["one_percent"] = {k: v for k, v in incr.items() if k != "run"} | {
        "timings": incr["run"]["timings"],
        "touched_files": touched,
        "files_stats": {
            s["service"]: s["stats"] for s in incr["run"]["sources"] if s["engine"] == "files"
        },
    }

    results["files_throughput"] = files_throughput(client, tp, work)

    seed_dir = work / "seed"
    seed_dir.mkdir()
    seed_s = seed_method(url, tp.name, vols, seed_dir)
    results["seed_method"] = {"seconds": round(seed_s, 2), "archive_bytes": dir_bytes(seed_dir)}
    results["ratios"] = {
        "full_vs_seed": round(seed_s / full["seconds"], 2),
        "one_percent_vs_seed": round(seed_s / incr["seconds"], 2),
        "files_vs_raw_restic": results["files_throughput"]["ratio_source"],
        "extra_disk_pct_of_data": round(
            max(full["peak_extra_disk_mb"], incr["peak_extra_disk_mb"])
            * 2**20
            / results["data_bytes"]
            * 100,
            2,
        ),
        "scratch_disk_pct_of_data": round(
            max(full["peak_scratch_disk_mb"], incr["peak_scratch_disk_mb"])
            * 2**20
            / results["data_bytes"]
            * 100,
            2,
        ),
        "peak_rss_mb": max(full["peak_rss_mb"], incr["peak_rss_mb"]),
    }
    print("seed method:", results["seed_method"], flush=True)
    print(json.dumps(results["ratios"], indent=2), flush=True)


if __name__ == "__main__":
    main()
