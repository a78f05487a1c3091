"""The crisis cell's journal: an append-only, hash-chained record of what was decided.

Each line of the journal is one JSON entry::

    {"author":"dnum-director","kind":"decision","prev":"<hash of entry 2>",
     "role":"direction","seq":3,"text":"...","ts":"2024-06-03T08:12:44.120Z","v":2,
     "hash":"<sha256 of this line without its hash member>"}

``hash`` is the SHA-256 of the entry's canonical JSON (sorted keys, no spaces, UTF-8)
without the ``hash`` key; ``prev`` is the previous entry's hash, and for the first entry
the SHA-256 of the plan file's bytes, which binds the journal to the plan version it was
opened under (also recorded as ``plan_sha256`` in each ``open`` entry).

**The hash covers the bytes on disk, not just what they parse to.** A parser forgives
many spellings of one object: a duplicated key (``{"text":"real",...,"text":"decoy"}``
shows a human, ``grep`` or a first-key-wins parser one text while Python's ``json``
keeps the other), spaces, reordered keys, ``\\u00e9`` for ``é``, ``1.0`` for ``1``. So
every line must be *the* canonical serialisation of what it parses to, byte for byte
(:func:`serialise`), and duplicate keys and ``NaN``/``Infinity`` are refused outright;
then nothing in a line lies outside what its hash covers. Two line formats exist:

- ``"v": 2`` (written since the rule was introduced): the canonical JSON that is hashed,
  with ``"hash"`` appended as its last member, i.e. the hash is of the line's own bytes
  minus that member. ``v`` is inside the hashed body, so a line cannot be passed off as
  the older format.
- no ``v`` (version 1, journals written before): keys in the order the writer of that
  version put them (``seq``, ``ts``, ``kind``, ``role``, ``author``, ``text``, then the
  fields of that kind, ``prev``, ``hash``), compact separators, non-ASCII as is. They
  still verify, under that same byte-for-byte rule; a version-1 line after a version-2
  line does not.

What this proves, honestly: the chain is **tamper-evident, not authenticated**. Editing,
deleting, reordering or inserting an entry in the middle breaks a hash or a ``prev`` link,
and :func:`verify` names the first broken line. But anyone who can write the file can
recompute the whole chain, or drop entries from its end, since no secret is involved;
``role`` and ``author`` are what the writer *claimed* (checked against the plan's crisis
cell, not signed). To make a rewrite detectable, copy the head hash somewhere else (the
crisis bridge chat, an e-mail, the backup repository) and check it with
``drplan crisis verify --head HASH``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drplan.crisis.store import JournalStore, LocalFileStore
from drplan.errors import InputError, OperationError
from drplan.plan import model as m

KINDS = ("open", "log", "decision", "status", "activation", "close")
ROLES = ("direction", "technical_coordination", "communication", "user_support")
DECISIONS = ("start-recovery", "switch-production", "return-to-normal", "other")
REQUIRED_ROLE = {"decision": "direction", "close": "direction", "status": "communication"}
"""Kinds of entry only one role may write (unless forced)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(when: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, millisecond precision."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_ts(text: str, *, what: str = "time") -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except (ValueError, AttributeError):
        raise InputError(
            f"{what} {text!r} is not an ISO 8601 time (e.g. 2024-06-03T08:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


FORMAT = 2
"""The line format new entries are written in (their ``v`` field); see the module doc."""

REQUIRED = ("seq", "ts", "kind", "role", "author", "prev", "hash")

# How the version-1 writer ordered an entry's keys: these, then the fields its caller
# passed for that kind (in the caller's order, those that were None left out), then
# prev and hash. Only used to hold old lines to a single byte-exact spelling.
_V1_HEAD = ("seq", "ts", "kind", "role", "author", "text", "forced_role")
_V1_FIELDS = {
    "open": ("incident_at", "stack", "plan_file", "plan_sha256"),
    "activation": ("criteria", "activated"),
    "log": (),
    "decision": ("decision", "why", "profile", "keeps_option_to_switch"),
    "status": ("message", "eta", "eta_basis", "profile", "estimated_rto_s"),
    "close": (),
}
_V1_TAIL = ("prev", "hash")
_V1_CRITERION = ("index", "kind", "description", "status", "why")


class LineError(Exception):
    """A journal line that is not an entry as drplan writes it (the reason is the text)."""


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes that are hashed: canonical JSON of the entry without ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise LineError(
                f"duplicate key {key!r} (one value would be read and the other hidden behind it)"
            )
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise LineError(f"{name} is not a JSON value")


def parse_line(line: str) -> dict[str, Any]:
    """A line as a JSON object; LineError for bad JSON, duplicate keys or NaN/Infinity.

    Python's ``json`` silently keeps the last of duplicated keys; refusing them here is
    what keeps a decoy value from hiding in a line whose hash still checks out."""
    try:
        entry = json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise LineError(f"not a JSON entry ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise LineError("not a journal entry (nested too deeply)") from None
    if not isinstance(entry, dict):
        raise LineError("not a JSON object")
    return entry


def _v1_ordered(obj: dict[str, Any], order: tuple[str, ...], what: str) -> dict[str, Any]:
    extra = [k for k in obj if k not in order]
    if extra:
        raise LineError(f"{what} has a field a version-1 entry never had: {extra[0]!r}")
    return {k: obj[k] for k in order if k in obj}


def _v1_scalar(value: Any, what: str) -> None:
    # the v1 layout pins key order only where the writer put objects (top level and
    # activation criteria); an object anywhere else could be reordered unseen
    if isinstance(value, dict | list):
        raise LineError(f"{what} holds a structure a version-1 entry never had")


def _v1_line(entry: dict[str, Any]) -> str:
    kind = entry.get("kind")
    if kind not in _V1_FIELDS:
        raise LineError(f"unknown kind {kind!r}")
    ordered = _v1_ordered(entry, (*_V1_HEAD, *_V1_FIELDS[kind], *_V1_TAIL), f"the {kind} entry")
    for key, value in ordered.items():
        if key == "criteria" and kind == "activation" and isinstance(value, list):
            items = []
            for item in value:
                if not isinstance(item, dict):
                    raise LineError("an activation criterion is not an object")
                item = _v1_ordered(item, _V1_CRITERION, "an activation criterion")
                for name, v in item.items():
                    _v1_scalar(v, f"criterion field {name!r}")
                items.append(item)
            ordered[key] = items
        else:
            _v1_scalar(value, f"field {key!r}")
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))


def line_version(entry: dict[str, Any]) -> int:
    """1 for lines without ``v``, else ``v`` itself (LineError if it is not a known one)."""
    if "v" not in entry:
        return 1
    version = entry["v"]
    if type(version) is not int or version != FORMAT:
        raise LineError(f"unknown line format v={version!r} (written by a newer drplan?)")
    return version


def serialise(entry: dict[str, Any]) -> str:
    """The one line an entry may be stored as (LineError if it cannot be stored at all).

    For the current format that is the hashed canonical JSON with ``"hash"`` appended as
    its last member, so the stored bytes are exactly the hashed bytes plus the hash."""
    if line_version(entry) == 1:
        return _v1_line(entry)
    try:
        body = canonical(entry).decode("utf-8")
    except UnicodeEncodeError:
        raise LineError("holds a \\u escape of a lone surrogate, which is not text") from None
    return body[:-1] + ',"hash":' + json.dumps(entry.get("hash"), ensure_ascii=False) + "}"


def _misordered(found: Any, want: Any, path: str) -> str | None:
    """Where (a JSON path) an object's keys first come in another order than expected."""
    if isinstance(found, dict) and isinstance(want, dict):
        if list(found) != list(want):
            return f"{path or 'the entry'} ({', '.join(found)}; expected {', '.join(want)})"
        pairs = [(found[k], want[k], f"{path}.{k}" if path else k) for k in found]
    elif isinstance(found, list) and isinstance(want, list):
        pairs = [(a, b, f"{path}[{i}]") for i, (a, b) in enumerate(zip(found, want, strict=False))]
    else:
        return None
    return next((w for a, b, p in pairs if (w := _misordered(a, b, p))), None)


def _difference(line: str, expected: str, entry: dict[str, Any]) -> str:
    """What sets a line apart from its canonical spelling, for the verify message."""
    where = _misordered(entry, json.loads(expected), "")
    if where:
        return f"keys out of order in {where}"
    at = next(
        (i for i, (a, b) in enumerate(zip(line, expected, strict=False)) if a != b),
        min(len(line), len(expected)),
    )
    return (
        f"differs from its canonical form at column {at + 1} (found {line[at : at + 12]!r}, "
        f"expected {expected[at : at + 12]!r}): spaces, escapes or numbers written otherwise"
    )


def check_line(line: str) -> dict[str, Any]:
    """The entry on a line that drplan could have written; LineError saying what is wrong.

    The line must parse (no duplicate keys), hold the required keys, and be byte for byte
    the canonical serialisation of what it parses to: only then does the hash, computed on
    that serialisation, cover every byte of the line."""
    entry = parse_line(line)
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise LineError(f"not a journal entry (no {', '.join(missing)})")
    expected = serialise(entry)
    if line != expected:
        raise LineError(
            "not in the canonical form drplan writes, so not every byte is covered by the "
            f"hash: {_difference(line, expected, entry)}"
        )
    return entry


def file_sha256(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None


def default_journal_path(plan_path: str | Path) -> Path:
    """``crisis/<plan-stem>-journal.jsonl`` next to the plan."""
    plan_path = Path(plan_path)
    return plan_path.parent / "crisis" / f"{plan_path.stem}-journal.jsonl"


@dataclass
class Break:
    """The first place where the chain does not hold."""

    line: int
    seq: Any
    reason: str

    def __str__(self) -> str:
        seq = f"seq {self.seq}" if self.seq is not None else "no seq"
        return f"line {self.line} ({seq}): {self.reason}"


@dataclass
class Verification:
    """Outcome of recomputing the chain."""

    entries: int
    broken: Break | None = None
    head: str | None = None
    plan_sha256: str | None = None
    """The plan hash the journal was opened against (first entry's ``prev``)."""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass
class Crisis:
    """One crisis of the journal: from its ``open`` entry to its ``close`` (if any)."""

    entries: list[dict[str, Any]]

    @property
    def opened(self) -> dict[str, Any]:
        return self.entries[0]

    @property
    def closed(self) -> dict[str, Any] | None:
        last = self.entries[-1]
        return last if last["kind"] == "close" else None

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == "decision"]

    @property
    def activation(self) -> dict[str, Any] | None:
        return next((e for e in self.entries if e["kind"] == "activation"), None)

    def last_decision(self, decision: str) -> dict[str, Any] | None:
        found = [e for e in self.decisions if e.get("decision") == decision]
        return found[-1] if found else None


class Journal:
    """A crisis journal bound to a plan. Reads validate every line; appends extend the chain."""

    def __init__(
        self,
        store: JournalStore,
        plan: m.Plan,
        plan_path: str | Path,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if plan.crisis_cell is None:
            raise InputError(
                "the plan has no crisis_cell: add one to use the journal", where=str(plan_path)
            )
        self.store = store
        self.plan = plan
        self.cell = plan.crisis_cell
        self.plan_path = Path(plan_path)
        self.clock = clock

    @classmethod
    def at(cls, path: str | Path, plan: m.Plan, plan_path: str | Path, **kw: Any) -> Journal:
        return cls(LocalFileStore(path), plan, plan_path, **kw)

    # -- reading --

    def _parse(self, lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
        """Entries for reading: strict JSON (no duplicate keys), the required keys.

        The byte-exact form and the chain are :meth:`verify`'s job (appends run it)."""
        parsed = []
        for n, line in enumerate(lines, 1):
            where = f"{self.store.location}:{n}"
            if not line.strip():
                raise InputError("empty line in the journal (a line was blanked out?)", where=where)
            try:
                entry = parse_line(line)
            except LineError as exc:
                raise InputError(str(exc), where=where) from None
            missing = [k for k in REQUIRED if k not in entry]
            if missing:
                raise InputError(f"entry lacks {', '.join(missing)}", where=where)
            parsed.append((n, entry))
        return parsed

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, in order; a malformed line raises a located InputError."""
        return [e for _, e in self._parse(self.store.read_all())]

    def require_exists(self) -> None:
        """InputError when there is no journal yet."""
        if not self.store.exists():
            raise InputError(
                "no crisis journal here yet: open a crisis first (drplan crisis open)",
                where=self.store.location,
            )

    def require(self) -> list[dict[str, Any]]:
        """Entries of an existing journal (InputError when there is none yet)."""
        self.require_exists()
        return self.entries()

    @staticmethod
    def crises(entries: list[dict[str, Any]]) -> list[Crisis]:
        found: list[Crisis] = []
        for entry in entries:
            if entry["kind"] == "open":
                found.append(Crisis([entry]))
            elif found:
                found[-1].entries.append(entry)
        return found

    def current(self, entries: list[dict[str, Any]] | None = None) -> Crisis | None:
        """The open crisis, if there is one."""
        crises = self.crises(self.entries() if entries is None else entries)
        if crises and crises[-1].closed is None:
            return crises[-1]
        return None

    def verify(self, *, head: str | None = None) -> Verification:
        """Recompute the chain; the first broken link is reported, not raised."""
        lines = self.store.read_all()
        result = Verification(entries=len(lines))
        prev_hash: str | None = None
        prev_ts: str | None = None
        seen: set[str] = set()
        newest = 1
        for n, line in enumerate(lines, 1):
            try:
                entry = check_line(line)
                version = line_version(entry)
            except LineError as exc:
                seq = _seq_of(line)
                reason = str(exc)
                if reason.startswith("not a JSON entry"):
                    reason += ": line edited or torn"
                result.broken = Break(n, seq, reason)
                return result
            seq = entry.get("seq")
            if version < newest:
                result.broken = Break(
                    n, seq, f"a version-{version} line after version-{newest} lines"
                )
                return result
            newest = version
            if type(seq) is not int:
                result.broken = Break(n, seq, "seq is not an integer")
                return result
            if entry_hash(entry) != entry["hash"]:
                result.broken = Break(
                    n,
                    seq,
                    "hash does not match the entry's content (entry edited after it was written)",
                )
                return result
            if n == 1:
                if entry.get("kind") != "open" or entry.get("prev") != entry.get("plan_sha256"):
                    result.broken = Break(
                        n,
                        seq,
                        "the first entry must be an open entry whose "
                        "prev is the plan's hash (first entries deleted?)",
                    )
                    return result
                result.plan_sha256 = entry["prev"]
            elif entry.get("prev") != prev_hash:
                result.broken = Break(
                    n,
                    seq,
                    "prev does not match the hash of the entry on the "
                    f"line before (line {n - 1}): an entry was deleted, "
                    "inserted or moved here",
                )
                return result
            if seq != n:
                result.broken = Break(n, seq, f"seq should be {n}: entries renumbered")
                return result
            if prev_ts is not None and str(entry.get("ts")) < prev_ts:
                result.notes.append(
                    f"line {n} (seq {seq}): time goes backwards "
                    f"({entry.get('ts')} after {prev_ts}); clocks differ?"
                )
            prev_hash, prev_ts = entry["hash"], str(entry.get("ts"))
            seen.add(entry["hash"])
        result.head = prev_hash
        if head is not None and head not in seen:
            result.broken = Break(
                len(lines),
                None,
                f"head hash {head[:16]}… is not in the "
                "journal: it was rewritten or truncated since that hash was "
                "noted",
            )
        if result.plan_sha256 and self.plan_path.is_file():
            current = file_sha256(self.plan_path)
            if current != result.plan_sha256:
                result.notes.append(
                    "the plan file has changed since the journal was opened "
                    f"(opened against sha256 {result.plan_sha256[:16]}…)"
                )
        return result

    # -- writing --

    def person(self, author: str) -> m.Person:
        if author not in self.cell.people:
            known = ", ".join(self.cell.people) or "none"
            raise InputError(
                f"unknown person {author!r} in the crisis cell (known: {known})",
                where=str(self.plan_path),
            )
        return self.cell.people[author]

    def holders(self, role: str) -> list[str]:
        return list(getattr(self.cell.roles, role))

    def check_author(self, kind: str, role: str, author: str, force_role: bool) -> None:
        if role not in ROLES:
            raise InputError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        self.person(author)
        if force_role:
            return
        holders = self.holders(role)
        if author not in holders:
            raise InputError(
                f"{author} does not hold the role {role} in the plan's crisis cell (holders: "
                f"{', '.join(holders) or 'nobody'}); use --force-role to record it anyway",
                where=str(self.plan_path),
            )
        needed = REQUIRED_ROLE.get(kind)
        if needed and role != needed:
            raise InputError(
                f"a {kind} entry is written by the {needed} role, not {role}; "
                "use --force-role to record it anyway"
            )

    def append(
        self,
        kind: str,
        *,
        role: str,
        author: str,
        text: str,
        force_role: bool = False,
        check: Callable[[list[dict[str, Any]]], None] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add one entry under the store's lock; ``check`` sees the entries first and may
        raise (e.g. "no open crisis") so the decision and the append are atomic."""
        if kind not in KINDS:
            raise ValueError(f"unknown entry kind {kind}")
        self.check_author(kind, role, author, force_role)
        with self.store.lock():
            lines = self.store.read_all()
            entries = [e for _, e in self._parse(lines)]
            if check is not None:
                check(entries)
            if kind == "open":
                fields.setdefault("plan_sha256", file_sha256(self.plan_path))
            if entries:
                tail = self.verify()
                if not tail.ok:
                    raise OperationError(
                        f"the journal's chain is broken at {tail.broken}; not appending to a "
                        "tampered journal (see drplan crisis verify)",
                        where=self.store.location,
                    )
                prev = entries[-1]["hash"]
            elif kind == "open":
                prev = fields["plan_sha256"]
            else:
                raise InputError("a journal starts with an open entry", where=self.store.location)
            entry: dict[str, Any] = {
                "seq": len(entries) + 1,
                "ts": format_ts(self.clock()),
                "kind": kind,
                "role": role,
                "author": author,
                "text": text,
            }
            if force_role:
                entry["forced_role"] = True
            for key, value in fields.items():
                if value is not None and key not in entry:
                    entry[key] = value
            entry["prev"] = prev
            entry["v"] = FORMAT
            try:
                entry["hash"] = entry_hash(entry)
            except UnicodeEncodeError:
                raise InputError("the entry's text is not valid Unicode") from None
            self.store.append(serialise(entry))
        return entry


def _seq_of(line: str) -> Any:
    """The seq of a line verify refuses, when it can still be read (for the message)."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return entry.get("seq") if isinstance(entry, dict) else None


def describe(entry: dict[str, Any]) -> str:
    """One line for a terminal."""
    extra = ""
    if entry["kind"] == "decision":
        extra = f" {entry.get('decision')}"
    return (
        f"#{entry['seq']} {entry['ts']} [{entry['role']}] {entry['author']} "
        f"{entry['kind']}{extra}: {entry.get('text', '')}"
    )
