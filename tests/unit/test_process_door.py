"""drplan.process is the one door to subprocesses: how a command ended is told, never a
traceback, and messages name the command without what a secret command printed.

Real processes (sh, sleep), no mocks: the behaviour is the operating system's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drplan import process, secrets
from drplan.errors import InputError, OperationError
from drplan.plan.model import Secret


def test_an_exit_status_and_output_are_told():
    done = process.capture(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (done.code, done.stdout, done.stderr, done.why) == (3, b"out\n", b"err\n", None)
    assert not done.ok
    assert done.failure() == "sh -c 'echo out; echo err >&2; exit 3' exited with status 3: err"
    with pytest.raises(OperationError, match="exited with status 3: err") as err:
        done.check(what="step x")
    assert err.value.where == "step x"


def test_success_checks_through():
    done = process.capture(["sh", "-c", "cat"], timeout=30, input=b"fed")
    assert done.ok and done.check() is done and done.text == "fed"


@pytest.mark.parametrize(
    ("name", "why"), [("/nonexistent/tool", "not-found"), ("data.txt", "not-executable")]
)
def test_a_command_that_cannot_start_is_told_not_raised(tmp_path: Path, name: str, why: str):
    data = tmp_path / "data.txt"
    data.write_text("not a program\n")
    data.chmod(0o644)
    argv = [name if name.startswith("/") else str(tmp_path / name)]
    done = process.capture(argv, timeout=30)
    assert (done.code, done.why) == (None, why)
    assert done.failure().startswith(f"{argv[0]}: ")


def test_a_timeout_kills_the_whole_group_and_is_told(tmp_path: Path):
    """The grandchild holds the pipes: without the group kill the wait would hang (600 s)."""
    pid_file = tmp_path / "grandchild"
    script = f"sleep 600 & echo $! > {pid_file}; wait"
    done = process.capture(["sh", "-c", script], timeout=0.5)
    assert done.why == "timeout" and done.problem == "timed out after 0.5s"
    grandchild = int(pid_file.read_text())
    for _ in range(600):  # killed at once; its reaping by init may lag a little
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{grandchild}/stat").read_text().split(") ")[-1].startswith("Z"):
            break  # dead, not yet reaped
        time.sleep(0.1)
    else:
        pytest.fail(f"the grandchild {grandchild} outlived the timeout")


def test_messages_show_only_the_words_asked_for():
    done = process.capture(["sh", "-c", "exit 1", "token-like-word"], timeout=30, shown=1)
    assert done.failure() == "sh ... exited with status 1"
    assert "token-like-word" not in done.failure()


def test_run_keeps_its_errors():
    with pytest.raises(OperationError, match="nonexistent-tool is not installed"):
        process.run(["nonexistent-tool"], what="w")
    with pytest.raises(OperationError, match="did not finish within"):
        process.run(["sleep", "5"], timeout=0.2)
    assert process.run(["sh", "-c", "exit 2"], check=False).returncode == 2


def test_a_failing_secret_command_names_its_program_never_its_output(tmp_path: Path):
    leaky = Secret(command="sh -c 'echo hunter2; echo hunter2 >&2; exit 4'")
    with pytest.raises(InputError) as err:
        secrets.resolve(leaky, base=tmp_path, what="repositories.main.password")
    assert "hunter2" not in str(err.value)
    assert str(err.value) == "repositories.main.password: sh ... exited with status 4"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("/nonexistent/pass show x", "not installed or not on PATH"),
        ("sh -c 'unbalanced", "cannot split the secret command"),
        ("sh -c 'echo; echo later'", "no secret on its first line"),
    ],
)
def test_secret_command_errors_are_input_errors(tmp_path: Path, command: str, message: str):
    with pytest.raises(InputError, match=message):
        secrets.resolve(Secret(command=command), base=tmp_path, what="w")


def test_a_secret_command_gives_its_first_line(tmp_path: Path):
    secret = Secret(command="sh -c 'printf \"s3 cret \\nignored\\n\"'")
    assert secrets.resolve(secret, base=tmp_path, what="w") == "s3 cret "
