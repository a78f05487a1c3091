"""`drplan validate` of a plan with a long description, as a user types it.

The clear-secret scan once went quadratic on long text (a 25 KB description: 43 s; 5 MB:
never ended). This times the real command on the demo plan with descriptions of 25 KB,
1 MB and 5 MB of ordinary prose (and of one unbroken word, the old worst case), against
the same command on the plan as shipped (the baseline, run in the same invocation).
Best of N runs each.

    .venv/bin/python bench/validate_text.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "src" / "drplan" / "demo" / "campus"
DRPLAN = str(Path(sys.executable).parent / "drplan")
PROSE = (
    "The exam platform must come back first; uploads may wait. "
    "Token counts, secrets of the trade and password policies are discussed here. "
)


def plan_with(dest: Path, description: str | None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO / "compose.yml", dest / "compose.yml")
    plan = yaml.safe_load((DEMO / "drplan.yml").read_text())
    if description is not None:
        plan["description"] = description
    (dest / "drplan.yml").write_text(yaml.safe_dump(plan, sort_keys=False, width=10**9))
    return dest / "drplan.yml"


def best(path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run([DRPLAN, "validate", str(path)], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"validate failed: {proc.stdout[-500:]}{proc.stderr[-500:]}")
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = {
        "prose 25 KB": (PROSE * (25_000 // len(PROSE) + 1))[:25_000],
        "prose 1 MB": (PROSE * (1_000_000 // len(PROSE) + 1))[:1_000_000],
        "prose 5 MB": (PROSE * (5_000_000 // len(PROSE) + 1))[:5_000_000],
        "one word 1 MB": "a" * 1_000_000,
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = best(plan_with(Path(tmp) / "base", None), args.repeat)
        rows = {"baseline (plan as shipped)": base}
        for name, text in cases.items():
            rows[name] = best(plan_with(Path(tmp) / name.replace(" ", "-"), text), args.repeat)
    print(f"{'case':30} {'seconds':>8} {'vs baseline':>12}")
    for name, secs in rows.items():
        print(f"{name:30} {secs:8.2f} {secs / base:11.2f}x")
    out = ROOT / "bench" / "validate-text-results.json"
    out.write_text(json.dumps({"repeat": args.repeat, "seconds": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
