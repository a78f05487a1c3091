"""The crisis journal: append, verify, and every kind of tampering detected and located."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from drplan.crisis import cell
from drplan.crisis.activation import Observations
from drplan.crisis.journal import entry_hash, serialise
from drplan.errors import InputError, OperationError
from tests.unit.crisis_helpers import (
    Clock,
    crisis_context,
    crisis_plan,
    open_quietly,
    run_cli,
)


def full_crisis(ctx: cell.Context, clock: Clock) -> None:
    cell.open_crisis(
        ctx,
        role="direction",
        author="boss",
        reason="exam platform down",
        observations=Observations(down=["exam"], down_since_min=20, tickets=3),
        incident_at="2024-06-03T07:40Z",
    )
    clock.advance(minutes=5)
    cell.log(ctx, role="technical_coordination", author="tech", text="storage array dead")
    clock.advance(minutes=10)
    cell.decide(
        ctx,
        role="direction",
        author="boss",
        decision="start-recovery",
        why="primary site lost for hours",
    )
    clock.advance(minutes=2)
    cell.status(ctx, role="communication", author="comms", message="Exams are unavailable")
    clock.advance(minutes=40)
    cell.decide(
        ctx,
        role="direction",
        author="boss",
        decision="switch-production",
        why="recovered site validated",
    )
    clock.advance(minutes=3)
    cell.close(ctx, role="direction", author="boss", summary="back on the recovery site")


def lines_of(ctx: cell.Context) -> list[str]:
    return Path(ctx.journal.store.location).read_text("utf-8").splitlines()


def write_lines(ctx: cell.Context, lines: list[str]) -> None:
    Path(ctx.journal.store.location).write_text("\n".join(lines) + "\n", "utf-8")


def test_round_trip(ctx: cell.Context, clock: Clock, tmp_path: Path) -> None:
    full_crisis(ctx, clock)
    path = Path(ctx.journal.store.location)
    assert path == tmp_path / "crisis" / "plan-journal.jsonl"
    entries = ctx.journal.entries()
    assert [e["kind"] for e in entries] == [
        "open",
        "activation",
        "log",
        "decision",
        "status",
        "decision",
        "close",
    ]
    assert [e["seq"] for e in entries] == list(range(1, 8))
    assert entries[0]["ts"] == "2024-06-03T08:00:00.000Z"
    assert entries[-1]["ts"].endswith("Z")
    plan_hash = hashlib.sha256((tmp_path / "plan.yml").read_bytes()).hexdigest()
    assert entries[0]["prev"] == plan_hash == entries[0]["plan_sha256"]
    for before, after in itertools.pairwise(entries):
        assert after["prev"] == before["hash"]
    for e in entries:
        assert e["hash"] == entry_hash(e)
    result = cell.verify(ctx)
    assert result.ok and result.entries == 7 and result.head == entries[-1]["hash"]
    assert result.notes == []


def test_plan_change_is_a_note_not_a_break(ctx: cell.Context, clock: Clock, tmp_path: Path) -> None:
    full_crisis(ctx, clock)
    plan = tmp_path / "plan.yml"
    plan.write_text(plan.read_text() + "\n# edited\n")
    ctx2 = crisis_context(str(plan))
    result = cell.verify(ctx2)
    assert result.ok
    assert any("plan file has changed" in n for n in result.notes)


def _edit(field: str, value: object):
    def edit(lines: list[str]) -> list[str]:
        entry = json.loads(lines[2])
        entry[field] = value
        lines[2] = serialise(entry)
        return lines

    return edit


def _edit_and_rehash(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["text"] = "nothing happened"
    entry["hash"] = entry_hash(entry)
    lines[2] = serialise(entry)
    return lines


def _forge_insert(lines: list[str]) -> list[str]:
    before = json.loads(lines[2])
    forged = dict(before, seq=4, text="forged entry", kind="log")
    forged["prev"] = before["hash"]
    forged["hash"] = entry_hash(forged)
    return [*lines[:3], serialise(forged), *lines[3:]]


TAMPERING = {
    # name: (edit, line reported, seq reported, words in the reason)
    "text edited": (_edit("text", "nothing happened"), 3, 3, "hash does not match"),
    "ts edited": (_edit("ts", "2024-06-03T07:00:00.000Z"), 3, 3, "hash does not match"),
    "role edited": (_edit("role", "direction"), 3, 3, "hash does not match"),
    "author edited": (_edit("author", "boss"), 3, 3, "hash does not match"),
    "edited and rehashed": (_edit_and_rehash, 4, 4, "prev does not match"),
    "line deleted": (lambda ls: ls[:2] + ls[3:], 3, 4, "prev does not match"),
    "first line deleted": (lambda ls: ls[1:], 1, 2, "first entry must be an open"),
    "two lines swapped": (lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], 3, 4, "prev does not"),
    "forged line inserted": (_forge_insert, 5, 4, "prev does not match"),
    "line blanked": (lambda ls: [*ls[:2], "", *ls[3:]], 3, None, "not a JSON entry"),
    "line truncated": (lambda ls: [*ls[:2], ls[2][:40], *ls[3:]], 3, None, "not a JSON entry"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_detected_and_located(ctx: cell.Context, clock: Clock, name: str) -> None:
    full_crisis(ctx, clock)
    edit, line, seq, reason = TAMPERING[name]
    write_lines(ctx, edit(lines_of(ctx)))
    with pytest.raises(OperationError) as info:
        cell.verify(ctx)
    err = info.value
    assert err.exit_code == 1
    message = str(err)
    assert f"line {line} (" in message, message
    if seq is not None:
        assert f"seq {seq})" in message, message
    assert reason in message, message
    assert ctx.journal.store.location in message


def test_renumbered_seq_detected(ctx: cell.Context, clock: Clock) -> None:
    full_crisis(ctx, clock)
    lines = lines_of(ctx)
    rebuilt, prev = [], None
    for n, line in enumerate(lines):
        entry = json.loads(line)
        if n == 4:
            entry["seq"] = 40
        if prev is not None:
            entry["prev"] = prev
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        rebuilt.append(serialise(entry))
    write_lines(ctx, rebuilt)
    with pytest.raises(OperationError, match=r"line 5 \(seq 40\): seq should be 5"):
        cell.verify(ctx)


def test_full_rewrite_needs_a_head_hash(ctx: cell.Context, clock: Clock) -> None:
    """A chain recomputed from scratch verifies; only a head hash noted elsewhere catches it."""
    full_crisis(ctx, clock)
    head = cell.verify(ctx).head
    assert head is not None
    lines = lines_of(ctx)
    rebuilt, prev = [], None
    for line in lines:
        entry = json.loads(line)
        entry["text"] = entry["text"].replace("dead", "fine")
        if prev is not None:
            entry["prev"] = prev
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        rebuilt.append(serialise(entry))
    write_lines(ctx, rebuilt)
    assert cell.verify(ctx).ok
    with pytest.raises(OperationError, match=r"head hash .* is not in the journal"):
        cell.verify(ctx, head=head)


def test_no_append_to_a_tampered_journal(ctx: cell.Context, clock: Clock) -> None:
    open_quietly(ctx)
    lines = lines_of(ctx)
    write_lines(ctx, [lines[0].replace('"r"', '"R"'), *lines[1:]])
    with pytest.raises(OperationError, match="chain is broken"):
        cell.log(ctx, role="direction", author="boss", text="more")


def test_appends_only(ctx: cell.Context, clock: Clock) -> None:
    open_quietly(ctx)
    before = Path(ctx.journal.store.location).read_bytes()
    cell.log(ctx, role="user_support", author="desk", text="50 tickets | so far\nand more")
    after = Path(ctx.journal.store.location).read_bytes()
    assert after.startswith(before)
    assert after.count(b"\n") == before.count(b"\n") + 1
    assert ctx.journal.entries()[-1]["text"] == "50 tickets | so far\nand more"


def test_torn_last_line_is_kept_and_reported(ctx: cell.Context, clock: Clock) -> None:
    open_quietly(ctx)
    path = Path(ctx.journal.store.location)
    with path.open("ab") as fh:
        fh.write(b'{"seq": 3, "ts"')
    with pytest.raises(InputError) as info:
        cell.log(ctx, role="direction", author="boss", text="x")
    assert f"{path}:3" in str(info.value)


class TestRulesAndErrors:
    def test_unknown_role(self, ctx: cell.Context) -> None:
        with pytest.raises(InputError, match=r"unknown role 'boss'.*direction"):
            cell.open_crisis(
                ctx, role="boss", author="boss", reason="r", observations=Observations(down=[])
            )

    def test_unknown_person(self, ctx: cell.Context) -> None:
        with pytest.raises(InputError, match=r"unknown person 'eve'.*known: boss, tech"):
            cell.open_crisis(
                ctx, role="direction", author="eve", reason="r", observations=Observations(down=[])
            )

    def test_author_must_hold_role_unless_forced(self, ctx: cell.Context) -> None:
        with pytest.raises(InputError, match="tech does not hold the role direction"):
            cell.open_crisis(
                ctx, role="direction", author="tech", reason="r", observations=Observations(down=[])
            )
        opened, _ = cell.open_crisis(
            ctx,
            role="direction",
            author="tech",
            reason="r",
            observations=Observations(down=[], run_commands=False),
            force_role=True,
        )
        assert opened["forced_role"] is True

    def test_decision_and_close_need_direction(self, ctx: cell.Context) -> None:
        cell.open_crisis(
            ctx,
            role="technical_coordination",
            author="tech",
            reason="r",
            observations=Observations(down=[], run_commands=False),
        )
        with pytest.raises(InputError, match="decision entry is written by the direction"):
            cell.decide(
                ctx,
                role="technical_coordination",
                author="tech",
                decision="start-recovery",
                why="w",
            )
        with pytest.raises(InputError, match="status entry is written by the communication"):
            cell.status(ctx, role="user_support", author="desk")
        with pytest.raises(InputError, match="unknown decision 'panic'"):
            cell.decide(ctx, role="direction", author="boss", decision="panic", why="w")

    def test_no_journal_no_open_crisis(self, ctx: cell.Context) -> None:
        with pytest.raises(InputError, match="no crisis journal here yet"):
            cell.log(ctx, role="direction", author="boss", text="x")
        open_quietly(ctx)
        with pytest.raises(InputError, match="already open"):
            open_quietly(ctx)
        cell.close(ctx, role="direction", author="boss", summary="done")
        with pytest.raises(InputError, match="no open crisis"):
            cell.log(ctx, role="direction", author="boss", text="x")
        # a second crisis continues the same chain
        cell.open_crisis(
            ctx,
            role="direction",
            author="boss",
            reason="again",
            observations=Observations(down=[], run_commands=False),
        )
        assert cell.verify(ctx).entries == 5

    def test_bad_incident_time(self, ctx: cell.Context) -> None:
        with pytest.raises(InputError, match="--incident-at 'yesterday' is not an ISO 8601"):
            cell.open_crisis(
                ctx,
                role="direction",
                author="boss",
                reason="r",
                observations=Observations(down=[]),
                incident_at="yesterday",
            )

    def test_corrupt_json_is_located(self, ctx: cell.Context) -> None:
        open_quietly(ctx)
        path = Path(ctx.journal.store.location)
        path.write_text(path.read_text() + "{not json\n")
        with pytest.raises(InputError) as info:
            ctx.journal.entries()
        assert str(info.value).startswith(f"{path}:3: not a JSON entry")

    def test_plan_without_crisis_cell(self, tmp_path: Path) -> None:
        from tests.unit.plan_helpers import write_stack

        with pytest.raises(InputError, match="no crisis_cell"):
            crisis_context(str(write_stack(tmp_path)))


class TestCli:
    def test_session_and_verify(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        plan = str(crisis_plan(tmp_path))
        journal = str(tmp_path / "j.jsonl")
        code, out, err = run_cli(
            [
                "crisis",
                "open",
                plan,
                "--journal",
                journal,
                "--role",
                "direction",
                "--author",
                "boss",
                "--reason",
                "exam down",
                "--down",
                "exam",
                "--down-since",
                "30",
            ],
            capsys,
        )
        assert code == 0, err
        assert "[MET] service_down" in out and "[MET] tickets" in out and "[MET] command" in out
        code, out, err = run_cli(
            [
                "crisis",
                "log",
                plan,
                "--journal",
                journal,
                "--role",
                "user_support",
                "--author",
                "desk",
                "phones ringing",
            ],
            capsys,
        )
        assert code == 0 and "#3" in out and "phones ringing" in out
        code, out, err = run_cli(
            [
                "crisis",
                "decide",
                plan,
                "--journal",
                journal,
                "--author",
                "boss",
                "--decision",
                "start-recovery",
                "--why",
                "site lost",
                "--profile",
                "exams",
            ],
            capsys,
        )
        assert code == 0 and "start-recovery" in out
        code, out, err = run_cli(
            ["crisis", "status", plan, "--journal", journal, "--author", "comms"], capsys
        )
        assert code == 0 and "expected back around" in out and "profile exams" in out
        code, out, err = run_cli(
            [
                "crisis",
                "close",
                plan,
                "--journal",
                journal,
                "--author",
                "boss",
                "--summary",
                "done",
            ],
            capsys,
        )
        assert code == 0 and "head hash" in out
        code, out, err = run_cli(["crisis", "verify", plan, "--journal", journal], capsys)
        assert code == 0
        assert f"{journal}: 6 entries, chain intact" in out
        lines = Path(journal).read_text().splitlines()
        lines[3] = lines[3].replace("site lost", "site fine")
        Path(journal).write_text("\n".join(lines) + "\n")
        code, out, err = run_cli(["crisis", "verify", plan, "--journal", journal], capsys)
        assert code == 1
        assert "line 4 (seq 4): hash does not match" in err
        assert "Traceback" not in err and err.count("\n") == 1

    def test_user_errors_are_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        plan = str(crisis_plan(tmp_path))
        code, _, err = run_cli(
            ["crisis", "log", plan, "--role", "direction", "--author", "boss", "x"], capsys
        )
        assert code == 2 and "no crisis journal here yet" in err and err.count("\n") == 1
        code, _, err = run_cli(["crisis", "verify", plan], capsys)
        assert code == 2 and "no crisis journal here yet" in err
        code, _, err = run_cli(
            ["crisis", "open", plan, "--role", "direction", "--author", "nobody", "--reason", "r"],
            capsys,
        )
        assert code == 2 and "unknown person 'nobody'" in err
        code, _, err = run_cli(
            [
                "crisis",
                "open",
                plan,
                "--role",
                "direction",
                "--author",
                "boss",
                "--reason",
                "r",
                "--down",
                "mail",
            ],
            capsys,
        )
        assert code == 2 and "--down mail: no such service" in err
        code, _, err = run_cli(
            [
                "crisis",
                "open",
                str(tmp_path / "missing.yml"),
                "--role",
                "direction",
                "--author",
                "boss",
                "--reason",
                "r",
            ],
            capsys,
        )
        assert code == 2 and "the plan does not validate" in err
        assert not (tmp_path / "crisis").exists()


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """Four processes appending at once: the lock keeps a single, intact chain."""
    import subprocess
    import sys

    plan = crisis_plan(tmp_path)
    ctx = crisis_context(str(plan))
    open_quietly(ctx)
    script = (
        "import sys\n"
        "from drplan.crisis import cell\n"
        "from drplan.actions.context import load_plan\n"
        "ctx = cell.open_context(load_plan(sys.argv[1]).plan, sys.argv[1])\n"
        "for i in range(8):\n"
        "    cell.log(ctx, role='user_support', author='desk', text=f'{sys.argv[2]}-{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(plan), f"w{n}"]) for n in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    result = cell.verify(ctx)
    assert result.ok and result.entries == 2 + 4 * 8
