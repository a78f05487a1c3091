"""Data sources: one module per engine, discovered by name (like borgmatic's hooks).

Each module exposes a ``SOURCE`` object with the same small interface (see ``base``):
back up into the repository, restore from it, fingerprint the live data, say whether the
target is empty, and say what consistency it gives.
"""

from __future__ import annotations

import importlib

from drplan.sources.base import DataSourceEngine

ALIASES = {"mysql": "mariadb"}


def engine_for(engine: str, method: str) -> DataSourceEngine:
    """The implementation for a plan data source (`cold` wraps a volume copy)."""
    if method == "cold":
        from drplan.sources.cold import SOURCE as cold

        return cold
    module = importlib.import_module(f"drplan.sources.{ALIASES.get(engine, engine)}")
    return module.SOURCE
