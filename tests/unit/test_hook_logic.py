"""The plan's hooks without an engine: what a backup's hooks wrap and in which order they
run (the real executor, hooks and backups replaced by recorders), what happens when one
fails or times out (real processes on this host: host hooks, and the container path's
wrapper and kill script run locally in place of `docker exec`), the recovery's hook
steps, the validation rule, the runbook's pages and the records' shapes."""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from pathlib import Path

import pytest
from plan_helpers import PLAN, write_stack

from drplan.actions import hooks as hk
from drplan.errors import InputError, OperationError
from drplan.executor import Executor, Task
from drplan.plan import model as m
from drplan.plan.loaded import LoadedPlan
from drplan.plan.validate import validate_file
from drplan.platform.docker import ExecResult
from drplan.schedule import build_steps
from drplan.store import manifest as mf

# -- what a backup's hooks wrap -------------------------------------------------------


def _plan(tmp_path: Path, hooks: dict[str, dict]) -> m.Plan:
    result = validate_file(write_stack(tmp_path))
    assert result.ok, [p.format() for p in result.problems]
    plan = result.plan
    for service, spec in hooks.items():
        plan.services[service].hooks = m.Hooks.model_validate(spec)
    return plan


SOURCES = {
    ("db", "pg"): "backup:db/pg",
    ("redis", "rdb"): "backup:redis/rdb",
    ("web", "files"): "backup:web/files",
}


def test_a_service_s_hooks_wrap_its_data_and_its_dependencies(tmp_path):
    plan = _plan(
        tmp_path,
        {
            "web": {"before_backup": [{"run": "on"}], "after_backup": [{"run": "off"}]},
            "redis": {"after_backup": [{"run": "x"}]},
            "exam": {"before_backup": [{"run": "on"}]},
        },
    )
    scopes = hk.backup_scopes(plan, list(plan.services), SOURCES)
    # web's maintenance mode covers its files and its database's dump
    assert sorted(scopes["web"]) == ["backup:db/pg", "backup:redis/rdb", "backup:web/files"]
    assert scopes["redis"] == ["backup:redis/rdb"]
    # exam has no data of its own: its hooks wrap its dependencies'
    assert sorted(scopes["exam"]) == ["backup:db/pg", "backup:redis/rdb"]
    assert "db" not in scopes  # no hooks
    # `backup --service db`: only the services in the run have their hooks run
    only_db = hk.backup_scopes(plan, ["db"], {("db", "pg"): "backup:db/pg"})
    assert only_db == {}


class Recorder:
    """Stands in for HookRunner.run_phase and for the backups: logs what ran, in order."""

    def __init__(self, fail: set[tuple[str, str]] = frozenset()) -> None:
        self.log: list[str] = []
        self.fail = fail
        self.lock = threading.Lock()

    def run_phase(self, service: str, phase: str, *, step: str) -> list:
        with self.lock:
            self.log.append(f"{phase}:{service}")
        if (service, phase) in self.fail:
            raise OperationError(f"hook of {service} failed", where=f"step {step}")
        return []

    def source(self, tid: str, ok: bool = True):
        def run() -> None:
            with self.lock:
                self.log.append(tid)
            if not ok:
                raise OperationError("dump failed", where=tid)

        return run


def _run(rec: Recorder, scopes: dict[str, list[str]], failing: set[str] = frozenset(), **kw):
    ids = sorted({t for s in scopes.values() for t in s} | {"backup:other/x"})
    tasks = [Task(t, rec.source(t, t not in failing), kind="backup") for t in ids]
    around = hk.BackupHooks(rec, scopes)  # type: ignore[arg-type]
    tasks = around.wire(tasks)
    events = []
    ex = Executor(tasks, workers=kw.get("workers", 3), on_event=events.append)
    outcomes = ex.execute()
    around.settle(outcomes, events.append)
    return outcomes, events


def test_before_hooks_precede_every_wrapped_backup_and_after_hooks_follow_them_all():
    rec = Recorder()
    scopes = {"web": ["backup:db/pg", "backup:web/files"], "db": ["backup:db/pg"]}
    outcomes, _ = _run(rec, scopes)
    log = rec.log
    assert all(o.status == "ok" for o in outcomes.values()), outcomes
    for service, wrapped in scopes.items():
        for tid in wrapped:
            assert log.index(f"before_backup:{service}") < log.index(tid)
            assert log.index(tid) < log.index(f"after_backup:{service}")
    assert log.count("after_backup:web") == 1 and log.count("after_backup:db") == 1


def test_a_failing_before_hook_fails_what_it_wraps_and_its_after_hooks_still_run():
    rec = Recorder(fail={("web", "before_backup")})
    outcomes, events = _run(rec, {"web": ["backup:db/pg", "backup:web/files"]})
    assert outcomes["before-backup:web"].status == "failed"
    assert "hook of web failed" in outcomes["before-backup:web"].error
    for tid in ("backup:db/pg", "backup:web/files"):
        assert outcomes[tid].status == "skipped" and tid not in rec.log
        assert "before-backup:web" in outcomes[tid].error
    assert outcomes["backup:other/x"].status == "ok"  # other services are backed up
    # the service is left as it was: its after hooks ran, once, and say so
    assert rec.log.count("after_backup:web") == 1
    assert rec.log.index("before_backup:web") < rec.log.index("after_backup:web")
    assert outcomes["after-backup:web"].status == "ok"
    last = [e for e in events if e.task.id == "after-backup:web"][-1]
    assert last.outcome.status == "ok"


def test_after_hooks_run_when_a_wrapped_backup_fails():
    rec = Recorder()
    outcomes, _ = _run(rec, {"web": ["backup:db/pg", "backup:web/files"]}, {"backup:db/pg"})
    assert outcomes["backup:db/pg"].status == "failed"
    assert rec.log.count("after_backup:web") == 1
    assert outcomes["after-backup:web"].status == "ok"


def test_a_failing_after_hook_is_a_failed_task():
    rec = Recorder(fail={("web", "after_backup")})
    outcomes, _ = _run(rec, {"web": ["backup:web/files"]})
    assert outcomes["backup:web/files"].status == "ok"
    assert outcomes["after-backup:web"].status == "failed"
    assert "hook of web failed" in outcomes["after-backup:web"].error


def test_no_after_hooks_for_a_service_whose_before_hooks_never_started():
    rec = Recorder()
    # one worker: the critical failure of the first task stops the run before web's hooks
    scopes = {"web": ["backup:web/files"]}
    tasks = [
        Task("backup:a/first", rec.source("backup:a/first", ok=False)),
        Task("backup:web/files", rec.source("backup:web/files")),
    ]
    around = hk.BackupHooks(rec, scopes)  # type: ignore[arg-type]
    outcomes = Executor(around.wire(tasks), workers=1).execute()
    around.settle(outcomes)
    assert outcomes["before-backup:web"].status == "cancelled"
    assert rec.log == ["backup:a/first"]


# -- running one hook -------------------------------------------------------------------


SECRET = "repository-password-never-in-a-hook"


def _runner(tmp_path: Path, engine=None, trusted: bool = True) -> hk.HookRunner:
    path = write_stack(tmp_path)
    result = validate_file(path)
    pc = LoadedPlan(path.resolve(), result.plan, result.compose, trusted=trusted)
    return hk.HookRunner(pc, engine, "campus", "a", "20260101T000000Z-abcd", withheld=(SECRET,))


def _set(runner: hk.HookRunner, service: str, **phases: list[dict]) -> None:
    runner.plan.plan.services[service].hooks = m.Hooks.model_validate(phases)


def test_a_host_hook_runs_in_the_plan_s_folder_without_drplan_s_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTIC_PASSWORD", "from-the-plan-env")  # the plan reads it: {env:}
    monkeypatch.setenv("DRPLAN_REPO_PASSWORD", "recover-repo")
    monkeypatch.setenv("SOME_TOKEN", f"x{SECRET}x")  # holds the repository's password
    monkeypatch.setenv("HARMLESS", "kept")
    runner = _runner(tmp_path)
    _set(runner, "web", before_backup=[{"run": "pwd > seen; env >> seen", "where": "host"}])
    runner.run_phase("web", "before_backup", step="before-backup:web")
    seen = (tmp_path / "seen").read_text()
    assert seen.splitlines()[0] == str(tmp_path.resolve())
    for value in ("from-the-plan-env", "recover-repo", SECRET):
        assert value not in seen
    assert "HARMLESS=kept" in seen
    for line in ("DRPLAN_HOOK=before_backup", "DRPLAN_SERVICE=web", "DRPLAN_STACK=campus"):
        assert line in seen.splitlines()
    (rec,) = runner.records
    assert (rec.status, rec.exit_code, rec.where, rec.output) == ("ok", 0, "host", "")


def test_a_failing_hook_names_itself_and_keeps_the_end_of_its_output(tmp_path):
    runner = _runner(tmp_path)
    _set(
        runner,
        "web",
        before_backup=[
            {"run": "echo first; echo 'cannot enable maintenance' >&2; exit 3", "where": "host"},
            {"run": "touch never", "where": "host"},
        ],
        after_backup=[
            {"run": "exit 1", "where": "host"},
            {"run": "touch tried", "where": "host"},
        ],
    )
    with pytest.raises(OperationError) as exc:
        runner.run_phase("web", "before_backup", step="before-backup:web")
    text = str(exc.value)
    assert "services.web.hooks.before_backup[0]" in text
    assert "exited with status 3" in text and "cannot enable maintenance" in text
    assert "step before-backup:web" in text and "service web" in text
    assert not (tmp_path / "never").exists()  # a before phase stops at its first failure
    with pytest.raises(OperationError) as exc:
        runner.run_phase("web", "after_backup", step="after-backup:web")
    assert (tmp_path / "tried").exists()  # an after phase tries every hook
    assert "services.web.hooks.after_backup[0]" in str(exc.value)
    statuses = [(r.phase, r.index, r.status, r.exit_code) for r in runner.records]
    assert statuses == [
        ("before_backup", 0, "failed", 3),
        ("after_backup", 0, "failed", 1),
        ("after_backup", 1, "ok", 0),
    ]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    done = threading.Event()
    for _ in range(200):  # a killed orphan is reaped by init when it gets to it
        if _gone(pid):
            return True
        done.wait(0.05)
    return _gone(pid)


def test_a_host_hook_past_its_timeout_is_killed_with_its_children(tmp_path):
    runner = _runner(tmp_path)
    script = "sleep 300 & echo $! > child; echo $$ > shell; wait"
    _set(runner, "db", after_restore=[{"run": script, "where": "host", "timeout": 1}])
    with pytest.raises(OperationError) as exc:
        runner.run_phase("db", "after_restore", step="after-restore:db")
    assert "did not finish within its timeout (1s): killed" in str(exc.value)
    assert runner.records[0].status == "timeout"
    for name in ("child", "shell"):
        assert _wait_gone(int((tmp_path / name).read_text())), name


def test_an_untrusted_plan_runs_no_host_hook(tmp_path):
    runner = _runner(tmp_path, trusted=False)
    _set(runner, "db", after_restore=[{"run": "touch ran", "where": "host"}])
    with pytest.raises(InputError) as exc:
        runner.run_phase("db", "after_restore", step="after-restore:db")
    assert "--trust-stored-plan" in str(exc.value)
    assert "services.db.hooks.after_restore[0]" in str(exc.value)
    assert not (tmp_path / "ran").exists()


class LocalExec:
    """`docker exec` replaced by a local process: the wrapper, the kill script, the
    reading and the parsing are drplan's own; only the engine is not there."""

    where = "local engine"

    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def service(self, stack, name):
        return object()

    def service_replicas(self, stack, name):
        return 1

    def wait_running(self, stack, name, deadline, healthy=True):
        return "container"

    def exec_out(self, container, argv, *, what, env=None):
        self.env = dict(env or {})
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **self.env}
        )
        yield from iter(lambda: proc.stdout.read1(4096), b"")
        if proc.wait():
            raise OperationError(f"exited with status {proc.returncode}", where=what)

    def exec_run(self, container, argv, *, what, env=None, check=True):
        proc = subprocess.run(argv, capture_output=True, env={**os.environ, **(env or {})})
        return ExecResult(proc.returncode, proc.stdout, proc.stderr)


def test_a_container_hook_s_status_and_output_come_through_the_wrapper(tmp_path):
    engine = LocalExec()
    runner = _runner(tmp_path, engine)
    noisy = "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; exit 4"
    _set(runner, "web", after_backup=[{"run": noisy}, {"run": ["true"]}])
    with pytest.raises(OperationError) as exc:
        runner.run_phase("web", "after_backup", step="after-backup:web")
    assert "exited with status 4" in str(exc.value) and "in its container" in str(exc.value)
    first, second = runner.records
    assert (first.status, first.exit_code) == ("failed", 4)
    assert first.output.endswith("line 19999 oops") and len(first.output) <= hk.REPORT_CHARS + 3
    assert (second.status, second.exit_code, second.output) == ("ok", 0, "")
    assert engine.env["DRPLAN_SERVICE"] == "web" and engine.env["DRPLAN_HOOK"] == "after_backup"
    assert SECRET not in "".join(engine.env.values())


def test_a_container_hook_past_its_timeout_is_killed_with_its_children(tmp_path):
    runner = _runner(tmp_path, LocalExec())
    script = "sleep 300 & echo $! > child; echo $$ > shell; wait"
    script = f"cd {shlex.quote(str(tmp_path))} && {{ {script}; }}"
    _set(runner, "web", before_backup=[{"run": script, "timeout": 1}])
    with pytest.raises(OperationError) as exc:
        runner.run_phase("web", "before_backup", step="before-backup:web")
    assert "did not finish within its timeout (1s): killed" in str(exc.value)
    assert runner.records[0].status == "timeout"
    for name in ("child", "shell"):
        assert _wait_gone(int((tmp_path / name).read_text())), name


def test_a_service_at_zero_replicas_has_no_container_for_its_hook(tmp_path):
    engine = LocalExec()
    engine.service_replicas = lambda stack, name: 0
    runner = _runner(tmp_path, engine)
    _set(runner, "web", before_backup=[{"run": "true"}])
    with pytest.raises(OperationError) as exc:
        runner.run_phase("web", "before_backup", step="before-backup:web")
    assert "0 replicas" in str(exc.value) and "where: host" in str(exc.value)


# -- the recovery's hook steps, validation, runbook, records --------------------------


def test_restore_hook_steps_and_their_order(tmp_path):
    plan = _plan(
        tmp_path,
        {
            # db's data is a dump replayed into its running server
            "db": {"before_restore": [{"run": "a"}], "after_restore": [{"run": "b"}]},
            # web's files are put back before it starts
            "web": {
                "before_restore": [{"run": "c", "where": "host", "timeout": 600}],
                "after_restore": [{"run": "d"}],
            },
            # exam has no data
            "exam": {"before_restore": [{"run": "e", "where": "host"}]},
        },
    )
    steps = {s.id: s for s in build_steps(plan)}
    assert steps["before-restore:db"].after == {"health:db"}
    assert "before-restore:db" in steps["restore:db/pg"].after
    assert steps["after-restore:db"].after == {"health:db", "restore:db/pg"}
    assert "after-restore:db" in steps["validate:db"].after
    # the services depending on db start once its hooks have run
    assert "after-restore:db" in steps["start:web"].after
    assert "after-restore:db" in steps["start:exam"].after
    assert steps["before-restore:web"].after == {"load-images", "create-volumes"}
    assert "before-restore:web" in steps["restore:web/files"].after
    assert steps["before-restore:web"].timeout_s >= 600
    assert steps["after-restore:web"].after == {"health:web"}
    assert "after-restore:web" in steps["validate:web"].after
    assert "before-restore:exam" in steps["start:exam"].after
    assert "after-restore:redis" not in steps and "before-restore:redis" not in steps


def test_a_container_before_restore_hook_needs_a_running_server(tmp_path):
    plan = PLAN.replace(
        "      files: {engine: files, volume: files, path: /srv/files}\n",
        "      files: {engine: files, volume: files, path: /srv/files}\n"
        "    hooks:\n      before_restore: [{run: prepare}]\n",
    ).replace(
        "      pg: {engine: postgresql, volume: db-data, path: /data, size_hint: 1GiB}\n",
        "      pg: {engine: postgresql, volume: db-data, path: /data, size_hint: 1GiB}\n"
        "    hooks:\n      before_restore: [{run: prepare}]\n",
    )
    from drplan.actions.context import check_plan  # with the engines drplan knows

    errors = [p.format() for p in check_plan(write_stack(tmp_path, plan)).errors]
    assert len(errors) == 1, errors
    assert "services.web.hooks.before_restore[0]" in errors[0]
    assert "where: host" in errors[0]


def test_the_runbook_runs_each_restore_hook_quoted(tmp_path):
    from drplan import runbook as rb
    from drplan.store.restic import Repository
    from tests.unit.drill_helpers import campus_plan, fake_run

    nasty = "echo \"$(id)\" '`x`'; rm -rf /tmp/nothing\n# and a second line"

    def edit(plan):
        plan["services"]["db"]["hooks"] = {"before_restore": [{"run": ["psql", "-c", nasty]}]}
        plan["services"]["exam"]["hooks"] = {
            "after_restore": [{"run": "purge --all", "timeout": "5m"}, {"run": nasty}],
        }
        plan["services"]["web"]["hooks"] = {
            "before_restore": [{"run": "notify start", "where": "host", "timeout": 90}]
        }

    pc = campus_plan(tmp_path, edit)
    repo = Repository(name="local", url=str(tmp_path / "repo"), password="pw")
    book = rb.build(pc, repo, manifest=fake_run(pc.name), drills=[], stack="handmade")
    pages = {p.id: p for p in book["steps"]}
    order = [p.id for p in book["steps"]]
    assert order.index("after-restore:exam") < order.index("validate:exam")
    exam = pages["after-restore:exam"]
    assert len(exam.blocks) == 2
    assert "services.exam.hooks.after_restore[0]" in exam.blocks[0][0]
    assert "time limit 5m" in exam.blocks[0][0]
    assert "--env=DRPLAN_STACK=handmade" in exam.blocks[0][1]
    assert "\"$C\" sh -c 'purge --all'" in exam.blocks[0][1]
    web = pages["before-restore:web"].blocks[0][1]
    assert f"cd -- {shlex.quote(str(pc.dir))}" in web and "timeout --kill-after=10 90" in web
    for page in pages.values():
        for _, block in page.blocks:
            proc = subprocess.run(["bash", "-n", "-c", block], capture_output=True, text=True)
            assert proc.returncode == 0, (block, proc.stderr)
    # the nasty command is one word: bash reads it back as it is, running nothing
    line = pages["before-restore:db"].blocks[0][1].splitlines()[-1]
    words = line.split('"$C" ', 1)[1]
    echo = subprocess.run(["bash", "-c", f"printf '%s\\0' {words}"], capture_output=True, text=True)
    assert echo.stdout.split("\0")[:-1] == ["psql", "-c", nasty]
    out = tmp_path / "rb"
    rb.write(book, out)
    assert (out / exam.file).read_text().count("```sh") == 2


def test_hook_records_are_plain_text_when_read_back():
    rec = {
        "service": "web",
        "phase": "before_backup",
        "index": 0,
        "where": "container",
        "command": "php maintenance.php --enable",
        "status": "failed",
        "exit_code": 3,
        "seconds": 0.5,
        "started_at": "2026-01-01T00:00:00.000Z",
        "finished_at": "2026-01-01T00:00:00.500Z",
        "output": "cannot enable",
    }
    base = {
        "plan": "campus",
        "stack": "campus",
        "run_id": "20260101T000000Z-abcd",
        "host": "h",
        "drplan_version": "0",
        "started_at": "2026-01-01T00:00:00Z",
        "rpo_point": "2026-01-01T00:00:00Z",
    }
    import json

    ok = mf.parse(json.dumps({**base, "hooks": [rec]}).encode(), where="test")
    assert ok.hooks[0].exit_code == 3
    assert mf.parse(json.dumps(base).encode(), where="test").hooks == []  # older runs
    for field, value in (("output", "\x1b[2Jx"), ("command", "a\nb"), ("service", "../x")):
        with pytest.raises(OperationError) as exc:
            mf.parse(json.dumps({**base, "hooks": [{**rec, field: value}]}).encode(), where="t")
        assert f"hooks.0.{field}" in str(exc.value)


def test_an_untrusted_plan_lists_its_host_side_restore_hooks(tmp_path):
    from drplan.actions.context import check_plan

    exam = "  exam:\n    depends_on: [db, redis]\n"
    assert exam in PLAN
    plan = PLAN.replace(
        exam,
        exam + "    hooks:\n"
        "      before_backup: [{run: backup-side, where: host}]\n"
        "      before_restore: [{run: on-this-host, where: host}]\n"
        "      after_restore: [{run: in-the-container}]\n",
    )
    pc = check_plan(write_stack(tmp_path, plan), trusted=False).context
    assert pc is not None
    found = [f for f in pc.host_actions() if ".hooks." in f]
    # backup hooks never run in a recovery; container hooks run the backup's images
    assert found == ["services.exam.hooks.before_restore[0]: host-side hook 'on-this-host'"]
