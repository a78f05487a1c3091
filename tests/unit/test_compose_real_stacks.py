"""Every real-stack fixture (tests/fixtures/real-stacks) reads as Compose reads it.

Only the compose-reading facts of each expect.yml: services, volumes and their real names,
who mounts them, bind mounts and their host paths after ``.env`` interpolation, profiles,
secrets, configs, placement constraints and the database users found in the environment.
What a draft makes of them is tested with ``init``.
"""

from __future__ import annotations

import functools
import posixpath
from pathlib import Path

import pytest
import yaml

from drplan.plan.compose import ComposeProject, load_compose

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "real-stacks"
FIXTURES = sorted(p.name for p in ROOT.iterdir() if (p / "expect.yml").is_file())
USER_VARS = (
    "POSTGRES_USER",
    "MYSQL_USER",
    "MARIADB_USER",
    "MONGO_INITDB_ROOT_USERNAME",
    "RABBITMQ_DEFAULT_USER",
)


@functools.cache
def _load(name: str) -> tuple[dict, ComposeProject]:
    exp = yaml.safe_load((ROOT / name / "expect.yml").read_text())
    project, problems = load_compose(
        [ROOT / name / f for f in exp["compose"]], profiles=exp["profiles"], environ={}
    )
    errors = [p.format() for p in problems if p.severity == "error"]
    assert errors == []
    return exp, project


def _clean(path: str) -> bool:
    return path.startswith("/") and " " not in path and "$" not in path


def test_there_are_the_fixtures() -> None:
    assert len(FIXTURES) >= 21


@pytest.mark.parametrize("name", FIXTURES)
def test_services_and_volumes(name: str) -> None:
    exp, project = _load(name)
    named = [
        *exp["databases"],
        *exp["not_databases"],
        *exp["user_facing"],
        *exp["not_critical"],
        *exp["placement"],
    ]
    for sname in named:
        assert sname in project.services, sname
    for vol, spec in exp["volumes"].items():
        assert vol in project.volumes, vol
        users = {n for n, s in project.services.items() if vol in s.volumes}
        if spec.get("unused"):
            assert not users, vol
            continue
        owners = spec.get("owner_any_of") or [spec["owner"]]
        assert users & set(owners), (vol, users)
        assert set(spec.get("also_mounted_by", [])) <= users, (vol, users)
        if "external" in spec:
            assert project.volume_specs[vol].external is spec["external"]
        real = spec.get("real_name")
        if real:
            stack = project.name or "anything"
            assert project.volume_real_name(stack, vol) == real
    for db, spec in exp["databases"].items():
        data = spec.get("data") or {}
        if "volume" in data:
            assert data["volume"] in project.services[db].volumes


@pytest.mark.parametrize("name", FIXTURES)
def test_bind_mounts_resolved(name: str) -> None:
    exp, project = _load(name)
    base = str(ROOT / name)
    for written, spec in exp["bind_mounts"].items():
        owners = spec.get("owner_any_of") or [spec["owner"]]
        binds = [mt for o in owners for mt in project.services[o].binds]
        if "resolved" in spec:
            want = posixpath.normpath(posixpath.join(base, spec["resolved"]))
            hits = [mt for mt in binds if mt.host_path == want]
            assert hits, (written, [mt.host_path for mt in binds])
            target = spec.get("target")
            if isinstance(target, str) and _clean(target):
                assert any(
                    posixpath.normpath(mt.target) == target.rstrip("/") or mt.target == target
                    for mt in hits
                )
            for other in spec.get("also_mounted_by", []):
                assert want in [mt.host_path for mt in project.services[other].binds], other
        else:
            assert binds, written


@pytest.mark.parametrize("name", FIXTURES)
def test_profiles_secrets_configs_placement(name: str) -> None:
    exp, project = _load(name)
    active = set(exp["profiles"])
    in_profile: set[str] = set()
    for profile, services in (exp.get("profile_only") or {}).items():
        for sname in services:
            svc = project.services[sname]
            assert profile in svc.profiles, (sname, svc.profiles)
            in_profile.add(sname)
    for sname in in_profile:
        svc = project.services[sname]
        assert svc.active is bool(active & set(svc.profiles)), sname
    for sname in exp["databases"]:
        if sname not in in_profile:
            assert project.services[sname].active, sname
    assert set(exp["secrets"]) <= set(project.secrets)
    assert set(exp["configs"]) <= set(project.configs)
    for sname, constraints in exp["placement"].items():
        assert project.services[sname].placement == constraints


def _user_var(user_from: str) -> str | None:
    """The variable `user_from` says the database user comes from, if one."""
    lowered = user_from.lower()
    if any(w in lowered for w in ("unset", "not from", "none")):
        return None
    return next((var for var in USER_VARS if var in user_from), None)


@pytest.mark.parametrize("name", FIXTURES)
def test_database_users_from_the_environment(name: str) -> None:
    exp, project = _load(name)
    for db, spec in exp["databases"].items():
        var = _user_var(str(spec.get("user_from", "")))
        if "user" not in spec or var is None:
            continue
        env = project.services[db].env
        if var not in env and f"{var}_FILE" in env:  # a secret file (zabbix): tested below
            continue
        assert env[var].value == spec["user"], db


def test_users_are_checked_somewhere() -> None:
    """The parametrized test above does check users (the expectations name variables)."""
    found = 0
    for name in FIXTURES:
        exp = yaml.safe_load((ROOT / name / "expect.yml").read_text())
        found += sum(
            1
            for s in exp["databases"].values()
            if "user" in s and _user_var(str(s.get("user_from", "")))
        )
    assert found >= 10


def test_env_origins_pass_through_reference_and_env_file() -> None:
    _, mattermost = _load("mattermost")
    env = mattermost.services["postgres"].env
    assert env["POSTGRES_USER"].origin == "pass-through"
    assert env["POSTGRES_USER"].ref == "POSTGRES_USER"
    assert env["POSTGRES_USER"].file and env["POSTGRES_USER"].file.endswith(".env")
    _, pgadmin = _load("postgresql-pgadmin")
    pw = next(s for s in pgadmin.services.values() if "POSTGRES_PASSWORD" in s.env)
    assert pw.env["POSTGRES_PASSWORD"].ref == "POSTGRES_PW"
    assert pw.env["POSTGRES_PASSWORD"].origin == "environment"
    _, nextcloud = _load("nextcloud-fpm-mariadb")
    user = nextcloud.services["db"].env["MYSQL_USER"]
    assert (user.value, user.origin) == ("nextcloud", "env_file")
    assert user.file and user.file.endswith("db.env")
    _, authentik = _load("authentik")
    user = authentik.services["postgresql"].env["POSTGRES_USER"]
    assert (user.value, user.ref, user.file) == ("authentik", "PG_USER", None)


def test_zabbix_extends_env_file_and_secret_file() -> None:
    _, project = _load("zabbix")
    db = project.services["postgres-server"]
    assert db.image == "postgres:16-alpine"
    assert db.env["POSTGRES_USER_FILE"].origin == "env_file"
    assert db.env["POSTGRES_USER_FILE"].value == "/run/secrets/POSTGRES_USER"
    assert "POSTGRES_USER" in db.secrets
    secret = project.secrets["POSTGRES_USER"].file
    assert secret and Path(secret).read_text().strip() == "zabbix"
    # profiles come through `extends`
    assert not project.services["zabbix-agent"].active


def test_zulip_override_and_secrets_from_environment() -> None:
    _, project = _load("zulip")
    assert project.secrets["zulip__postgres_password"].environment == "ZULIP__POSTGRES_PASSWORD"
    zulip = project.services["zulip"]
    assert zulip.env["SETTING_EXTERNAL_HOST"].value == "zulip.example.com"
    assert "zulip__postgres_password" in zulip.secrets


def test_sentry_profiles_from_dotenv_and_external_volumes() -> None:
    exp = yaml.safe_load((ROOT / "sentry-self-hosted" / "expect.yml").read_text())
    project, _ = load_compose([ROOT / "sentry-self-hosted" / "compose.yml"], environ={})
    assert project.active_profiles == set(exp["profiles"])
    assert project.name == "sentry-self-hosted"
    assert project.volume_real_name("prod", "sentry-data") == "sentry-data"
    assert project.volume_real_name("prod", "sentry-vroom") == "prod_sentry-vroom"
