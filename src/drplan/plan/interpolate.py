"""Variable interpolation and ``.env`` files, the way Docker Compose reads them.

A compose file says ``${DB_USER:-postgres}`` and the stack's ``.env`` says ``DB_USER=app``:
what runs is ``app``. drplan must see the same values Compose does, or a draft names the
wrong database user or the wrong host directory. Supported: ``$$`` (a literal ``$``),
``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``,
``${VAR?err}``, ``${VAR:+alt}``, ``${VAR+alt}``, with nested expressions in defaults.

A value that is one whole expression (``${DB_PASSWORD}``) is returned as :class:`Interpolated`,
a ``str`` that remembers the variable name: a drafted plan refers to a password by that
name and never copies its value.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_DEPTH = 32  # nested defaults (`${A:-${B:-x}}`); deeper is refused, not a crash
_WHOLE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}?$")


class InterpolationError(ValueError):
    """``${VAR:?message}`` with VAR unset, or an expression Compose would refuse."""


class Interpolated(str):
    """A string interpolated from one whole variable expression; `ref` is its name."""

    ref: str | None = None


def interpolate(
    text: str, env: Mapping[str, str], missing: set[str] | None = None, *, keep_ref: bool = True
) -> str:
    """`text` with its variables replaced from `env`, as Compose does.

    Unset variables without a default become "" and are added to `missing` (Compose
    warns about them). Raises InterpolationError for ``:?``/``?`` on an unset variable
    and for an unterminated ``${``. With `keep_ref` a whole expression gives an
    :class:`Interpolated`; else always a plain ``str`` (safe to dump as YAML).
    """
    if "$" not in text:
        return text
    out, _ = _scan(text, 0, env, missing, in_braces=False, depth=0)
    whole = _WHOLE.match(text) if keep_ref else None
    if whole and "$$" not in text:
        value = Interpolated(out)
        value.ref = whole.group(1)
        return value
    return out


def _scan(
    text: str,
    i: int,
    env: Mapping[str, str],
    missing: set[str] | None,
    *,
    in_braces: bool,
    depth: int,
) -> tuple[str, int]:
    """Interpolate from `i`; inside braces stop at the closing `}` (returned index past it)."""
    if depth > MAX_DEPTH:
        raise InterpolationError(f"variable expressions nested more than {MAX_DEPTH} deep")
    parts: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "}" and in_braces:
            return "".join(parts), i + 1
        if c != "$":
            j = text.find("$", i + 1)
            j = n if j < 0 else j
            if in_braces:
                close = text.find("}", i + 1, j)
                j = j if close < 0 else close
            parts.append(text[i:j])
            i = j
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            parts.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, env, missing, depth)
            parts.append(value)
        else:
            m = _NAME.match(text, i + 1)
            if m is None:  # a lone `$`: Compose keeps it
                parts.append("$")
                i += 1
                continue
            name = m.group(0)
            if name in env:
                parts.append(env[name])
            elif missing is not None:
                missing.add(name)
            i = m.end()
    if in_braces:
        raise InterpolationError(f"unterminated `${{` in {text!r}")
    return "".join(parts), i


def _braced(
    text: str, i: int, env: Mapping[str, str], missing: set[str] | None, depth: int
) -> tuple[str, int]:
    """The value of ``${...}`` whose name starts at `i`; the index past its `}`."""
    m = _NAME.match(text, i)
    if m is None:
        raise InterpolationError(f"invalid variable expression in {text!r}")
    name, i = m.group(0), m.end()
    op = ""
    if text.startswith(":", i) and i + 1 < len(text) and text[i + 1] in "-?+":
        op, i = text[i : i + 2], i + 2
    elif i < len(text) and text[i] in "-?+":
        op, i = text[i], i + 1
    elif i < len(text) and text[i] == "}":
        i += 1
    else:
        raise InterpolationError(f"invalid variable expression in {text!r}")
    arg = ""
    if op:
        arg, i = _scan(text, i, env, missing, in_braces=True, depth=depth + 1)
    value = env.get(name)
    unset_or_empty = not value
    if op in (":-", "-"):
        use_default = unset_or_empty if op == ":-" else value is None
        return (arg if use_default else value or ""), i
    if op in (":?", "?"):
        failed = unset_or_empty if op == ":?" else value is None
        if failed:
            raise InterpolationError(
                f"variable {name} is required{': ' + arg if arg else ''} (set it in the "
                ".env file beside the compose file or in the environment)"
            )
        return value or "", i
    if op in (":+", "+"):
        use_alt = (not unset_or_empty) if op == ":+" else value is not None
        return (arg if use_alt else ""), i
    if value is None and missing is not None:
        missing.add(name)
    return value or "", i


def interpolate_tree(
    data: Any,
    env: Mapping[str, str],
    on_error: Any,
    missing: dict[str, tuple[Any, ...]],
    loc: tuple[Any, ...] = (),
) -> Any:
    """A copy of parsed YAML `data` with every string value interpolated (keys are not,
    as in Compose). `on_error(loc, message)` is called for each failing expression,
    whose value is then kept as written; `missing` gets each unset variable used without
    a default, with where it is first used. Only the values of a service's
    `environment` keep the name of the variable they come from (:class:`Interpolated`)."""
    if isinstance(data, str):
        if "$" not in data:
            return data
        unset: set[str] = set()
        keep = len(loc) == 4 and loc[0] == "services" and loc[2] == "environment"
        try:
            out = interpolate(data, env, unset, keep_ref=keep)
        except InterpolationError as exc:
            on_error(loc, str(exc))
            return data
        for name in unset:
            missing.setdefault(name, loc)
        return out
    if isinstance(data, dict):
        return {k: interpolate_tree(v, env, on_error, missing, (*loc, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate_tree(v, env, on_error, missing, (*loc, i)) for i, v in enumerate(data)]
    return data


def parse_dotenv(text: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of a ``.env`` or ``env_file`` file, as Compose reads them.

    ``KEY=value``, ``export KEY=value``, comments, blank lines; single quotes are literal,
    double quotes understand ``\\n`` and interpolate, unquoted values lose a trailing
    `` # comment`` and interpolate. `env` is what earlier variables resolve against
    (variables of the file itself come first). A line with a bare ``KEY`` (no ``=``)
    takes KEY from `env` if it is there.
    """
    out: dict[str, str] = {}
    base = env or {}
    lookup = ChainMap(out, base)  # the file's own variables first, as they are read
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not _NAME.fullmatch(key):
            continue
        if not eq:
            if key in base:
                out[key] = base[key]
            continue
        value = value.strip()
        if value[:1] == "'" and value.find("'", 1) > 0:
            out[key] = value[1 : value.find("'", 1)]
        elif value[:1] == '"' and _closing_quote(value) > 0:
            inner = value[1 : _closing_quote(value)]
            inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
            out[key] = _lenient(inner, lookup)
        else:
            hash_at = value.find(" #")
            if hash_at >= 0:
                value = value[:hash_at].rstrip()
            out[key] = _lenient(value, lookup)
    return out


def _closing_quote(value: str) -> int:
    i = 1
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            return i
        i += 1
    return -1


def _lenient(text: str, env: Mapping[str, str]) -> str:
    try:
        return str(interpolate(text, env))
    except InterpolationError:
        return text


def read_dotenv(path: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`parse_dotenv` of a file; OSError and undecodable bytes are the caller's."""
    return parse_dotenv(path.read_text(encoding="utf-8"), env)
