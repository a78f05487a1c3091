#!/usr/bin/env python3
"""Wall time of drplan's commands as a user types them: each one a new process.

Times `drplan --help`, `drplan version`, `drplan validate` and `drplan plan --json` of a
500-service plan drafted by `drplan init` (from bench/plan_scale.py's compose file), N
runs each, interleaved so that a burst of load on the machine hits every command alike,
against `python -c pass` with the same interpreter in the same invocation (the floor of
any Python command). `plan --json` is timed twice: stdout a pipe (a program reads it:
compact JSON) and stdout a terminal (a person reads it: indented JSON, read and
discarded here through a pseudo-terminal).

    .venv/bin/python bench/cli_wall.py [--repeat 10] [--before DIR]

--before also times the drplan of another source tree (PYTHONPATH=DIR, same interpreter),
interleaved with this one so that both see the same load, e.g. the previous commit's:
git archive HEAD~ src | tar -x -C /tmp/before; then --before /tmp/before/src.
Modules are compiled once and read from a bytecode cache (in the temporary directory),
as an installed drplan's are. Results go to bench/cli-wall-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from plan_scale import generate  # noqa: E402

DRPLAN = str(Path(sys.executable).parent / "drplan")
RESULTS = ROOT / "cli-wall-results.json"


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg()[0],
    }


def run_piped(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from start to exit, stdout and stderr to pipes that are read."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-800:]!r}")
    return elapsed


def run_tty(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from start to exit with stdout a terminal (read and thrown away)."""
    leader, follower = pty.openpty()

    def drain() -> None:
        while True:
            try:
                if not os.read(leader, 1 << 16):
                    return
            except OSError:  # the follower side closed: the process is gone
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=follower, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    os.close(follower)
    reader.join(timeout=5)
    os.close(leader)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-800:]!r}")
    return elapsed


def cases() -> dict[str, tuple]:
    """The commands to time, each (runner, argv)."""
    return {
        "drplan --help": (run_piped, [DRPLAN, "--help"]),
        "drplan version": (run_piped, [DRPLAN, "version"]),
        "drplan validate": (run_piped, [DRPLAN, "validate", "drafted.yml"]),
        "drplan plan --json | …": (run_piped, [DRPLAN, "plan", "--json", "drafted.yml"]),
        "drplan plan --json (terminal)": (run_tty, [DRPLAN, "plan", "--json", "drafted.yml"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--services", type=int, default=500)
    ap.add_argument("--before", help="another source tree (its src/) to time alongside")
    args = ap.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="drplan-cli-wall-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env.pop("DRPLAN_TEST_TIMING", None)
        # as an installed drplan runs: modules compiled once, then read from the cache
        # (kept out of the source tree); with PYTHONDONTWRITEBYTECODE every run compiles
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        trees = {"": env}
        if args.before:
            trees["before: "] = {**env, "PYTHONPATH": str(Path(args.before).resolve())}
        generate(work, args.services, 4)
        run_piped([DRPLAN, "init", "--from", "compose.yml", "-o", "drafted.yml"], env, work)
        runs: dict[str, tuple] = {
            "python -c pass": (run_piped, [sys.executable, "-c", "pass"], env)
        }
        for prefix, tree_env in trees.items():
            for name, (run, argv) in cases().items():
                runs[prefix + name] = (run, argv, tree_env)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run, argv, run_env in runs.values():  # compile and cache, warm the file cache
            run(argv, run_env, work)
        for _ in range(args.repeat):
            for name, (run, argv, run_env) in runs.items():
                times[name].append(run(argv, run_env, work))
    info["loadavg_after"] = os.getloadavg()[0]
    base = min(times["python -c pass"])
    print(
        f"{args.services}-service plan drafted by drplan init; {args.repeat} runs each; "
        f"nproc {info['nproc']}, {info['cpu']}, Python {info['python']}, "
        f"load {info['loadavg_before']:.2f} → {info['loadavg_after']:.2f}"
    )
    print(f"{'command':40} {'best':>7} {'median':>7} {'best - python':>14}")
    rows = {}
    for name, values in times.items():
        best, median = min(values), statistics.median(values)
        rows[name] = {
            "best_s": round(best, 3),
            "median_s": round(median, 3),
            "runs_s": [round(v, 4) for v in values],
        }
        print(f"{name:40} {best:7.3f} {median:7.3f} {best - base:14.3f}")
    doc = {"machine": info, "repeat": args.repeat, "before": args.before, "seconds": rows}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
