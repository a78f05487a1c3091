"""Command-line interface: one typer app, errors turned into one clear line and an exit code.

Commands live in this module and in cli_ops, cli_recover (and friends), which all register
on the app of cli_base; importing drplan.cli gives the complete app.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from drplan.cli_base import _err, _out, app
from drplan.errors import DrplanError

err_console = Console(stderr=True)


@app.command()
def validate(plan: str = typer.Argument(..., help="Plan file (YAML).")) -> None:
    """Check a plan; list every problem as FILE:LINE:COL: path: message (exit 2)."""
    from drplan.commands.validate import run_validate

    raise typer.Exit(run_validate(plan, _out, _err))


@app.command("plan")
def plan_cmd(
    plan: str = typer.Argument(..., help="Plan file (YAML)."),
    profile: str | None = typer.Option(None, "--profile", "-p", help="Profile (default: full)."),
    as_json: bool = typer.Option(False, "--json", help="Print the schedule as JSON."),
    svg: str | None = typer.Option(None, "--svg", help="Write a Gantt chart (SVG) to FILE."),
) -> None:
    """Show the recovery schedule: steps, waves, critical path, estimated RTO."""
    from drplan.commands.plan import run_plan

    raise typer.Exit(run_plan(plan, profile=profile, as_json=as_json, svg=svg, out=_out, err=_err))


@app.command()
def init(
    compose: str = typer.Option(..., "--from", help="Compose/stack file to draft from."),
    stack: str | None = typer.Option(None, "--stack", help="Stack name (default: guessed)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write the plan here."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
) -> None:
    """Draft a plan from a compose file; guesses are printed to stderr."""
    from drplan.commands.init import run_init

    raise typer.Exit(run_init(compose, stack=stack, output=output, force=force, out=_out, err=_err))


@app.command()
def schema() -> None:
    """Print the plan's JSON Schema."""
    from drplan.commands.schema import schema_text

    typer.echo(schema_text(), nl=False)


crisis_app = typer.Typer(
    help="The crisis cell's journal: open, log, decide, status, close, verify, export.",
    no_args_is_help=True,
)
app.add_typer(crisis_app, name="crisis")
_PLAN_ARG = typer.Argument(..., help="Plan file (YAML).")
_JOURNAL_OPT = typer.Option(
    None, "--journal", help="Journal file (default: crisis/<plan>-journal.jsonl next to the plan)."
)
_AUTHOR_OPT = typer.Option(..., "--author", help="Person id from the crisis cell.")
_FORCE_OPT = typer.Option(False, "--force-role", help="Record even if the author lacks the role.")


@crisis_app.command("open")
def crisis_open(
    plan: str = _PLAN_ARG,
    role: str = typer.Option(..., "--role", help="Role of the author."),
    author: str = _AUTHOR_OPT,
    reason: str = typer.Option(..., "--reason", help="Why the cell is convened."),
    incident_at: str | None = typer.Option(None, "--incident-at", help="ISO 8601 (UTC)."),
    down: list[str] = typer.Option([], "--down", help="A service observed down (repeatable)."),
    down_since: float | None = typer.Option(None, "--down-since", help="Minutes down."),
    tickets: int | None = typer.Option(None, "--tickets", help="Tickets in the window."),
    no_commands: bool = typer.Option(False, "--no-commands", help="Do not run probes."),
    journal: str | None = _JOURNAL_OPT,
    force_role: bool = _FORCE_OPT,
) -> None:
    """Open a crisis and evaluate the plan's activation criteria."""
    from drplan.crisis.cli import run_open

    raise typer.Exit(
        run_open(
            plan,
            journal,
            role=role,
            author=author,
            reason=reason,
            incident_at=incident_at,
            down=down,
            down_since=down_since,
            tickets=tickets,
            run_commands=not no_commands,
            force_role=force_role,
            out=_out,
        )
    )


@crisis_app.command("log")
def crisis_log(
    plan: str = _PLAN_ARG,
    text: str = typer.Argument(..., help="What happened."),
    role: str = typer.Option(..., "--role", help="Role of the author."),
    author: str = _AUTHOR_OPT,
    journal: str | None = _JOURNAL_OPT,
    force_role: bool = _FORCE_OPT,
) -> None:
    """Record an event or an observation."""
    from drplan.crisis.cli import run_entry

    raise typer.Exit(
        run_entry(
            "log", plan, journal, _out, role=role, author=author, text=text, force_role=force_role
        )
    )


@crisis_app.command("decide")
def crisis_decide(
    plan: str = _PLAN_ARG,
    decision: str = typer.Option(
        ...,
        "--decision",
        help="start-recovery, switch-production, return-to-normal or other.",
    ),
    why: str = typer.Option(..., "--why", help="The reason, recorded."),
    profile: str | None = typer.Option(None, "--profile", help="Profile to recover."),
    role: str = typer.Option("direction", "--role", help="Role of the author."),
    author: str = _AUTHOR_OPT,
    journal: str | None = _JOURNAL_OPT,
    force_role: bool = _FORCE_OPT,
) -> None:
    """Record a decision, who took it and why."""
    from drplan.crisis.cli import run_entry

    raise typer.Exit(
        run_entry(
            "decide",
            plan,
            journal,
            _out,
            role=role,
            author=author,
            decision=decision,
            why=why,
            profile=profile,
            force_role=force_role,
        )
    )


@crisis_app.command("status")
def crisis_status(
    plan: str = _PLAN_ARG,
    message: str | None = typer.Option(None, "--message", help="Opening sentence for users."),
    role: str = typer.Option("communication", "--role", help="Role of the author."),
    author: str = _AUTHOR_OPT,
    journal: str | None = _JOURNAL_OPT,
    force_role: bool = _FORCE_OPT,
) -> None:
    """Write and record a status message for users, with an ETA from the estimated RTO."""
    from drplan.crisis.cli import run_status

    raise typer.Exit(
        run_status(
            plan,
            journal,
            role=role,
            author=author,
            message=message,
            force_role=force_role,
            out=_out,
        )
    )


@crisis_app.command("close")
def crisis_close(
    plan: str = _PLAN_ARG,
    summary: str = typer.Option(..., "--summary", help="How it ended."),
    role: str = typer.Option("direction", "--role", help="Role of the author."),
    author: str = _AUTHOR_OPT,
    journal: str | None = _JOURNAL_OPT,
    force_role: bool = _FORCE_OPT,
) -> None:
    """Close the open crisis."""
    from drplan.crisis.cli import run_entry

    raise typer.Exit(
        run_entry(
            "close",
            plan,
            journal,
            _out,
            role=role,
            author=author,
            summary=summary,
            force_role=force_role,
        )
    )


@crisis_app.command("verify")
def crisis_verify(
    plan: str = _PLAN_ARG,
    head: str | None = typer.Option(None, "--head", help="A head hash noted earlier."),
    journal: str | None = _JOURNAL_OPT,
) -> None:
    """Recompute the hash chain; exit 1 naming the first altered entry."""
    from drplan.crisis.cli import run_verify

    raise typer.Exit(run_verify(plan, journal, head, _out))


@crisis_app.command("export")
def crisis_export(
    plan: str = _PLAN_ARG,
    output: str | None = typer.Option(None, "--output", "-o", help="Write Markdown to FILE."),
    journal: str | None = _JOURNAL_OPT,
) -> None:
    """The journal as Markdown for the post-crisis review."""
    from drplan.crisis.cli import run_export

    raise typer.Exit(run_export(plan, journal, output, _out, _err))


@app.command()
def risks(
    plan: str = typer.Argument(..., help="Plan file (YAML)."),
    svg: str | None = typer.Option(None, "--svg", help="Write the matrix (SVG) to FILE."),
    as_json: bool = typer.Option(False, "--json", help="Print cells and risks as JSON."),
) -> None:
    """The risk register as a probability x impact matrix."""
    from drplan.risks.cli import run_risks

    raise typer.Exit(run_risks(plan, svg=svg, as_json=as_json, out=_out, err=_err))


# the data-path and recovery commands register themselves on `app`
from drplan import cli_drill, cli_ops, cli_recover  # noqa: E402, F401


def main() -> None:
    """Console-script entry point: user errors become one message and a non-zero exit.

    typer (standalone mode) already turns usage errors into exit code 2; what reaches us
    here is a :class:`DrplanError` raised by a command, printed as one located line.
    """
    try:
        app()
    except DrplanError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
