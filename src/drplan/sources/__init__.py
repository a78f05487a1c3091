"""Data sources: one module per engine, found by module name (like borgmatic's hooks).

Each engine module holds an ``ENGINE`` with everything drplan knows of that kind of data
(:class:`drplan.sources.base.Engine`); :mod:`drplan.sources.registry` finds them and is
what every other part of drplan asks. Shared parts: ``base`` (the Protocol and what
engines get), ``dump`` (dump-based engines), ``volume`` (helper containers), ``split``
(halves of a big restore), ``checks`` (how checks run in a container), ``byhand``
(runbook commands shared by engines) and ``cold`` (the cold method, wrapping `files`).
"""

from __future__ import annotations

from drplan.sources.base import SourceOps
from drplan.sources.registry import operations


def engine_for(engine: str, method: str) -> SourceOps:
    """The implementation for a plan data source (`cold` wraps a volume copy)."""
    return operations(engine, method)
