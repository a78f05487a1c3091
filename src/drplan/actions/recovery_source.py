"""Where `drplan recover` reads from: a local plan and one of its repositories, or a
repository alone (no local plan at all, the disaster case).

With the repository alone, the plan and compose files are those of the run, unpacked
into a private temporary directory and loaded as untrusted (drplan.actions.context):
their `{command:}` secrets, host-side checks and hooks do not run unless the operator
passes --trust-stored-plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drplan.actions import recover as rc
from drplan.actions.context import PlanContext, load_plan
from drplan.errors import InputError
from drplan.plan import model as m
from drplan.secrets import resolve
from drplan.store import manifest as mf
from drplan.store.restic import Repository


@dataclass
class RepoAccess:
    """`recover --repo URL` and how to read its password (at most one of file/command;
    default: the env var DRPLAN_REPO_PASSWORD)."""

    url: str
    plan_name: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password_command: str | None = None


def repository_from_url(
    url: str, password_env: str | None, password_file: str | None, password_command: str | None
) -> Repository:
    given = [x for x in (password_file, password_command) if x]
    if len(given) > 1:
        raise InputError("give at most one of --password-file and --password-command")
    secret = (
        m.Secret(file=password_file)
        if password_file
        else (
            m.Secret(command=password_command)
            if password_command
            else m.Secret(env=password_env or "DRPLAN_REPO_PASSWORD")
        )
    )
    kind = m.repository_type(url)
    if kind is None:
        raise InputError(f"unsupported repository url {url!r}", where="--repo")
    return Repository(
        name="repo",
        url=url if kind != "local" else str(Path(url).resolve()),
        password=resolve(secret, base=Path.cwd(), what="--repo password"),
        type=kind,
    )


def open_source(
    plan: str | None,
    *,
    repository: str | None,
    access: RepoAccess | None,
    opts: rc.RecoverOptions,
    docker_host: str | None,
    tmp: Path,
) -> tuple[PlanContext, Repository]:
    """The plan and the repository a recovery reads. From the repository alone, the
    run is found first (`opts.run` becomes its id) and its stored plan is unpacked into
    `tmp`. `docker_host` overrides the target site's engine."""
    if plan is not None:
        pc = load_plan(plan)
        repo = pc.repository(repository)
    else:
        if access is None:
            raise InputError("give a plan file, or --repo URL to recover from the repository alone")
        repo = repository_from_url(
            access.url, access.password_env, access.password_file, access.password_command
        )
        repo.open()
        run = mf.find_run(repo, access.plan_name, opts.run)
        pc = load_plan(rc.load_run_config(repo, run, tmp), trusted=opts.trust_stored_plan)
        opts.run = run.run_id
        opts.from_repository, opts.primary_plan_dir = True, run.plan_dir
    if docker_host:
        site_name, site = pc.site(opts.site, role="recovery")
        pc.plan.sites[site_name] = site.model_copy(update={"docker_host": docker_host})
        opts.site = site_name
    return pc, repo
