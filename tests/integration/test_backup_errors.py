"""What goes wrong before any data moves is said clearly: a wrong password, an unreachable
engine, an unreachable repository, a repository that was never initialised. Each is one
located message naming what failed, a non-zero exit, no traceback, and no run complete.
"""

from __future__ import annotations

import uuid

import pytest

from testbed import plans, servers

pytestmark = pytest.mark.integration


def _plan(tmp_path, **kw):
    return plans.adapt("helpdesk", tmp_path, name=f"bkerr{uuid.uuid4().hex[:6]}", **kw)


def _fails_clearly(proc, code: int, *needles: str) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode == code, (proc.returncode, text)
    assert "Traceback" not in text, text
    assert text.strip().startswith("error:") or "error:" in proc.stderr, text
    for needle in needles:
        assert needle in text, (needle, text)


def test_wrong_password(testbed, tmp_path):
    tp = _plan(tmp_path)
    plans.ok("repo", "init", tp.path)
    for cmd in (["backup"], ["runs"], ["check"]):
        proc = plans.drplan(*cmd, tp.path, password="not-the-password")
        _fails_clearly(proc, 2, "wrong password", tp.repo)
    assert plans.ok_json("runs", tp.path)["runs"] == []


def test_unreachable_engine(testbed, tmp_path):
    def nowhere(plan: dict) -> None:
        plan["sites"]["primary"]["docker_host"] = "unix:///nonexistent.sock"

    tp = _plan(tmp_path, edit=nowhere)
    plans.ok("repo", "init", tp.path)
    proc = plans.drplan("backup", tp.path)
    _fails_clearly(proc, 1, "unix:///nonexistent.sock", "unreachable", "site primary")
    assert plans.ok_json("runs", tp.path)["runs"] == []


def test_repository_never_initialised(testbed, tmp_path):
    tp = _plan(tmp_path)
    proc = plans.drplan("backup", tp.path)
    _fails_clearly(proc, 1, "no restic repository", tp.repo, "drplan repo init")


def test_unreachable_sftp_repository(testbed, tmp_path):
    port = servers.free_port()  # nothing listens there
    repo = f"sftp:root@127.0.0.1:{tmp_path}/repo"

    def closed(plan: dict) -> None:
        plan["repositories"]["local"]["url"] = repo
        plan["repositories"]["local"]["options"] = {
            "sftp.command": f"ssh -p {port} -o BatchMode=yes -o ConnectTimeout=5 "
            "root@127.0.0.1 -s sftp"
        }

    tp = _plan(tmp_path, edit=closed)
    for cmd in (["repo", "init"], ["backup"]):
        proc = plans.drplan(*cmd, tp.path, timeout=120)
        _fails_clearly(proc, 1, "cannot reach repository local", repo)
        # restic 0.14 sometimes loses ssh's own message; its summary always remains
        assert "Connection refused" in proc.stderr or "sftp session" in proc.stderr
