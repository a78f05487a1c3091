"""The testbed's two sites: start them with scripts/testbed and talk to them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "testbed"


def up() -> dict[str, str]:
    """Start (or reuse) both sites; return {site: DOCKER_HOST url} as the script prints."""
    done = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/testbed up exited {done.returncode}:\n{done.stderr[-3000:]}")
    return parse_env(done.stdout)


def parse_env(text: str) -> dict[str, str]:
    sites = {}
    for line in text.splitlines():
        name, sep, url = line.partition("=")
        if sep and url.startswith(("unix://", "tcp://", "ssh://")):
            sites[name.strip()] = url.strip()
    return sites


def client(url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, timeout=120)


def netns(site: str) -> str:
    return f"drplan-{site}"


def http_get(site: str, port: int, path: str = "/", timeout: float = 5) -> tuple[int, str]:
    """GET http://127.0.0.1:PORT/PATH from inside the site's network namespace.

    Returns (status, body); status 0 when nothing answered.
    """
    proc = subprocess.run(
        [
            "nsenter",
            f"--net=/run/netns/{netns(site)}",
            "curl",
            "-s",
            "-m",
            str(timeout),
            "-w",
            "\n%{http_code}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
    )
    body, _, code = proc.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body
