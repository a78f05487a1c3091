"""Health and validation checks of a recovered service.

HTTP, TCP and command checks run inside the service's own container, where its service
names resolve (the stack's overlay networks need not be attachable), with whichever
client the image has (the probes of :mod:`drplan.sources.checks`, which the runbook
writes out too). SQL checks use the database's own client as the source's engine spells
it (``Engine.sql_command``), with the source's password, if the plan gives one, in the
exec's environment (never in argv). Each check retries with its interval until its
attempts run out; no fixed sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drplan import process
from drplan.errors import OperationError
from drplan.plan import model as m
from drplan.platform.docker import DockerEngine
from drplan.sources.checks import HTTP_SCRIPT, TCP_SCRIPT, describe, sql_source

#: Resolves one of the plan's secret references; `what` names it in errors
#: (:meth:`drplan.actions.context.PlanContext.resolve`).
Resolver = Callable[[m.Secret, str], str]

__all__ = ["Resolver", "attempt", "describe", "run"]


def attempt(
    engine: DockerEngine,
    stack: str,
    service: str,
    check,
    plan: m.Plan,
    *,
    resolve: Resolver | None = None,
) -> str | None:
    """One attempt; None when it passes, else why not."""
    if isinstance(check, m.DockerCheck):
        return None  # waited for by the health gate itself
    container = engine.wait_running(
        stack, service, time.monotonic() + check.timeout + 5, healthy=False
    )
    what = f"service {service}: check {describe(check)}"
    if isinstance(check, m.HttpCheck):
        res = engine.exec_run(
            container,
            ["sh", "-c", HTTP_SCRIPT, "sh", check.url, check.method, str(check.timeout)],
            what=what,
            check=False,
        )
        if res.exit_code == 127:
            return res.stderr.decode().strip()
        status, _, body = res.stdout.decode(errors="replace").partition("\n")
        if status.strip() != str(check.status):
            return f"HTTP status {status.strip() or 'none'} (expected {check.status})"
        if check.body_contains and check.body_contains not in body:
            return f"response body does not contain {check.body_contains!r}"
        return None
    if isinstance(check, m.TcpCheck):
        res = engine.exec_run(
            container,
            ["sh", "-c", TCP_SCRIPT, "sh", check.host, str(check.port), str(check.timeout)],
            what=what,
            check=False,
        )
        return None if res.exit_code == 0 else f"cannot connect to {check.host}:{check.port}"
    if isinstance(check, m.SqlCheck):
        svc = plan.services[service]
        return _sql(engine, container, check, svc, what, service=service, resolve=resolve)
    if isinstance(check, m.CommandCheck):
        argv = check.command if isinstance(check.command, list) else ["sh", "-c", check.command]
        if check.where == "host":
            proc = process.run(argv, check=False, timeout=check.timeout, what=what)
            code, out = proc.returncode, proc.stdout
        else:
            res = engine.exec_run(container, argv, what=what, check=False)
            code, out = res.exit_code, res.stdout
        if code != check.expect_exit:
            return f"exit status {code} (expected {check.expect_exit})"
        if check.expect_output and check.expect_output not in out.decode(errors="replace"):
            return f"output does not contain {check.expect_output!r}"
        return None
    return f"unknown check type {check.type}"


def _sql(
    engine: DockerEngine,
    container,
    check: m.SqlCheck,
    svc: m.Service,
    what: str,
    *,
    service: str = "",
    resolve: Resolver | None = None,
) -> str | None:
    found = sql_source(svc, check)
    if found is None:
        return "no database source to run the query on"
    name, src, source_engine = found
    command = source_engine.sql_command(src, check.query)
    if command is None:
        return f"engine {source_engine.name} runs no SQL"
    env: dict[str, str] = {}
    if src.password is not None and command.password_env:
        where = f"services.{service}.data.{name}.password"
        if resolve is None:
            raise OperationError("no way to read the database password was given", where=where)
        env[command.password_env] = resolve(src.password, where)
    res = engine.exec_run(container, command.argv, what=what, check=False, env=env or None)
    if res.exit_code != 0:
        return f"query failed: {process.tail(res.stderr)}"
    got = res.stdout.decode(errors="replace").strip()
    if check.expect is not None and got != check.expect.strip():
        return f"query returned {got!r} (expected {check.expect!r})"
    return None


def run(
    engine: DockerEngine,
    stack: str,
    service: str,
    check,
    plan: m.Plan,
    deadline: float,
    *,
    resolve: Resolver | None = None,
) -> None:
    """Retry the check until it passes or its attempts (or the step's deadline) run out.
    `resolve` reads a data source's password for an SQL check (the plan's secrets)."""
    last = "not run"
    for i in range(check.retries):
        last = attempt(engine, stack, service, check, plan, resolve=resolve) or ""
        if not last:
            return
        if i + 1 < check.retries and time.monotonic() + check.interval < deadline:
            time.sleep(check.interval)
        else:
            break
    raise OperationError(
        f"check {describe(check)} failed after {i + 1} attempt(s): {last}",
        where=f"service {service}",
    )
