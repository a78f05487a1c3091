#!/usr/bin/env python3
"""What `drplan serve` costs when nothing is due: idle CPU and memory with 5 plans, and
the time of a /metrics scrape with 5 plans of 50 sources each (issue 16's cost lines:
idle CPU under 1 %, RSS under 150 MB, a scrape under 100 ms).

    .venv/bin/python bench/serve_cost.py [--idle 60] [--scrapes 50]

Five plans of 50 services (one `files` source each) are generated, each with a small
local restic repository (`drplan repo init`: the daemon reads every repository back at
start and every --refresh seconds, and a missing one would make it log and retry,
which is not the idle state being measured). Nothing is due: backups `daily_at` the
hour opposite to now, and the state file is seeded (serve/state.py, as the daemon
writes it) with one successful backup, prune and check per plan, the backup's details a
`drplan backup --json` document of 50 sources, so the scrape exports 250 sources.

The real `drplan serve` runs on them. Once its first reads of the repositories are over
(status, runs and drills of each plan, read in the daemon's process by restic children:
all of them in the `facts` table and no child left), its own CPU (utime+stime of
/proc/PID/stat) is sampled over --idle seconds, with VmRSS and VmHWM. The children's CPU
at start (cutime+cstime) is reported separately, and amortized over the --refresh period
(the daemon's own default unless --refresh says otherwise): that is what the periodic
reads cost on average. Baselines in the same invocation: a bare `python -c "import time;
time.sleep(N)"` measured over the same window (the floor of any Python process), and a
prometheus_client HTTP server with its default registry, scraped the same number of
times (the floor of any Python /metrics endpoint).
Results go to bench/serve-cost-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "serve-cost-results.json"
DRPLAN = str(Path(sys.executable).parent / "drplan")
PASSWORD_ENV = "DRPLAN_BENCH_PASSWORD"
PLANS, SOURCES = 5, 50
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> dict[str, object]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg()[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def far_from_now() -> str:
    """A daily slot 12 hours away, so no backup falls due during the measure."""
    return (datetime.now() + timedelta(hours=12)).strftime("%H:%M")


def write_plan(dest: Path, index: int) -> Path:
    """A plan of SOURCES services, one `files` source each, and its compose file."""
    name = f"servecost{index}"
    dest.mkdir(parents=True)
    services = {
        f"s{i:02d}": {"image": "busybox", "volumes": [f"v{i:02d}:/data"]} for i in range(SOURCES)
    }
    compose = {"services": services, "volumes": {f"v{i:02d}": None for i in range(SOURCES)}}
    (dest / "compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    plan = {
        "version": 1,
        "stack": {"name": name, "compose": "compose.yml"},
        "sites": {
            "primary": {"role": "primary", "docker_host": "unix:///run/drplan/primary/docker.sock"},
            "recovery": {
                "role": "recovery",
                "docker_host": "unix:///run/drplan/recovery/docker.sock",
            },
        },
        "repositories": {
            "local": {
                "url": str(dest / "repo"),
                "role": "primary",
                "password": {"env": PASSWORD_ENV},
            }
        },
        "backup": {"schedule": {"daily_at": far_from_now()}, "retention": {"keep_daily": 7}},
        "objectives": {"rpo": "1d", "rto": "1h"},
        "services": {
            f"s{i:02d}": {
                "data": {"files": {"engine": "files", "volume": f"v{i:02d}", "path": "/data"}}
            }
            for i in range(SOURCES)
        },
    }
    path = dest / "drplan.yml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def backup_document(plan: str) -> dict:
    """What `drplan backup --json` prints for a run of SOURCES sources (cli/backup.py)."""
    now = datetime.now(UTC)
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    sources = [
        {
            "service": f"s{i:02d}",
            "source": "files",
            "engine": "files",
            "method": "live",
            "snapshot": f"{i:064x}"[-64:],
            "path": "/data",
            "bytes": 1_000_000 * (i + 1),
            "seconds": 0.5 + i / 10,
            "fingerprint": None,
            "consistency": "crash",
            "stats": {"files_new": i, "data_added": 1000 * i},
            "node": "node-1",
        }
        for i in range(SOURCES)
    ]
    return {
        "run_id": now.strftime("%Y%m%dT%H%M%SZ") + "-bench",
        "plan": plan,
        "complete": True,
        "started_at": stamp,
        "finished_at": stamp,
        "rpo_point": stamp,
        "sources": sources,
        "images": {},
        "images_snapshot": None,
        "downtime_s": {},
        "errors": [],
        "timings": {},
        "hooks": [],
    }


def seed(state_dir: Path, names: list[str]) -> None:
    """One successful backup (with its details), prune and check per plan, as the daemon
    records them: nothing is due when it starts."""
    from drplan.serve import state as st

    s = st.State(state_dir / "serve.sqlite")
    for name in names:
        doc = backup_document(name)
        run = s.start(name, "backup", "schedule")
        s.finish(
            run,
            st.OK,
            exit_code=0,
            ref=doc["run_id"],
            nbytes=sum(x["bytes"] for x in doc["sources"]),
            details=doc,
        )
        for job in ("prune", "check"):
            s.finish(s.start(name, job, "schedule"), st.OK, exit_code=0)


def stat(pid: int) -> dict[str, float]:
    """CPU seconds (own and waited-for children's) and memory (bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the command: state is fields[0]; utime=13, stime=14, cutime=15, cstime=16 (1-based)
    utime, stime, cutime, cstime = (int(x) / TICK for x in fields[11:15])
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            status[key] = int(value.split()[0]) * 1024
    return {"cpu": utime + stime, "children_cpu": cutime + cstime, **status}


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


def facts_read(state_dir: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{state_dir / 'serve.sqlite'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM facts").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def wait(what: str, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def scrape_times(url: str, n: int) -> tuple[list[float], bytes]:
    get(url)  # the first one warms nothing up in the daemon, but does in urllib
    times, body = [], b""
    for _ in range(n):
        t0 = time.perf_counter()
        body = get(url)
        times.append(time.perf_counter() - t0)
    return times, body


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


BASELINE_SERVER = """
import sys, time
from prometheus_client import start_http_server
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
time.sleep(3600)
"""


def daemon_refresh_default() -> float:
    """`drplan serve`'s own --refresh default: the period its repository reads recur at."""
    import inspect

    from drplan.cli.serve import serve

    return float(inspect.signature(serve).parameters["refresh"].default.default)


def measure_idle(pid: int, window: float, nproc: int, refresh_s: float) -> dict[str, float]:
    """The daemon's own CPU over `window` seconds of idleness, against a sleeping Python
    process measured over the same window."""
    before = stat(pid)
    sleeper = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({window + 30})"])
    try:
        time.sleep(1.0)  # past the sleeper's own start-up
        s_before = stat(sleeper.pid)
        t0 = time.monotonic()
        time.sleep(window)
        wall = time.monotonic() - t0
        after, s_after = stat(pid), stat(sleeper.pid)
    finally:
        sleeper.terminate()
        sleeper.wait(30)
    cpu = (after["cpu"] - before["cpu"]) / wall
    base = (s_after["cpu"] - s_before["cpu"]) / wall
    refresh = before["children_cpu"]  # restic's CPU for the reads at start: one refresh
    return {
        "window_s": round(wall, 1),
        "daemon_cpu_percent_of_one_core": round(100 * cpu, 3),
        "daemon_cpu_percent_of_machine": round(100 * cpu / nproc, 3),
        "children_cpu_in_window_s": round(after["children_cpu"] - before["children_cpu"], 2),
        "refresh_children_cpu_s": round(refresh, 2),
        "refresh_s": refresh_s,
        "refresh_amortized_percent_of_one_core": round(100 * refresh / refresh_s, 3),
        "daemon_own_cpu_at_start_s": round(before["cpu"], 2),
        "rss_mb": round(after["VmRSS"] / 2**20, 1),
        "hwm_mb": round(after["VmHWM"] / 2**20, 1),
        "baseline_sleep_cpu_percent_of_one_core": round(100 * base, 3),
        "baseline_sleep_rss_mb": round(s_after["VmRSS"] / 2**20, 1),
        "rss_ratio_to_baseline": round(after["VmRSS"] / s_after["VmRSS"], 2),
    }


def measure_scrape(port: int, n: int) -> dict[str, float]:
    """/metrics of the daemon, n times, against a bare prometheus_client endpoint."""
    times, body = scrape_times(f"http://127.0.0.1:{port}/metrics", n)
    lines = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
    sources = sum(1 for ln in lines if ln.startswith("drplan_source_backup_bytes{"))
    if sources != PLANS * SOURCES:
        raise SystemExit(f"the scrape exports {sources} sources, not {PLANS * SOURCES}")
    bport = free_port()
    server = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(bport)])
    try:
        wait("the baseline endpoint", lambda: _answers(f"http://127.0.0.1:{bport}/metrics"), 30)
        btimes, bbody = scrape_times(f"http://127.0.0.1:{bport}/metrics", n)
    finally:
        server.terminate()
        server.wait(30)
    return {
        **summary(times),
        "bytes": len(body),
        "series": len(lines),
        "source_series": sources,
        "baseline": {**summary(btimes), "bytes": len(bbody)},
        "median_ratio_to_baseline": round(statistics.median(times) / statistics.median(btimes), 2),
    }


def run(base: Path, idle: float, scrapes: int, nproc: int, refresh_s: float) -> dict[str, object]:
    """Plans, repositories, seeded state; the daemon started, settled, measured."""
    env = {**os.environ, PASSWORD_ENV: "bench-secret"}
    paths = [write_plan(base / f"p{i}", i) for i in range(PLANS)]
    for p in paths:
        subprocess.run([DRPLAN, "repo", "init", str(p)], check=True, env=env, capture_output=True)
    state = base / "state"
    seed(state, [yaml.safe_load(p.read_text())["stack"]["name"] for p in paths])
    port = free_port()
    argv = [DRPLAN, "serve", *map(str, paths), "--state-dir", str(state)]
    argv += ["--listen", f"127.0.0.1:{port}", "--refresh", f"{refresh_s:g}"]
    with open(base / "serve.log", "w") as log:
        t0 = time.monotonic()
        daemon = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait(
                "the daemon's first reads of the repositories",
                lambda: facts_read(state) >= 3 * PLANS and not children(daemon.pid),
                600,
            )
            settled = time.monotonic() - t0
            out = measure_idle(daemon.pid, idle, nproc, refresh_s)
            out["settled_after_s"] = round(settled, 1)
            scrape = measure_scrape(port, scrapes)
            out["rss_after_scrapes_mb"] = round(stat(daemon.pid)["VmRSS"] / 2**20, 1)
            out["hwm_after_scrapes_mb"] = round(stat(daemon.pid)["VmHWM"] / 2**20, 1)
        finally:
            daemon.terminate()
            code = daemon.wait(60)
    text = (base / "serve.log").read_text()
    started = [ln for ln in text.splitlines() if " started (" in ln]
    if started or code != 0:
        raise SystemExit(f"not idle (jobs ran) or a bad exit ({code}):\n{text[-3000:]}")
    return {"idle": out, "scrape": scrape}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle", type=float, default=60.0, help="idle window (seconds)")
    ap.add_argument("--scrapes", type=int, default=50, help="scrapes of /metrics")
    ap.add_argument(
        "--refresh", type=float, default=None, help="the daemon's --refresh (default: its own)"
    )
    args = ap.parse_args()
    if args.refresh is None:
        args.refresh = daemon_refresh_default()
    mach = machine()
    result: dict[str, object] = {"machine": mach, "plans": PLANS, "sources_per_plan": SOURCES}
    result["command"] = (
        f"bench/serve_cost.py --idle {args.idle:g} --scrapes {args.scrapes}"
        f" --refresh {args.refresh:g}"
    )
    with tempfile.TemporaryDirectory(prefix="serve-cost-") as tmp:
        result.update(run(Path(tmp), args.idle, args.scrapes, int(mach["nproc"]), args.refresh))  # type: ignore[arg-type]
    idle, scrape = result["idle"], result["scrape"]
    result["verdicts"] = {
        "idle_cpu_under_1_percent": idle["daemon_cpu_percent_of_one_core"] < 1.0,  # type: ignore[index]
        "rss_under_150_mb": idle["hwm_after_scrapes_mb"] < 150,  # type: ignore[index]
        "scrape_under_100_ms": scrape["p95_ms"] < 100,  # type: ignore[index]
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _answers(url: str) -> bool:
    try:
        get(url)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
