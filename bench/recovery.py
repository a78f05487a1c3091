#!/usr/bin/env python3
"""Recovery benchmark on >= 1 GB: measured RTO against the schedule's critical-path lower
bound and against the same steps run one after another; file restore throughput against
`cp -a` of the same data on this disk. All in one invocation, on the testbed.

    .venv/bin/python bench/recovery.py --gb 1.0 [--repeat 3]

Steps:
 1. deploy `campus` on the primary, write --gb of data into *each* uploads volume
    (web and exam), back it up with `drplan backup`;
 2. recover it on the recovery site with drplan's parallel executor (workers=4):
    measured RTO, and the critical-path lower bound = the longest path through the DAG
    using the durations each step actually took in this very recovery;
 3. recover it again with one worker (the same steps one after another): its RTO;
 4. `cp -a` of the web uploads volume's directory on this disk, against the duration of
    the same volume's restore step in the sequential recovery (no competing step).

Each recovery and the cold `cp -a` start with the page cache dropped (sync, then
/proc/sys/vm/drop_caches): a real recovery reads a repository that is not in memory, and
"on this disk" means reading from the disk. The warm `cp -a` (source just read, in
memory) is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import drop_caches  # noqa: E402

from drplan.actions import recover as rc  # noqa: E402
from drplan.actions.context import load_plan  # noqa: E402
from drplan.reports.recovery import actual_schedule  # noqa: E402
from testbed import generator, plans, sites, stacks  # noqa: E402


def longest_path(rec: rc.Recovery) -> float:
    """Lower bound of the RTO with unlimited parallelism: the longest chain of measured
    step durations through the DAG (up to the last critical step)."""
    steps = rec.schedule.steps
    dur = {sid: o.seconds for sid, o in rec.outcomes.items()}
    memo: dict[str, float] = {}

    def finish(sid: str) -> float:
        if sid not in memo:
            memo[sid] = dur[sid] + max((finish(a) for a in steps[sid].after), default=0.0)
        return memo[sid]

    critical = [s for s in steps if steps[s].critical]
    return max(finish(s) for s in critical)


def cp_a(src: str, dst: Path) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run(["cp", "-a", src, str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    return time.monotonic() - t0


def recover(tp, prefix: str, workers: int) -> rc.Recovery:
    drop_caches()
    os.environ["DRPLAN_REPO_PASSWORD"] = plans.PASSWORD
    pc = load_plan(tp.path)
    rec = rc.recover(
        pc, pc.repository(), rc.RecoverOptions(site="recovery", prefix=prefix, workers=workers)
    )
    if not rec.ok:
        raise SystemExit(
            f"recovery {prefix} failed: "
            + str({k: o.error for k, o in rec.outcomes.items() if o.error})
        )
    return rec


def one_round(tp, urls: dict[str, str], client, backup: dict, work: Path, i: int) -> dict:
    """One parallel recovery, one sequential recovery and one `cp -a`, with their ratios."""
    name = tp.name
    par = recover(tp, f"bp{i}", workers=4)
    stacks.remove_recovered(urls["recovery"], f"bp{i}{name}", name)
    seq = recover(tp, f"bs{i}", workers=1)
    stacks.remove_recovered(urls["recovery"], f"bs{i}{name}", name)
    bound = longest_path(par)
    # file restore throughput against cp -a of the same volume on this disk
    rec_web = next(s for s in backup["sources"] if s["service"] == "web")
    src = client.volumes.get(f"{name}_files").attrs["Mountpoint"]
    dst = work / "cp-a-copy"
    drop_caches()
    cp_s = cp_a(src, dst)  # cold: read from the disk
    cp_warm_s = cp_a(src, dst)  # warm: the source is now in the page cache
    restore_s = seq.outcomes["restore:web/files"].seconds
    return dict(
        parallel_rto_s=par.measured_rto_s,
        critical_path_bound_s=round(bound, 2),
        sequential_rto_s=seq.measured_rto_s,
        rto_over_bound=round(par.measured_rto_s / bound, 3),
        rto_over_sequential=round(par.measured_rto_s / seq.measured_rto_s, 3),
        parallel_steps={k: round(o.seconds, 2) for k, o in par.outcomes.items()},
        sequential_steps={k: round(o.seconds, 2) for k, o in seq.outcomes.items()},
        actual_critical_path=actual_schedule(par).critical_path,
        web_files_bytes=rec_web["bytes"],
        cp_a_s=round(cp_s, 2),
        restore_web_files_s=round(restore_s, 2),
        cp_a_mb_s=round(rec_web["bytes"] / cp_s / 1e6, 1),
        cp_a_warm_s=round(cp_warm_s, 2),
        cp_a_warm_mb_s=round(rec_web["bytes"] / cp_warm_s / 1e6, 1),
        restore_over_cp_warm=round(cp_warm_s / restore_s, 3),
        restore_mb_s=round(rec_web["bytes"] / restore_s / 1e6, 1),
        restore_over_cp=round(cp_s / restore_s, 3),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="GB of uploads per volume")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of (parallel, sequential, cp -a) on one backup; the "
        "verdicts use the median of each ratio",
    )
    ap.add_argument("--workdir", default="/var/lib/drplan-bench/recovery")
    a = ap.parse_args()
    urls = sites.up()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    name = f"bench{os.getpid()}"
    tp = plans.adapt("campus", work, name=name)
    plans.deploy(urls["primary"], tp)
    client = sites.client(urls["primary"])
    size = generator.Size.gigabytes(a.gb)
    print(f"writing {a.gb} GB into each uploads volume ...", flush=True)
    generator.populate(client, "campus", name, size, seed=3)
    plans.ok("repo", "init", str(tp.path))
    t0 = time.monotonic()
    backup = plans.ok_json("backup", str(tp.path))
    print(f"backup: {time.monotonic() - t0:.1f}s", flush=True)
    data_bytes = sum(s["bytes"] for s in backup["sources"])
    results: dict = {"data_bytes": data_bytes, "rounds": []}
    try:
        for i in range(a.repeat):
            r = one_round(tp, urls, client, backup, work, i)
            results["rounds"].append(r)
            print(
                f"round {i + 1}/{a.repeat}: RTO/bound {r['rto_over_bound']}, RTO/sequential "
                f"{r['rto_over_sequential']}, restore/cp -a {r['restore_over_cp']} "
                f"(cp -a {r['cp_a_s']} s)",
                flush=True,
            )
    finally:
        plans.remove(urls["primary"], tp)
        shutil.rmtree(work / "cp-a-copy", ignore_errors=True)
    for key in ("rto_over_bound", "rto_over_sequential", "restore_over_cp"):
        results[key] = round(statistics.median(r[key] for r in results["rounds"]), 3)
    results["machine"] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "cpu": _cpu(),
    }
    print(json.dumps(results, indent=2))
    ok1 = results["rto_over_bound"] <= 1.25
    ok2 = results["rto_over_sequential"] <= 0.6
    ok3 = results["restore_over_cp"] >= 0.7
    print(f"medians of {a.repeat} round(s):")
    print(
        f"RTO / critical-path bound = {results['rto_over_bound']} (goal <= 1.25: "
        f"{'met' if ok1 else 'MISSED'})"
    )
    print(
        f"RTO / sequential = {results['rto_over_sequential']} (goal <= 0.6: "
        f"{'met' if ok2 else 'MISSED'})"
    )
    print(
        f"restore throughput / cp -a = {results['restore_over_cp']} (goal >= 0.7: "
        f"{'met' if ok3 else 'MISSED'})"
    )


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
