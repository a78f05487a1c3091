#!/usr/bin/env python3
"""Benchmark: validate and schedule a plan of 500 services and 2,000 data sources.

Generates the plan and its compose file in a temporary directory, then times
``validate_file`` (YAML parsing, model, semantic and compose checks) and
``build_schedule`` (steps, waves, critical path) over several repetitions.

    .venv/bin/python bench/plan_scale.py [--services 500] [--sources-per-service 4] [--repeat 7]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from drplan.plan.validate import validate_file
from drplan.schedule import build_schedule

ENGINES = ["postgresql", "mariadb", "redis", "files"]


def generate(directory: Path, services: int, per_service: int, seed: int = 42) -> Path:
    """Write compose.yml and plan.yml; dependencies point to earlier services (a DAG)."""
    rng = random.Random(seed)
    compose: dict = {"services": {}, "volumes": {}}
    plan_services: dict = {}
    for i in range(services):
        name = f"svc{i:04d}"
        deps = sorted({f"svc{j:04d}" for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))})
        vols = [f"{name}-v{k}" for k in range(per_service)]
        compose["services"][name] = {
            "image": f"example/{name}:1",
            "depends_on": deps,
            "volumes": [f"{v}:/data/{k}" for k, v in enumerate(vols)],
        }
        compose["volumes"].update({v: None for v in vols})
        data = {}
        for k, v in enumerate(vols):
            engine = ENGINES[(i + k) % len(ENGINES)]
            data[f"d{k}"] = {
                "engine": engine,
                "method": "cold" if engine == "files" and k % 2 else "dump",
                "volume": v,
                "path": f"/data/{k}",
                "size_hint": f"{rng.randint(1, 500)}MiB",
            }
        plan_services[name] = {
            "tier": ["P1", "P2", "P3"][i % 3],
            "depends_on": deps,
            "data": data,
            "health": {"type": "tcp", "host": name, "port": 8080},
            "checks": [{"type": "http", "url": f"http://{name}:8080/"}],
        }
    plan = {
        "version": 1,
        "stack": {"name": "scale", "compose": "compose.yml"},
        "sites": {
            "a": {"role": "primary", "docker_host": "unix:///var/run/docker.sock"},
            "b": {"role": "recovery", "docker_host": "ssh://dr@recovery"},
        },
        "repositories": {
            "main": {"url": "/srv/restic/scale", "role": "primary", "password": {"env": "P"}},
            "copy": {"url": "sftp:b@offsite:/r", "password": {"env": "Q"}},
        },
        "objectives": {"rto": "8h", "rpo": "24h"},
        "services": plan_services,
        "profiles": {"core": {"services": sorted({"svc0000", "svc0001"})}},
    }
    (directory / "compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    path = directory / "plan.yml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--sources-per-service", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp), args.services, args.sources_per_service)
        size = path.stat().st_size + (Path(tmp) / "compose.yml").stat().st_size
        times: dict[str, list[float]] = {"validate": [], "schedule": [], "total": []}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = validate_file(path)
            t1 = time.perf_counter()
            if not result.ok:
                raise SystemExit("\n".join(p.format() for p in result.problems[:20]))
            schedule = build_schedule(result.plan)
            t2 = time.perf_counter()
            times["validate"].append(t1 - t0)
            times["schedule"].append(t2 - t1)
            times["total"].append(t2 - t0)
    sources = sum(len(s.data) for s in result.plan.services.values())
    print(
        f"plan: {len(result.plan.services)} services, {sources} data sources, "
        f"{len(schedule.steps)} steps, {len(schedule.waves)} waves, "
        f"{size / 1024:.0f} KiB of YAML; python {platform.python_version()}"
    )
    print(f"{'phase':<10} {'min':>8} {'median':>8} {'max':>8}   ({args.repeat} runs, seconds)")
    for phase, values in times.items():
        print(f"{phase:<10} {min(values):8.3f} {statistics.median(values):8.3f} {max(values):8.3f}")


if __name__ == "__main__":
    main()
