"""YAML → located nodes → Python data → :class:`Plan`, every error with ``file:line:col``.

A crisis is the worst moment to decipher "validation error for Plan". PyYAML's
``compose()`` keeps ``start_mark`` on every node; we convert nodes to plain data
ourselves (keeping an index from mapping keys back to nodes) so that any pydantic error
``loc`` and any semantic check can be reported at the exact line and column.

Never raises on bad input: every failure is a :class:`Problem`.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from drplan.plan import model as m

try:  # libyaml is ~10x faster; the pure-Python loader gives the same nodes and marks
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

MAX_NODES = 2_000_000
MAX_FILE_BYTES = 64 * 1024 * 1024

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    """One located problem: ``FILE:LINE:COL: path: message``."""

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: str = "error"

    def format(self) -> str:
        """One line, safe to print whatever the input (control characters escaped)."""
        prefix = "warning: " if self.severity == "warning" else ""
        path = _oneline(self.path) or "(root)"
        if path[0].isspace():
            path = "(root)" + path
        message = _oneline(self.message) or "(no message)"
        return f"{_oneline(self.file) or '-'}:{self.line}:{self.col}: {path}: {prefix}{message}"


def _oneline(text: str) -> str:
    out = []
    for ch in str(text):
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def format_path(loc: Iterable[Any]) -> str:
    """``("services", "web", "depends_on", 1)`` → ``services.web.depends_on[1]``."""
    out = ""
    for el in loc:
        if isinstance(el, int) and not isinstance(el, bool):
            out += f"[{el}]"
            continue
        key = str(el)
        if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./@+-]*", key):
            out += ("." if out else "") + key
        else:
            out += "[" + json.dumps(key) + "]"
    return out or "(root)"


class _TooBig(Exception):
    pass


@dataclass
class Document:
    """A parsed YAML file: its root node, plain data and the key→node index."""

    file: str
    root: Node | None
    data: Any
    problems: list[Problem] = field(default_factory=list)
    # id(mapping node) -> {python key: (key node, value node)}
    index: dict[int, dict[Any, tuple[Node, Node]]] = field(default_factory=dict)

    # -- locating ---------------------------------------------------------------------

    def locate(self, loc: Sequence[Any], *, key: bool = False) -> tuple[int, int, str]:
        """Line, column (1-based) and display path of a pydantic-style ``loc``.

        Elements that match no node (union tags such as ``http`` or ``str``) are skipped,
        except the last, which names a missing key located at its parent. With ``key``,
        point at the key rather than its value (for unknown keys).
        """
        node = self.root
        parts: list[Any] = []
        last_key: Node | None = None
        for i, el in enumerate(loc):
            last = i == len(loc) - 1
            if el == "[key]" and last_key is not None:
                node = last_key
                continue
            hit = self._child(node, el)
            if hit is not None:
                last_key, node = hit
                parts.append(el)
            elif last:
                parts.append(el)
        target = last_key if key and last_key is not None and parts else node
        if target is None:
            return 1, 1, format_path(parts)
        mark = target.start_mark
        return mark.line + 1, mark.column + 1, format_path(parts)

    def _child(self, node: Node | None, el: Any) -> tuple[Node | None, Node] | None:
        if isinstance(node, MappingNode):
            entries = self.index.get(id(node), {})
            try:
                return entries.get(el)
            except TypeError:
                return None
        if (
            isinstance(node, SequenceNode)
            and isinstance(el, int)
            and not isinstance(el, bool)
            and 0 <= el < len(node.value)
        ):
            return None, node.value[el]
        return None

    def problem(
        self, loc: Sequence[Any], message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        line, col, path = self.locate(loc, key=key)
        return Problem(self.file, line, col, path, message, severity)


# --- parsing -------------------------------------------------------------------------------


def parse_yaml_file(path: str | Path, *, display: str | None = None) -> Document:
    """Read and parse one YAML file; any failure becomes a located problem."""
    shown = display if display is not None else str(path)
    p = Path(path)
    try:
        if p.is_dir():
            return _fail(shown, "is a directory, not a YAML file")
        if not p.exists():
            return _fail(shown, "file not found")
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return _fail(shown, f"cannot read: {exc.strerror or exc}")
    if len(raw) > MAX_FILE_BYTES:
        return _fail(shown, f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
    return parse_yaml_bytes(raw, shown)


def parse_yaml_bytes(raw: bytes, file: str) -> Document:
    """Parse YAML bytes (UTF-8) into a :class:`Document`."""
    with gc_paused():
        return _parse(raw, file)


def _parse(raw: bytes, file: str) -> Document:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _fail(file, "not UTF-8 text (is it a binary file?)", line=line)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "invalid YAML"
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return _fail(file, f"invalid YAML: {msg}", line=line, col=col)
    except yaml.YAMLError as exc:
        pos = getattr(exc, "position", None)
        line = text[:pos].count("\n") + 1 if isinstance(pos, int) else 1
        reason = getattr(exc, "reason", None) or "unreadable characters"
        return _fail(file, f"invalid YAML: {reason}", line=line)
    except RecursionError:
        return _fail(file, "invalid YAML: nested too deeply")
    except ValueError as exc:  # e.g. null bytes in the C reader
        return _fail(file, f"invalid YAML: {exc}")
    doc = Document(file=file, root=root, data=None)
    if root is None:
        return doc
    conv = _Converter(doc)
    try:
        doc.data = conv.convert(root)
    except _TooBig:
        doc.problems.append(Problem(file, 1, 1, "(root)", "document too large or too deep"))
        doc.data = None
    except RecursionError:
        doc.problems.append(Problem(file, 1, 1, "(root)", "document nested too deeply"))
        doc.data = None
    return doc


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (nested pauses are one).

    Parsing and validating a plan builds ~10^5 acyclic objects (nodes, marks, data, the
    model) whose only garbage is freed by reference counting: the collector's passes
    over them are wasted work. Once the pause ends, one pass sees what survived."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _fail(file: str, message: str, *, line: int = 1, col: int = 1) -> Document:
    return Document(file, None, None, [Problem(file, line, col, "(file)", message)])


_STANDARD_TAG = "tag:yaml.org,2002:"
_COLLECTION_TAGS = (_STANDARD_TAG + "map", _STANDARD_TAG + "seq")
_STR_TAG = _STANDARD_TAG + "str"


class _Converter:
    """Nodes → plain Python data, recording the key index and duplicate keys.

    Aliases are converted once (memoised), so "billion laughs" documents stay cheap;
    recursive aliases are reported instead of looping.
    """

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.ctor = yaml.constructor.SafeConstructor()
        self.memo: dict[int, Any] = {}
        self.active: set[int] = set()
        self.count = 0

    def convert(self, node: Node, depth: int = 0) -> Any:
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:
            self._problem(node, "recursive YAML alias")
            return None
        self.count += 1
        if self.count > MAX_NODES or depth > 500:
            raise _TooBig
        if isinstance(node, ScalarNode):
            # most scalars of a plan are plain strings: no conversion (hot path)
            value = node.value if node.tag == _STR_TAG else self._scalar(node)
        else:
            if node.tag not in _COLLECTION_TAGS:
                self._problem(node, f"unsupported YAML tag {str(node.tag)[:40]!r}")
            value = self._collection(node, key, depth)
        self.memo[key] = value
        return value

    def _collection(self, node: Node, key: int, depth: int) -> Any:
        if isinstance(node, SequenceNode):
            self.active.add(key)
            value: Any = [self.convert(child, depth + 1) for child in node.value]
            self.active.discard(key)
        else:
            self.active.add(key)
            value = self._mapping(node, depth)
            self.active.discard(key)
        return value

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag or ""
        if not tag.startswith(_STANDARD_TAG):
            self._problem(node, f"unsupported YAML tag {tag[:40]!r}")
            return node.value
        kind = tag[len(_STANDARD_TAG) :]
        try:
            if kind == "null":
                return None
            if kind == "bool":
                return self.ctor.construct_yaml_bool(node)
            if kind in ("int", "float"):
                if ":" in node.value:  # YAML 1.1 sexagesimal: 03:00 is not 180
                    return node.value
                if kind == "int":
                    return self.ctor.construct_yaml_int(node)
                return self.ctor.construct_yaml_float(node)
        except (ValueError, yaml.YAMLError):
            return node.value
        return node.value  # str, timestamp, binary, merge...: kept as text

    def _mapping(self, node: MappingNode, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        entries: dict[Any, tuple[Node, Node]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _STANDARD_TAG + "merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, "mapping keys must be plain scalars")
                continue
            k = self.convert(key_node, depth + 1)
            try:
                hash(k)
            except TypeError:  # pragma: no cover - scalars are hashable
                continue
            if k in entries:
                first = entries[k][0].start_mark.line + 1
                self._problem(key_node, f"duplicate key {str(k)[:60]!r} (first at line {first})")
                continue
            entries[k] = (key_node, value_node)
            out[k] = self.convert(value_node, depth + 1)
        for merge in merges:  # `<<: *defaults` (explicit keys win)
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for src in sources:
                if not isinstance(src, MappingNode):
                    self._problem(src, "a merge key (<<) needs a mapping")
                    continue
                merged = self.convert(src, depth + 1)
                if not isinstance(merged, dict):
                    continue
                for k, v in merged.items():
                    if k not in out:
                        out[k] = v
                        pair = self.doc.index.get(id(src), {}).get(k)
                        if pair:
                            entries[k] = pair
        self.doc.index[id(node)] = entries
        return out

    def _problem(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.doc.problems.append(
            Problem(self.doc.file, mark.line + 1, mark.column + 1, "(yaml)", message)
        )


# --- secrets written in clear ------------------------------------------------------------

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"credentials?)",
    re.I,
)
# Values that look like a secret. Every test is linear in the value's length (a plan's
# description may be megabytes): no pattern may retry a long run of characters from each
# of its positions, so fixed markers are found first ("://", "=", a tool's name) and the
# text around each is examined within a bounded window.
_URL_USERINFO = re.compile(r"://[^/\s:@]{1,256}+:[^/\s@]{1,256}+@")
# after a key word: the rest of the word (bounded), "=", and a literal value
_ASSIGNED = re.compile(r"\w{0,128}+=(?![$\s\"'{]|\Z)")
# (literals one of which must be in the value, pattern, kind): the literals are found by
# str's own search first (fast), the pattern runs only where one is present
_MARKERS = [
    (("-----BEGIN",), re.compile(r"-----BEGIN [A-Z ]{0,64}PRIVATE KEY-----"), "a private key"),
    (("AKIA",), re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
    (
        ("ghp", "gho", "ghs", "glpat", "xox"),
        re.compile(r"\b(?:ghp|gho|ghs|glpat|xox[bap])[-_][A-Za-z0-9_-]{10}"),
        "an API token",
    ),
    (("--pass",), re.compile(r"--pass(?:word)?(?:=|\s+)(?![$\s\"'{-])\S"), "a password option"),
]
# password options of common clients given a literal (not $VAR, not a reference): the
# option is found first, then its client's name earlier on the same line (bounded)
_CLIENT_OPTIONS = [
    (re.compile(r"\s-a\s++(?![$\"'{])\S"), ("redis-cli",)),
    (re.compile(r"\s(?:-u|--user)\s++[^\s:]{1,128}+:(?![$\s\"'{])\S"), ("curl",)),
    (
        re.compile(r"\s-p(?![$\s\"'{])\S"),
        ("mysql", "mariadb", "mysqldump", "mariadb-dump", "mysqladmin", "mariadb-admin"),
    ),
]
_KEY_WORDS = ("password", "passwd", "secret", "token")


def clear_secret(value: str) -> str | None:
    """What kind of secret `value` seems to hold in clear, or None; linear in its length."""
    i = value.find("://")
    while i != -1:
        if _URL_USERINFO.match(value, i) and any(
            c.isalpha() for c in _run_before(value, i, _SCHEME_CHARS, 32)
        ):
            return "a URL with a password"
        i = value.find("://", i + 3)
    if "=" in value:
        low = value.lower()
        for word in _KEY_WORDS:
            i = low.find(word)
            while i != -1:
                if _ASSIGNED.match(value, i + len(word)):
                    return "a password assigned in clear"
                i = low.find(word, i + len(word))
    for literals, pattern, what in _MARKERS:
        if any(x in value for x in literals) and pattern.search(value):
            return what
    for pattern, clients in _CLIENT_OPTIONS:
        if not any(c in value for c in clients):
            continue
        for hit in pattern.finditer(value):
            line = max(value.rfind("\n", 0, hit.start()) + 1, hit.start() - 512)
            if any(value.find(c, line, hit.start()) != -1 for c in clients):
                return "a password option"
    return None


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _run_before(text: str, end: int, chars: frozenset[str], limit: int) -> str:
    """The run of `chars` just before `end`, at most `limit` long (a bounded backward
    scan that stops at the first other character)."""
    start = end
    while start > max(0, end - limit) and text[start - 1] in chars:
        start -= 1
    return text[start:end]


SECRET_HINT = "reference it with {env: VAR}, {file: PATH} or {command: CMD} instead"


def find_clear_secrets(doc: Document) -> list[Problem]:
    """Secrets written in the plan itself: by key name, or values that look like one.

    Messages never include the value.
    """
    if doc.root is None:
        return []
    scan = _SecretScan(doc)
    with contextlib.suppress(RecursionError):  # depth is already bounded by the converter
        scan.walk(doc.root, ())
    return scan.problems


class _SecretScan:
    """One walk over a document's nodes (a class, not a recursive closure: a closure that
    calls itself is a reference cycle, which would keep every node of the document alive
    until the next garbage collection)."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.secret_key: dict[Any, bool] = {}  # few key names, repeated thousands of times

    def is_secret_key(self, k: Any) -> bool:
        hit = self.secret_key.get(k)
        if hit is None:
            hit = self.secret_key[k] = isinstance(k, str) and _SECRET_KEY.search(k) is not None
        return hit

    def walk(self, node: Node, loc: tuple[Any, ...]) -> None:
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        doc = self.doc
        if isinstance(node, ScalarNode):
            what = clear_secret(node.value) if len(node.value) >= 8 else None
            if what:
                self.problems.append(
                    doc.problem(loc, f"looks like {what} written in clear; {SECRET_HINT}")
                )
        elif isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                self.walk(child, (*loc, i))
        elif isinstance(node, MappingNode):
            for k, (_key_node, value_node) in doc.index.get(id(node), {}).items():
                if (
                    self.is_secret_key(k)
                    and isinstance(value_node, ScalarNode)
                    and value_node.tag != _STANDARD_TAG + "null"
                    and value_node.value.strip()
                    and value_node.tag != _STANDARD_TAG + "bool"
                ):
                    self.problems.append(
                        doc.problem((*loc, k), f"secret written in clear; {SECRET_HINT}")
                    )
                    self.seen.add(id(value_node))
                    continue
                self.walk(value_node, (*loc, k))


# --- plan ------------------------------------------------------------------------------------


@dataclass
class ParsedPlan:
    """A plan file after parsing and model validation (``plan`` is None on failure)."""

    doc: Document
    plan: m.Plan | None
    problems: list[Problem]
    path: Path

    @property
    def base_dir(self) -> Path:
        """Directory compose files and secret files are relative to."""
        return self.path.parent


def _all_field_names() -> list[str]:
    names: set[str] = set()
    for obj in vars(m).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            names.update(obj.model_fields)
    return sorted(names)


_FIELD_NAMES = _all_field_names()


NO_ENGINE = "data source has no engine"


def _message(err: dict[str, Any]) -> tuple[str, bool]:
    """A message for one pydantic error, and whether to point at the key (not the value)."""
    kind = err.get("type", "")
    loc = err.get("loc", ())
    last = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(last, _FIELD_NAMES, n=1)
        return f"unknown key {last[:60]!r}" + (
            f" (did you mean {hint[0]!r}?)" if hint else ""
        ), True
    if kind == "missing":
        if last == "engine":  # drplan.plan.validate adds the engines drplan knows
            return NO_ENGINE, False
        return f"missing required key {last!r}", False
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        ctx = err.get("ctx") or {}
        disc = str(ctx.get("discriminator", "type")).strip("'")
        expected = ctx.get("expected_tags") or ", ".join(m.CHECK_TYPES)
        if kind == "union_tag_invalid":
            return f"unknown {disc} {str(ctx.get('tag', ''))[:40]!r} (one of {expected})", False
        return f"needs a {disc!r} (one of {expected})", False
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg, False


def parse_plan(path: str | Path, *, display: str | None = None) -> ParsedPlan:
    """Parse and model-validate a plan file. Problems are located; nothing is raised."""
    p = Path(path)
    doc = parse_yaml_file(p, display=display)
    problems = list(doc.problems)
    if problems and doc.data is None:
        return ParsedPlan(doc, None, problems, p)
    if doc.root is None:
        problems.append(Problem(doc.file, 1, 1, "(root)", "empty plan: expected a mapping"))
        return ParsedPlan(doc, None, problems, p)
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), f"a plan is a mapping of keys, not a {_kind(doc.data)}"))
        return ParsedPlan(doc, None, problems, p)
    secrets = find_clear_secrets(doc)
    problems.extend(secrets)
    secret_paths = {s.path for s in secrets}
    plan: m.Plan | None = None
    try:
        plan = m.Plan.model_validate(doc.data)
    except ValidationError as exc:
        seen: dict[tuple[int, int, str], int] = {}
        for err in exc.errors(include_url=False, include_input=False):
            message, at_key = _message(err)
            line, col, shown = doc.locate(err["loc"], key=at_key)
            if any(shown == s or shown.startswith(s + ".") for s in secret_paths):
                continue
            slot = (line, col, shown)
            if slot in seen:  # alternatives of a union at the same place: one line
                i = seen[slot]
                old = problems[i]
                if message not in old.message:
                    problems[i] = Problem(
                        old.file, line, col, shown, f"{old.message}, or {message}"
                    )
                continue
            seen[slot] = len(problems)
            problems.append(Problem(doc.file, line, col, shown, message))
    return ParsedPlan(doc, plan, problems, p)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__
