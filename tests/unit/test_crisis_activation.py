"""Activation criteria (numbers and commands), the status ETA, the Markdown export."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from drplan.crisis import cell
from drplan.crisis.activation import Observations, evaluate, verdict
from drplan.crisis.export import export_markdown
from drplan.errors import InputError
from drplan.schedule.dag import build_schedule
from tests.unit.crisis_helpers import Clock, crisis_context, crisis_plan, open_quietly


def results_for(tmp_path: Path, activation: str, obs: Observations) -> list:
    ctx = crisis_context(str(crisis_plan(tmp_path, activation)))
    return evaluate(ctx.plan, obs)


class TestServiceDown:
    CRIT = "    - {kind: service_down, services: [exam], duration: 15m}\n"

    @pytest.mark.parametrize(
        ("down", "since", "status", "why"),
        [
            (["exam"], 20, "met", "exam down for 20m"),
            (["exam", "web"], 15, "met", "exam down for 15m"),
            (["exam"], 5, "not_met", "only"),
            (["web"], 60, "not_met", "none of the watched services"),
            (["exam"], None, "unknown", "--down-since"),
            ([], None, "unknown", "pass --down SERVICE"),
        ],
    )
    def test_numbers(
        self, tmp_path: Path, down: list[str], since: float | None, status: str, why: str
    ) -> None:
        (r,) = results_for(tmp_path, self.CRIT, Observations(down=down, down_since_min=since))
        assert (r.status, r.kind) == (status, "service_down")
        assert why in r.why

    def test_default_watches_critical_services(self, tmp_path: Path) -> None:
        crit = "    - {kind: service_down, duration: 10m}\n"
        (r,) = results_for(tmp_path, crit, Observations(down=["db"], down_since_min=11))
        assert r.status == "met"

    def test_unknown_service(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="--down mail: no such service"):
            results_for(tmp_path, self.CRIT, Observations(down=["mail"]))


class TestTickets:
    @pytest.mark.parametrize(
        ("command", "given", "status", "why"),
        [
            ("sh -c 'echo 12'", None, "met", "12 tickets in 1h (counted by count_command)"),
            ("sh -c 'echo 3'", None, "not_met", "3 tickets"),
            ("sh -c 'echo 3'", 10, "met", "10 tickets in 1h (given)"),
            ("sh -c 'echo lots'", None, "unknown", "not a number"),
            ("sh -c 'exit 4'", None, "unknown", "exited 4"),
            ("/nonexistent/tickets-count", None, "unknown", "command not found"),
            ("sh -c 'unbalanced", None, "unknown", "cannot parse"),
        ],
    )
    def test_count(
        self, tmp_path: Path, command: str, given: int | None, status: str, why: str
    ) -> None:
        crit = f'    - {{kind: tickets, threshold: 10, window: 1h, count_command: "{command}"}}\n'
        (r,) = results_for(tmp_path, crit, Observations(down=[], tickets=given))
        assert r.status == status, r.why
        assert why in r.why

    def test_no_shell(self, tmp_path: Path) -> None:
        """The command is split, not given to a shell: `;` is an argument of echo."""
        crit = '    - {kind: tickets, threshold: 1, window: 1h, count_command: "echo 5; false"}\n'
        (r,) = results_for(tmp_path, crit, Observations(down=[]))
        assert r.status == "met" and "5 tickets" in r.why

    def test_without_command_or_number(self, tmp_path: Path) -> None:
        crit = "    - {kind: tickets, threshold: 10, window: 1h}\n"
        (r,) = results_for(tmp_path, crit, Observations(down=[]))
        assert r.status == "unknown" and "--tickets N" in r.why


class TestCommand:
    @pytest.mark.parametrize(
        ("command", "status", "why"),
        [
            ("true", "not_met", "exit 0"),
            ("false", "met", "exit 1"),
            ("sh -c 'exit 7'", "met", "exit 7"),
            ("/nonexistent/probe", "unknown", "command not found"),
        ],
    )
    def test_probe(self, tmp_path: Path, command: str, status: str, why: str) -> None:
        crit = f'    - {{kind: command, command: "{command}"}}\n'
        (r,) = results_for(tmp_path, crit, Observations(down=[]))
        assert (r.status, r.kind) == (status, "command")
        assert why in r.why

    def test_timeout(self, tmp_path: Path) -> None:
        crit = '    - {kind: command, command: "sleep 5"}\n'
        (r,) = results_for(tmp_path, crit, Observations(down=[], timeout_s=0.2))
        assert r.status == "unknown" and "timed out" in r.why

    def test_not_run(self, tmp_path: Path) -> None:
        crit = '    - {kind: command, command: "false"}\n'
        (r,) = results_for(tmp_path, crit, Observations(down=[], run_commands=False))
        assert r.status == "unknown" and "--no-commands" in r.why


def test_verdict() -> None:
    from drplan.crisis.activation import CriterionResult as R

    assert verdict([R(1, "k", "", "not_met", ""), R(2, "k", "", "met", "")]) == "met"
    assert verdict([R(1, "k", "", "not_met", ""), R(2, "k", "", "unknown", "")]) == "unknown"
    assert verdict([R(1, "k", "", "not_met", "")]) == "not_met"
    assert verdict([]) == "unknown"


def test_activation_recorded_in_journal(tmp_path: Path) -> None:
    ctx = crisis_context(str(crisis_plan(tmp_path)), clock=Clock())
    _, activation = cell.open_crisis(
        ctx,
        role="direction",
        author="boss",
        reason="r",
        observations=Observations(down=["exam"], down_since_min=3, tickets=2),
    )
    assert activation["kind"] == "activation" and activation["activated"] == "met"
    assert [c["status"] for c in activation["criteria"]] == ["not_met", "not_met", "met"]
    assert activation["criteria"][2]["description"] == "external probe"


class TestEta:
    def test_from_open_then_from_start_recovery(self, tmp_path: Path) -> None:
        clock = Clock("2024-06-03T08:00:00+00:00")
        ctx = crisis_context(str(crisis_plan(tmp_path)), clock=clock)
        open_quietly(ctx)
        full = build_schedule(ctx.plan).estimated_rto_s
        exams = build_schedule(ctx.plan, "exams").estimated_rto_s
        clock.advance(minutes=5)
        first = cell.status(ctx, role="communication", author="comms")
        assert first["eta_basis"] == "crisis open #1"
        assert first["eta"] == _ts(clock, -5 * 60 + full)
        assert first["profile"] == "full"
        assert "recovery not yet decided" in first["text"]
        assert "comms@example.org" in first["text"]
        clock.advance(minutes=10)
        cell.decide(
            ctx,
            role="direction",
            author="boss",
            decision="start-recovery",
            why="site lost",
            profile="exams",
        )
        clock.advance(minutes=1)
        second = cell.status(ctx, role="communication", author="comms", message="Exams are down")
        assert second["eta_basis"] == "start-recovery decision #4"
        assert second["eta"] == _ts(clock, -60 + exams)
        assert second["text"].startswith("Exams are down. Recovery under way since")
        assert "profile exams" in second["text"]
        assert second["estimated_rto_s"] == round(exams, 1)

    def test_overdue(self, tmp_path: Path) -> None:
        clock = Clock()
        ctx = crisis_context(str(crisis_plan(tmp_path)), clock=clock)
        open_quietly(ctx)
        clock.advance(days=2)
        entry = cell.status(ctx, role="communication", author="comms")
        assert "passed at" in entry["text"] and "new estimate" in entry["text"]

    def test_unknown_profile(self, tmp_path: Path) -> None:
        ctx = crisis_context(str(crisis_plan(tmp_path)), clock=Clock())
        open_quietly(ctx)
        with pytest.raises(InputError, match="unknown profile 'nope'"):
            cell.decide(
                ctx,
                role="direction",
                author="boss",
                decision="start-recovery",
                why="w",
                profile="nope",
            )


def _ts(clock: Clock, offset_s: float) -> str:
    from drplan.crisis.journal import format_ts

    return format_ts(clock.now + timedelta(seconds=offset_s))


def test_export_markdown(tmp_path: Path) -> None:
    clock = Clock("2024-06-03T08:00:00+00:00")
    ctx = crisis_context(str(crisis_plan(tmp_path)), clock=clock)
    cell.open_crisis(
        ctx,
        role="direction",
        author="boss",
        reason="exam platform down",
        observations=Observations(down=["exam"], down_since_min=20, tickets=1),
        incident_at="2024-06-03T07:30:00Z",
    )
    clock.advance(minutes=12)
    cell.log(ctx, role="user_support", author="desk", text="120 calls | queue full")
    clock.advance(minutes=3)
    cell.decide(
        ctx, role="direction", author="boss", decision="start-recovery", why="primary site lost"
    )
    clock.advance(minutes=45)
    cell.close(ctx, role="direction", author="boss", summary="recovered")
    md = export_markdown(ctx.journal, ctx.journal.verify())
    assert md.startswith("# Crisis journal: campus")
    assert "Hash chain: **intact** (5 entries" in md
    assert (
        "| 2024-06-03T08:15:00.000Z | start-recovery (profile full) | "
        "Head of IT (boss), direction | primary site lost |" in md
    )
    assert "| incident (2024-06-03T07:30:00.000Z) | open (2024-06-03T08:00:00.000Z) | 30m |" in md
    assert "| first decision (#4 start-recovery) (2024-06-03T08:15:00.000Z) | 15m |" in md
    assert "| open (2024-06-03T08:00:00.000Z) | close (2024-06-03T09:00:00.000Z) | 1h |" in md
    assert "| 1 | service_down | services down ≥ 15m | met | exam down for 20m (≥ 15m) |" in md
    assert "| 2 | tickets | ≥ 10 tickets in 1h | not met |" in md
    assert (
        "| 2024-06-03T08:12:00.000Z | user_support | desk | log | 120 calls \\| queue full |" in md
    )
    assert "| 5 | 2024-06-03T09:00:00.000Z | direction | boss | close | recovered |" in md
    # a broken chain is said loudly
    path = Path(ctx.journal.store.location)
    path.write_text(path.read_text().replace("recovered", "all fine"))
    md = export_markdown(ctx.journal, ctx.journal.verify())
    assert "Hash chain: **BROKEN** at line 5 (seq 5)" in md


def test_export_cli_writes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.crisis_helpers import run_cli

    plan = str(crisis_plan(tmp_path))
    assert (
        run_cli(
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
                "--no-commands",
            ],
            capsys,
        )[0]
        == 0
    )
    out_md = tmp_path / "review.md"
    code, _, err = run_cli(["crisis", "export", plan, "-o", str(out_md)], capsys)
    assert code == 0 and f"wrote {out_md}" in err
    text = out_md.read_text()
    assert "## Crisis 1: opened" in text and "**Still open**" in text
