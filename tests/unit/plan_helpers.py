"""Shared helpers for unit tests: example paths, a stack fixture, problem-line checks."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "plan.yml").is_file())
PROBLEM_LINE = re.compile(r"^[^:]+:\d+:\d+: \S.*: .+")

COMPOSE = """\
services:
  db:
    image: drplan-tb/postgres:15
    environment: {PGDATA: /data}
    volumes: [db-data:/data]
  redis:
    image: drplan-tb/redis:7
    volumes: [redis-data:/data]
  web:
    image: drplan-tb/app:latest
    depends_on: [db, redis]
    environment: [DB_HOST=db, REDIS_HOST=redis]
    volumes: [files:/srv/files]
    ports: ["8080:8080"]
  exam:
    image: drplan-tb/app:latest
    depends_on:
      db: {condition: service_healthy}
      redis: {condition: service_started}
volumes:
  db-data:
  redis-data:
  files:
"""

PLAN = """\
version: 1
stack: {name: campus, compose: compose.yml}
sites:
  a: {role: primary, docker_host: "unix:///var/run/docker.sock"}
  b: {role: recovery, docker_host: "tcp://127.0.0.1:23750"}
repositories:
  main: {url: /srv/restic/campus, role: primary, password: {env: RESTIC_PASSWORD}}
  copy: {url: "sftp:backup@offsite:/restic/campus", password: {file: restic.pass}}
backup: {schedule: {daily_at: "03:00"}, retention: {keep_daily: 7}}
objectives: {rto: 1h, rpo: 24h}
services:
  db:
    tier: P1
    data:
      pg: {engine: postgresql, volume: db-data, path: /data, size_hint: 1GiB}
    health: {type: command, command: [pg_isready, -U, postgres]}
    checks:
      - {type: sql, query: SELECT 1, expect: "1"}
  redis:
    tier: P1
    data:
      rdb: {engine: redis, volume: redis-data, path: /data}
  web:
    depends_on: [db, redis]
    data:
      files: {engine: files, volume: files, path: /srv/files}
    health: {type: http, url: "http://web:8080/health"}
  exam:
    depends_on: [db, redis]
profiles:
  exams: {services: [db, redis, exam]}
"""


def write_stack(tmp_path: Path, plan: str = PLAN, compose: str = COMPOSE) -> Path:
    """Write plan.yml and compose.yml into tmp_path; return the plan path."""
    (tmp_path / "compose.yml").write_text(textwrap.dedent(compose))
    path = tmp_path / "plan.yml"
    path.write_text(textwrap.dedent(plan))
    return path


def assert_problem_lines(text: str) -> list[str]:
    lines = [line for line in text.split("\n") if line]
    for line in lines:
        assert PROBLEM_LINE.match(line), line
        assert "internal error" not in line, line
    return lines
