"""The crisis journal's hash covers the bytes of each line, not only what they parse to.

A JSON parser accepts many spellings of one object, and Python's keeps the *last* of two
duplicated keys: ``{"text":"all fine",...,"text":"storage array dead",...}`` hashes as
the real entry while a reader of the file (or ``grep``, or a first-key-wins parser) sees
the decoy. Each tampering below leaves the parsed entry, and so its old hash, unchanged;
verify must still refuse the line and say which line and why. The same holds for
journals written before the canonical-line rule (version 1, no ``v`` field), kept here
exactly as that writer produced them.

The tampering tests use only what ``drplan.crisis.cell`` always offered, so they run
(and fail) against the journal code from before the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from drplan.crisis import cell
from drplan.crisis.activation import Observations
from drplan.errors import InputError, OperationError
from tests.unit.crisis_helpers import Clock
from tests.unit.test_crisis_journal import full_crisis, lines_of, write_lines

# Written by drplan's journal as of commit 7364975 (before lines had to be canonical):
# an open with an incident time and non-ASCII, quotes and a newline in its text, the
# activation, a log, a forced-role log, a start-recovery decision with a profile, a
# status (with a float), another decision and the close.
V1_JOURNAL = r"""
{"seq":1,"ts":"2024-06-03T08:00:00.000Z","kind":"open","role":"direction","author":"boss","text":"plateforme d'examens arrêtée | \"all\"\nsecond line","incident_at":"2024-06-03T07:40:00.000Z","stack":"campus","plan_file":"/tmp/v1gen/plan.yml","plan_sha256":"f27100ffe74f75a2a58200bb7e0db483aadb4df5789b64271a87d0dff19ba3b2","prev":"f27100ffe74f75a2a58200bb7e0db483aadb4df5789b64271a87d0dff19ba3b2","hash":"852c6f5966430a877c6c19c4d956617cb55afaabb4a10c9e917eabe21c5f93f6"}
{"seq":2,"ts":"2024-06-03T08:00:00.000Z","kind":"activation","role":"direction","author":"boss","text":"activation criteria met","criteria":[{"index":1,"kind":"service_down","description":"services down ≥ 15m","status":"met","why":"exam down for 20m (≥ 15m)"},{"index":2,"kind":"tickets","description":"≥ 10 tickets in 1h","status":"not_met","why":"3 tickets in 1h (given) < threshold 10"},{"index":3,"kind":"command","description":"external probe","status":"met","why":"probe failed (exit 1)"}],"activated":"met","prev":"852c6f5966430a877c6c19c4d956617cb55afaabb4a10c9e917eabe21c5f93f6","hash":"a83ac6994f7abb00f38f5d7a979e430e439996e6a0818cfbcc1c0f773f773b62"}
{"seq":3,"ts":"2024-06-03T08:05:00.000Z","kind":"log","role":"technical_coordination","author":"tech","text":"baie de stockage morte ✝","prev":"a83ac6994f7abb00f38f5d7a979e430e439996e6a0818cfbcc1c0f773f773b62","hash":"1fa900f41e7420825676ec82cfc5263168f00ea53810cbefde655660adb92764"}
{"seq":4,"ts":"2024-06-03T08:06:00.000Z","kind":"log","role":"direction","author":"tech","text":"forced entry","forced_role":true,"prev":"1fa900f41e7420825676ec82cfc5263168f00ea53810cbefde655660adb92764","hash":"bd38352a212a773ad294797d6a44b61c0762a65f001c9e3444a4c881c95fdf49"}
{"seq":5,"ts":"2024-06-03T08:16:00.000Z","kind":"decision","role":"direction","author":"boss","text":"site lost (recovery of profile exams on the recovery site; production is not switched until a switch-production decision)","decision":"start-recovery","why":"site lost","profile":"exams","keeps_option_to_switch":true,"prev":"bd38352a212a773ad294797d6a44b61c0762a65f001c9e3444a4c881c95fdf49","hash":"004be5cff092de6dbac1292d719634eaa74f46e429e37d7a927b8682e0425d58"}
{"seq":6,"ts":"2024-06-03T08:18:00.000Z","kind":"status","role":"communication","author":"comms","text":"Exams are unavailable. Recovery under way since 2024-06-03 08:16 UTC; service expected back around 2024-06-03 08:20 UTC (in about 2m 25s; estimated recovery time 4m 25s, profile exams). Next update from Comms officer (comms@example.org).","message":"Exams are unavailable","eta":"2024-06-03T08:20:25.000Z","eta_basis":"start-recovery decision #5","profile":"exams","estimated_rto_s":265.0,"prev":"004be5cff092de6dbac1292d719634eaa74f46e429e37d7a927b8682e0425d58","hash":"b54f271a62231c0fae5eecce32b0513336af239bc29a30894f72c02e22a91e02"}
{"seq":7,"ts":"2024-06-03T08:58:00.000Z","kind":"decision","role":"direction","author":"boss","text":"keep going","decision":"other","why":"keep going","prev":"b54f271a62231c0fae5eecce32b0513336af239bc29a30894f72c02e22a91e02","hash":"c5c43d0416dc0d923368b086997b539db653080d759fb1e4030ffdf43e3c16e2"}
{"seq":8,"ts":"2024-06-03T09:01:00.000Z","kind":"close","role":"direction","author":"boss","text":"back","prev":"c5c43d0416dc0d923368b086997b539db653080d759fb1e4030ffdf43e3c16e2","hash":"f255ae80b18a83e74405baa8358f37c0cfee8261e6e0990f766aae647c86ff20"}
""".strip("\n").split("\n")  # noqa: E501
V1_HEAD = "f255ae80b18a83e74405baa8358f37c0cfee8261e6e0990f766aae647c86ff20"


@pytest.fixture
def v1(ctx: cell.Context) -> cell.Context:
    """A context whose journal is the version-1 journal above, byte for byte."""
    Path(ctx.journal.store.location).parent.mkdir(parents=True, exist_ok=True)
    write_lines(ctx, V1_JOURNAL)
    return ctx


def _reordered(line: str, first: str) -> str:
    """The same object with key `first` moved to the front (same values, same hash)."""
    entry = json.loads(line)
    moved = {first: entry.pop(first), **entry}
    return json.dumps(moved, ensure_ascii=False, separators=(",", ":"))


def _swap_keys(line: str, a: str, b: str) -> str:
    entry = json.loads(line)
    keys = list(entry)
    i, j = keys.index(a), keys.index(b)
    keys[i], keys[j] = keys[j], keys[i]
    return json.dumps({k: entry[k] for k in keys}, ensure_ascii=False, separators=(",", ":"))


def _decoy(line: str) -> str:
    """A second "text" in front of the real one: json keeps the last, a reader sees the
    first."""
    assert line.startswith("{")
    return '{"text":"all fine, nothing happened",' + line[1:]


def _float_respelt(line: str) -> str:
    return re.sub(r'"estimated_rto_s":(\d+\.\d+)', r'"estimated_rto_s":\g<1>00', line)


Edit = Callable[[str], str]

# name: (line index to edit, edit, words the reason must contain)
V2_TAMPERING: dict[str, tuple[int, Edit, str]] = {
    "duplicate key hiding a decoy": (2, _decoy, "duplicate key 'text'"),
    "space after a colon": (2, lambda ln: ln.replace('"kind":', '"kind": ', 1), "column"),
    "space before the line": (2, lambda ln: " " + ln, "column 1"),
    "keys reordered": (2, lambda ln: _reordered(ln, "text"), "keys out of order in the entry"),
    "letter escaped": (2, lambda ln: ln.replace('"tech"', '"\\u0074ech"', 1), "column"),
    "float respelt": (4, _float_respelt, "column"),
    "nested keys reordered": (
        1,
        lambda ln: ln.replace(
            '{"description":"external probe","index":3,',
            '{"index":3,"description":"external probe",',
        ),
        "keys out of order in criteria[2] (index, description,",
    ),
}

V1_TAMPERING: dict[str, tuple[int, Edit, str]] = {
    "duplicate key hiding a decoy": (2, _decoy, "duplicate key 'text'"),
    "space after a colon": (2, lambda ln: ln.replace('"kind":', '"kind": ', 1), "column"),
    "keys reordered": (2, lambda ln: _reordered(ln, "text"), "keys out of order in the entry"),
    "kind fields swapped": (4, lambda ln: _swap_keys(ln, "decision", "why"), "keys out of order"),
    "letter escaped": (2, lambda ln: ln.replace("✝", "\\u271d"), "column"),
    "float respelt": (5, _float_respelt, "column"),
    "nested keys reordered": (
        1,
        lambda ln: ln.replace('{"index":3,"kind":"command",', '{"kind":"command","index":3,'),
        "keys out of order in criteria[2] (kind, index,",
    ),
}


def _assert_refused(ctx: cell.Context, line: int, seq: int, reason: str) -> None:
    with pytest.raises(OperationError) as info:
        cell.verify(ctx)
    message = str(info.value)
    assert f"line {line} (seq {seq})" in message, message
    assert reason in message, message


@pytest.mark.parametrize("name", list(V2_TAMPERING))
def test_a_respelt_line_is_refused(ctx: cell.Context, clock: Clock, name: str) -> None:
    full_crisis(ctx, clock)
    index, edit, reason = V2_TAMPERING[name]
    lines = lines_of(ctx)
    edited = edit(lines[index])
    assert edited != lines[index]
    assert json.loads(edited) == json.loads(lines[index])  # same content to a parser
    lines[index] = edited
    write_lines(ctx, lines)
    _assert_refused(ctx, index + 1, index + 1, reason)


@pytest.mark.parametrize("name", list(V1_TAMPERING))
def test_a_respelt_version_1_line_is_refused(v1: cell.Context, name: str) -> None:
    index, edit, reason = V1_TAMPERING[name]
    lines = list(V1_JOURNAL)
    edited = edit(lines[index])
    assert edited != lines[index]
    assert json.loads(edited) == json.loads(lines[index])
    lines[index] = edited
    write_lines(v1, lines)
    _assert_refused(v1, index + 1, index + 1, reason)


def _reopen(ctx: cell.Context) -> None:
    """A new crisis opened on the journal (its lines are written in the current format)."""
    cell.open_crisis(
        ctx,
        role="direction",
        author="boss",
        reason="again",
        observations=Observations(down=[], run_commands=False),
    )


def test_a_version_1_journal_still_verifies_and_grows(v1: cell.Context, clock: Clock) -> None:
    result = cell.verify(v1, head=V1_HEAD)
    assert result.ok and result.entries == 8 and result.head == V1_HEAD
    assert [e["seq"] for e in v1.journal.entries()] == list(range(1, 9))
    clock.advance(hours=2)
    _reopen(v1)
    lines = lines_of(v1)
    assert lines[:8] == V1_JOURNAL
    assert all(json.loads(ln)["v"] == 2 for ln in lines[8:])
    assert json.loads(lines[8])["prev"] == V1_HEAD
    assert cell.verify(v1, head=V1_HEAD).entries == 10


def test_no_version_1_line_after_version_2(v1: cell.Context, clock: Clock) -> None:
    """An old-format line cannot follow a new one, even with a correct hash and prev."""
    from drplan.crisis.journal import entry_hash, serialise

    clock.advance(hours=2)
    _reopen(v1)
    lines = lines_of(v1)
    last = json.loads(lines[-1])
    old = {
        "seq": last["seq"] + 1,
        "ts": last["ts"],
        "kind": "log",
        "role": "direction",
        "author": "boss",
        "text": "written the old way",
        "prev": last["hash"],
    }
    old["hash"] = entry_hash(old)
    write_lines(v1, [*lines, serialise(old)])
    _assert_refused(v1, 11, 11, "version-1 line after version-2")


def test_hash_covers_the_line_bytes(ctx: cell.Context, clock: Clock) -> None:
    """A current line is the hashed bytes with the hash appended as the last member."""
    import hashlib

    full_crisis(ctx, clock)
    for line in lines_of(ctx):
        body, sep, tail = line.rpartition(',"hash":"')
        assert sep and re.fullmatch(r"[0-9a-f]{64}\"\}", tail)
        assert hashlib.sha256((body + "}").encode()).hexdigest() == tail[:64]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda ln: ln.replace('"v":2', '"v":3'), "unknown line format v=3"),
        (lambda ln: ln.replace('"v":2', '"v":NaN'), "NaN is not a JSON value"),
        (lambda ln: ln.replace('"v":2', '"v":2.0'), "unknown line format v=2.0"),
        (
            lambda ln: ln.replace('"storage array dead"', '"\\ud800"'),
            "lone surrogate",
        ),
    ],
)
def test_odd_values_are_refused(ctx: cell.Context, clock: Clock, edit: Edit, reason: str) -> None:
    full_crisis(ctx, clock)
    lines = lines_of(ctx)
    lines[2] = edit(lines[2])
    write_lines(ctx, lines)
    with pytest.raises(OperationError, match=r"line 3 \(seq 3\)") as info:
        cell.verify(ctx)
    assert reason in str(info.value)


def test_reading_refuses_a_duplicate_key(ctx: cell.Context, clock: Clock) -> None:
    """Not just verify: the entries shown (status, export) never come from a decoy line."""
    full_crisis(ctx, clock)
    lines = lines_of(ctx)
    lines[2] = _decoy(lines[2])
    write_lines(ctx, lines)
    with pytest.raises(InputError) as info:
        ctx.journal.entries()
    assert str(info.value).startswith(f"{ctx.journal.store.location}:3: duplicate key 'text'")


def test_no_append_after_a_respelt_line(ctx: cell.Context, clock: Clock) -> None:
    full_crisis(ctx, clock)
    lines = lines_of(ctx)
    lines[-1] = lines[-1].replace('"kind":', '"kind": ', 1)
    write_lines(ctx, lines)
    clock.advance(hours=1)
    with pytest.raises(OperationError, match="chain is broken at line 7"):
        cell.open_crisis(
            ctx,
            role="direction",
            author="boss",
            reason="again",
            observations=Observations(down=[], run_commands=False),
        )
