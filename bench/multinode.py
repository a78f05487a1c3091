#!/usr/bin/env python3
"""Large data on workers, backed up and recovered across multi-node sites: RTO against
the critical-path bound and against sequential, restore throughput against `cp -a`, and
drplan's peak RSS. All in one invocation, on the testbed's clusters.

    .venv/bin/python bench/multinode.py --pg-gb 5 --gb 5 [--json bench/multinode-results.json]

Steps:
 1. deploy `campus` on the primary cluster with its data pinned to the workers (as
    tests/integration/test_multinode.py does: PostgreSQL and the web uploads on
    `storage=local` workers, Redis on primary-w2), write --pg-gb GB into PostgreSQL (one
    table, rows of 1 KB) and --gb GB into *each* uploads volume (web and exam);
 2. `drplan backup` (the real CLI), its peak RSS read from /proc (VmHWM) while it runs;
 3. `drplan recover --site recovery` (the real CLI, parallel executor): measured RTO,
    peak RSS, and the critical-path lower bound = the longest path through the recovery
    DAG using the durations each step took in this very recovery;
 4. the same recovery with one worker (steps one after another, in-process): its RTO;
 5. `cp -a` of the web uploads volume's directory (on the worker's disk, page cache
    dropped) against the same volume's restore step in the sequential recovery.
The recovery site is a 2-node cluster of another shape: PostgreSQL goes to its
`tier=data` node, as the plan's placement for that site says.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import drop_caches  # noqa: E402

from drplan.actions import recover as rc  # noqa: E402
from drplan.actions.context import load_plan  # noqa: E402
from drplan.schedule import build_schedule  # noqa: E402
from testbed import generator, nodes, plans, sites, stacks  # noqa: E402


def run_measured(args: list[str]) -> tuple[dict, int, float]:
    """(JSON output, peak RSS in bytes, wall seconds) of the real CLI. The peak is the
    kernel's high-water mark of drplan's own process (VmHWM), read every 0.2 s while it
    runs (restic and the containers are other processes, not counted)."""
    env = {**os.environ, plans.PASSWORD_ENV: plans.PASSWORD}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [plans.DRPLAN, *args, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak = [0]

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    out, err = proc.communicate()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"drplan {' '.join(args)} exited {proc.returncode}: {err[-3000:]!r}")
    return json.loads(out), peak[0], time.monotonic() - t0


def fill_postgres(client, name: str, gb: float) -> None:
    """`gb` GB of 1 KB rows in one table (half of each row incompressible)."""
    rows = int(gb * 1e9 / 1100)
    sql = (
        "CREATE TABLE bulk AS SELECT g AS id, "
        "md5(random()::text) || md5(random()::text) || md5(random()::text) || "
        "md5(random()::text) || md5(random()::text) || md5(random()::text) || "
        "md5(random()::text) || md5(random()::text) || repeat('x', 750) AS pad "
        f"FROM generate_series(1, {rows}) g"
    )
    c = stacks.container(client, name, "db")
    code, text = stacks.exec_text(
        c,
        ["psql", "-v", "ON_ERROR_STOP=1", "-U", "campus", "-d", "campus", "-c", sql],
        timeout=7200,
    )
    if code != 0:
        raise SystemExit(f"filling PostgreSQL failed: {text[-2000:]}")


def longest_path(plan_path: Path, seconds: dict[str, float]) -> float:
    """The RTO's lower bound with unlimited parallelism: the longest chain of measured step
    durations through the recovery DAG, up to the last critical step."""
    steps = build_schedule(load_plan(plan_path).plan).steps
    memo: dict[str, float] = {}

    def finish(sid: str) -> float:
        if sid not in memo:
            memo[sid] = seconds.get(sid, 0.0) + max(
                (finish(a) for a in steps[sid].after), default=0.0
            )
        return memo[sid]

    return max(finish(s) for s in steps if steps[s].critical)


def cp_a(src: str, dst: Path) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    drop_caches()
    t0 = time.monotonic()
    subprocess.run(["cp", "-a", src, str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-gb", type=float, default=5.0, help="GB written into PostgreSQL")
    ap.add_argument("--gb", type=float, default=5.0, help="GB of uploads per volume (x2)")
    ap.add_argument("--workdir", default="/var/lib/drplan-bench/multinode")
    ap.add_argument("--json", help="write the results there")
    a = ap.parse_args()
    urls = sites.up()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    managers = {s: sites.client(urls[s]) for s in ("primary", "recovery")}
    name = f"mnbench{os.getpid()}"
    edit_compose, edit = nodes.pinned("campus")
    results: dict = {"pg_gb": a.pg_gb, "gb_per_volume": a.gb}
    with nodes.workers_active(*managers.values()):
        tp = plans.adapt("campus", work, name=name, edit_compose=edit_compose, edit=edit)
        plans.deploy(urls["primary"], tp)
        primary = managers["primary"]
        try:
            t0 = time.monotonic()
            print(f"writing {a.pg_gb} GB into PostgreSQL ...", flush=True)
            fill_postgres(primary, name, a.pg_gb)
            print(f"writing {a.gb} GB into each uploads volume ...", flush=True)
            generator.populate(primary, "campus", name, generator.Size.gigabytes(a.gb), seed=5)
            results["fill_s"] = round(time.monotonic() - t0, 1)
            results["nodes"] = {
                s: nodes.task_node(primary, f"{name}_{s}") for s in ("db", "redis", "web", "exam")
            }
            plans.ok("repo", "init", str(tp.path))
            backup, rss, wall = run_measured(["backup", str(tp.path)])
            results["backup"] = {
                "wall_s": round(wall, 1),
                "peak_rss_mb": round(rss / 1e6, 1),
                "bytes": sum(s["bytes"] for s in backup["sources"]),
                "sources": {
                    f"{s['service']}/{s['source']}": {"bytes": s["bytes"], "node": s.get("node")}
                    for s in backup["sources"]
                },
            }
            print(f"backup: {wall:.1f} s, peak RSS {rss / 1e6:.0f} MB", flush=True)
            drop_caches()
            report, rss, wall = run_measured(
                ["recover", str(tp.path), "--site", "recovery", "--prefix", "mp"]
            )
            seconds = {s["id"]: s["seconds"] or 0.0 for s in report["steps"]}
            bound = longest_path(tp.path, seconds)
            recovery = managers["recovery"]
            placed = {s: nodes.task_node(recovery, f"mp{name}_{s}") for s in ("db", "web")}
            stacks.remove_recovered(urls["recovery"], f"mp{name}", name)
            print(f"parallel recovery: RTO {report['rto']['measured_s']} s", flush=True)
            drop_caches()
            os.environ[plans.PASSWORD_ENV] = plans.PASSWORD
            pc = load_plan(tp.path)
            seq = rc.recover(
                pc, pc.repository(), rc.RecoverOptions(site="recovery", prefix="ms", workers=1)
            )
            if not seq.ok:
                raise SystemExit(
                    f"sequential recovery failed: {[o.error for o in seq.outcomes.values()]}"
                )
            stacks.remove_recovered(urls["recovery"], f"ms{name}", name)
            web = results["backup"]["sources"]["web/files"]
            holder = nodes.holding_volume(primary, f"{name}_files")
            src = holder.volumes.get(f"{name}_files").attrs["Mountpoint"]
            # a worker's data root is a directory of this host (the testbed's nodes share it)
            cp_s = cp_a(src, work / "cp-a-copy")
            restore_s = seq.outcomes["restore:web/files"].seconds
            par_rto = report["rto"]["measured_s"]
            results["recovery"] = {
                "parallel_rto_s": par_rto,
                "peak_rss_mb": round(rss / 1e6, 1),
                "critical_path_bound_s": round(bound, 2),
                "sequential_rto_s": seq.measured_rto_s,
                "rto_over_bound": round(par_rto / bound, 3),
                "rto_over_sequential": round(par_rto / seq.measured_rto_s, 3),
                "steps_s": {k: round(v, 2) for k, v in seconds.items()},
                "placed_on": placed,
                "web_files_bytes": web["bytes"],
                "restore_web_files_s": round(restore_s, 2),
                "cp_a_s": round(cp_s, 2),
                "restore_over_cp": round(cp_s / restore_s, 3),
                "restore_mb_s": round(web["bytes"] / restore_s / 1e6, 1),
                "cp_a_mb_s": round(web["bytes"] / cp_s / 1e6, 1),
            }
        finally:
            plans.remove(urls["primary"], tp)
            shutil.rmtree(work / "cp-a-copy", ignore_errors=True)
    results["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version()}
    text = json.dumps(results, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    r = results["recovery"]
    peak = max(results["backup"]["peak_rss_mb"], r["peak_rss_mb"])
    print(f"RTO / critical-path bound = {r['rto_over_bound']} (goal <= 1.25)")
    print(f"RTO / sequential = {r['rto_over_sequential']} (goal <= 0.6)")
    print(f"restore throughput / cp -a = {r['restore_over_cp']} (goal >= 0.7)")
    print(f"drplan peak RSS = {peak} MB (goal <= 200 MB)")


if __name__ == "__main__":
    main()
