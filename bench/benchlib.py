"""What the benchmarks share (run as scripts: `bench/` is on their import path)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def drop_caches() -> None:
    """Write out dirty pages, then empty the page cache: the next read comes from the disk,
    as a recovery reading a repository that is not in memory does."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
