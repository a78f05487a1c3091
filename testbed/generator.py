"""Write data into a running stack through its application (generate.py inside the app).

Deterministic: the same seed and sizes give the same data on any engine. Sizes are
configurable, from a few hundred rows for tests to gigabytes for benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed import stacks

# Which services of each stack write which kind of data.
WRITERS = {"campus": ["web", "exam"], "helpdesk": ["glpi", "metrics"]}


@dataclass(frozen=True)
class Size:
    rows: int = 300
    files: int = 20
    file_size: int = 16 * 1024
    keys: int = 100

    @classmethod
    def small(cls) -> Size:
        return cls()

    @classmethod
    def gigabytes(cls, gb: float) -> Size:
        """About `gb` GB in all, mostly uploaded files of 1 MiB (half of it incompressible)."""
        files = int(gb * 1024 * 0.9)
        return cls(rows=50_000, files=files, file_size=1 << 20, keys=5_000)


def run(client, name: str, service: str, args: list[str]) -> str:
    c = stacks.container(client, name, service)
    code, text = stacks.exec_text(c, ["python3", "/opt/app/generate.py", *args], timeout=3600)
    if code != 0:
        raise RuntimeError(f"generate.py in {name}_{service} exited {code}: {text[-2000:]}")
    return text


def populate(client, kind: str, name: str, size: Size = Size(), seed: int = 1) -> None:
    """Write `size` worth of data into every writer of stack `name` (of kind `kind`)."""
    for service in WRITERS[kind]:
        run(
            client,
            name,
            service,
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


def start_continuous(client, name: str, service: str, interval: float = 0.2) -> None:
    """Keep writing in the background until stop_continuous()."""
    c = stacks.container(client, name, service)
    c.exec_run(
        ["python3", "/opt/app/generate.py", "--continuous", "--interval", str(interval)],
        detach=True,
    )


def stop_continuous(client, name: str, service: str) -> None:
    c = stacks.container(client, name, service)
    c.exec_run(["pkill", "-f", "generate.py --continuous"])


def touch_files(client, name: str, service: str, percent: float, seed: int = 7) -> int:
    """Rewrite `percent` % of the service's files; returns how many were changed."""
    return int(run(client, name, service, ["--seed", str(seed), "--touch-files", str(percent)]))
