"""The engines drplan knows: every module of this package that defines ``ENGINE``.

Engines are found by module name, the way borgmatic dispatches its
``hooks/data_source/<db>.py``: the engine `postgresql` is
``drplan.sources.postgresql.ENGINE``, and a plan's ``engine: mysql`` reaches
``drplan.sources.mariadb`` because that engine lists `mysql` among its aliases. The
package's modules are listed with :func:`pkgutil.iter_modules` over the package's
``__path__``, so a directory added to ``drplan.sources.__path__`` brings its engines
along (the toy engine of the tests arrives that way); modules without ``ENGINE`` are
shared parts (base, dump, volume...).

Every consumer asks here (backup, recovery, checks, schedule, runbook, init, validate,
the schema's list), so an engine added as one module is seen by all of them. Discovery
imports each module of the package once; none imports anything heavy at module level
(the Docker SDK is imported when first used), so `drplan validate` stays quick.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading

from drplan.errors import InputError
from drplan.sources.base import Engine, SourceOps, missing_members

_lock = threading.Lock()
_found: tuple[tuple[str, ...], dict[str, Engine], dict[str, Engine]] | None = None


def _package_path() -> tuple[str, ...]:
    return tuple(sys.modules[__package__].__path__)


def _discover(path: tuple[str, ...]) -> tuple[dict[str, Engine], dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
        if info.ispkg or info.name.startswith("_") or info.name in engines:
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        engine = getattr(module, "ENGINE", None)
        if engine is None:
            continue
        missing = missing_members(engine, Engine)
        if missing:
            raise TypeError(f"{module.__name__}.ENGINE lacks {', '.join(missing)}")
        if engine.name != info.name:
            raise TypeError(f"{module.__name__}.ENGINE is named {engine.name!r}, not its module")
        engines[info.name] = engine
    names: dict[str, Engine] = dict(engines)
    for engine in engines.values():
        for alias in engine.aliases:
            if alias in names:
                raise TypeError(f"engine name {alias!r} is claimed twice")
            names[alias] = engine
    return engines, names


def _tables() -> tuple[dict[str, Engine], dict[str, Engine]]:
    """(engines by name, engines by every name a plan may use), discovered once per
    value of the package's path."""
    global _found
    path = _package_path()
    found = _found  # one read: a tuple replaced whole, never changed in place
    if found is not None and found[0] == path:
        return found[1], found[2]
    with _lock:
        if _found is None or _found[0] != path:
            _found = (path, *_discover(path))
        return _found[1], _found[2]


def engines() -> dict[str, Engine]:
    """Every engine, by its name, in name order."""
    return dict(_tables()[0])


def catalog() -> dict[str, Engine]:
    """Every name a plan may write in `engine:` (aliases included) → its engine."""
    return dict(sorted(_tables()[1].items()))


def names() -> list[str]:
    """Every name a plan may write in `engine:`, sorted."""
    return sorted(_tables()[1])


def find(name: str) -> Engine | None:
    """The engine a plan or a run's manifest names, or None."""
    return _tables()[1].get(name)


def engine(name: str) -> Engine:
    """The engine a plan or a run's manifest names; an InputError names the known ones
    (a run written by another version of drplan may name one this one lacks)."""
    found = find(name)
    if found is None:
        raise InputError(f"unknown engine {name!r} (drplan knows {', '.join(names())})")
    return found


def operations(engine_name: str, method: str) -> SourceOps:
    """What backs up, restores and verifies a source: its engine, or for `method: cold`
    the cold copy of its volume (which wraps the `files` engine)."""
    found = engine(engine_name)
    if method == "cold":
        return importlib.import_module(f"{__package__}.cold").SOURCE
    return found
