"""Compose features read as Docker Compose reads them: interpolation and `.env`,
`env_file`, `extends`, profiles, links, long `depends_on`, secrets, configs, placement,
several files merged, volumes under their real names, bind mounts and anonymous volumes;
names Compose accepts; `plan --json` keeps stdout for JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from plan_helpers import COMPOSE, PLAN, write_stack

from drplan.actions.init import draft_plan
from drplan.cli import app
from drplan.plan.compose import ComposeProject, load_compose
from drplan.plan.interpolate import InterpolationError, interpolate, parse_dotenv
from drplan.plan.loaded import LoadedPlan
from drplan.plan.validate import validate_file


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _load(tmp_path: Path, compose: str, *, dotenv: str | None = None, environ=None, **more):
    if dotenv is not None:
        _write(tmp_path, ".env", dotenv)
    for name, text in more.items():
        _write(tmp_path, name.replace("__", "/").replace("_DOT_", "."), text)
    path = _write(tmp_path, "compose.yml", compose)
    return load_compose([path], environ=environ or {})


# -- interpolation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("${A}", "a"),
        ("$A/x", "a/x"),
        ("${E:-d}", "d"),
        ("${E-d}", ""),
        ("${U:-d}", "d"),
        ("${U-d}", "d"),
        ("${A:-d}", "a"),
        ("${A:+alt}", "alt"),
        ("${U:+alt}", ""),
        ("$$A", "$A"),
        ("$${A}", "${A}"),
        ("${U:-${A}-x}", "a-x"),
        ("${U:-{}}", "{}"),
        ("cost $ 5", "cost $ 5"),
        ("${A}${A}", "aa"),
    ],
)
def test_interpolation_like_compose(text, want):
    assert interpolate(text, {"A": "a", "E": ""}) == want


def test_required_variables_and_unset_ones():
    with pytest.raises(InterpolationError, match="variable U is required: set me"):
        interpolate("${U:?set me}", {})
    with pytest.raises(InterpolationError, match="variable E is required"):
        interpolate("${E:?}", {"E": ""})
    assert interpolate("${E?x}", {"E": ""}) == ""
    missing: set[str] = set()
    assert interpolate("x${U}y$V", {}, missing) == "xy"
    assert missing == {"U", "V"}
    with pytest.raises(InterpolationError):
        interpolate("${A", {"A": "a"})


def test_deep_nesting_is_refused_not_a_crash():
    assert interpolate("${A:-" * 30 + "x" + "}" * 30, {}) == "x"
    with pytest.raises(InterpolationError, match="nested"):
        interpolate("${A:-" * 5000 + "x" + "}" * 5000, {})


def test_a_whole_expression_keeps_its_variable_name():
    value = interpolate("${DB_PASS:-secret}", {"DB_PASS": "s3"})
    assert (value, getattr(value, "ref", None)) == ("s3", "DB_PASS")
    assert getattr(interpolate("x${DB_PASS}", {"DB_PASS": "s3"}), "ref", None) is None


def test_dotenv_like_compose():
    env = parse_dotenv(
        textwrap.dedent(
            """\
            # comment
            export A=1
            B = two words  # inline comment
            C='single ${A} $$'
            D="double ${A}\\nnext"
            E=${A}-x
            F=
            NOT A NAME=1
            """
        )
    )
    assert env == {
        "A": "1",
        "B": "two words",
        "C": "single ${A} $$",
        "D": "double 1\nnext",
        "E": "1-x",
        "F": "",
    }


# -- environment ----------------------------------------------------------------------------


ENV_COMPOSE = """\
services:
  db:
    image: postgres:${PG_TAG:-16}
    env_file:
      - db.env
      - path: optional.env
        required: false
    environment:
      POSTGRES_USER: ${DB_USER}
      POSTGRES_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}
      POSTGRES_DB: app
      LOG_LEVEL:
      ABSENT:
"""


def test_effective_environment_and_where_each_value_comes_from(tmp_path):
    project, problems = _load(
        tmp_path,
        ENV_COMPOSE,
        dotenv="DB_USER=alice\nDB_PASSWORD=from-dotenv\nLOG_LEVEL=debug\n",
        db_DOT_env="POSTGRES_DB=overridden\nPOSTGRES_INITDB_ARGS=--data-checksums\n",
        environ={"DB_PASSWORD": "from-process", "PG_TAG": "15"},
    )
    assert problems == []
    db = project.services["db"]
    assert db.image == "postgres:15"
    assert db.environment == {
        "POSTGRES_DB": "app",  # `environment` wins over env_file
        "POSTGRES_INITDB_ARGS": "--data-checksums",
        "POSTGRES_USER": "alice",
        "POSTGRES_PASSWORD": "from-process",  # the process environment wins over .env
        "LOG_LEVEL": "debug",
    }
    env = db.env
    dotenv = str(tmp_path / ".env")
    assert (env["POSTGRES_USER"].origin, env["POSTGRES_USER"].ref) == ("environment", "DB_USER")
    assert env["POSTGRES_USER"].file == dotenv
    assert (env["POSTGRES_PASSWORD"].ref, env["POSTGRES_PASSWORD"].file) == ("DB_PASSWORD", None)
    assert (env["LOG_LEVEL"].origin, env["LOG_LEVEL"].ref) == ("pass-through", "LOG_LEVEL")
    assert env["POSTGRES_INITDB_ARGS"].origin == "env_file"
    assert env["POSTGRES_INITDB_ARGS"].file == str(tmp_path / "db.env")
    assert env["POSTGRES_DB"].ref is None
    assert project.dotenv_variables() == {"DB_USER": "alice", "LOG_LEVEL": "debug"}
    assert db.env_files == [str(tmp_path / "db.env"), str(tmp_path / "optional.env")]


def test_missing_variables_and_env_files_are_located_warnings(tmp_path):
    project, problems = _load(tmp_path, ENV_COMPOSE)
    c = tmp_path / "compose.yml"
    lines = [p.format() for p in problems]
    assert all(p.severity == "warning" for p in problems)
    assert f"{c}:10:26: services.db.environment.POSTGRES_PASSWORD: warning: variable " in (
        "\n".join(lines)
    )
    assert any("DB_PASSWORD is required: set DB_PASSWORD" in line for line in lines)
    assert any("variable DB_USER is not set" in line for line in lines)
    assert any("env_file db.env cannot be read" in line for line in lines)
    assert not any("optional.env" in line for line in lines)  # required: false
    assert project.services["db"].environment["POSTGRES_USER"] == ""


def test_values_outside_the_environment_are_plain_strings(tmp_path):
    """A draft dumps what it reads as YAML: no str subclass may leak out of the loader."""
    project, _ = _load(
        tmp_path,
        """\
        services:
          db:
            image: ${DB_IMAGE}
            environment: {A: "${DB_IMAGE}"}
            volumes: ["${DATA}:/data"]
            healthcheck: {test: "${CHECK}"}
        """,
        dotenv="DB_IMAGE=postgres:16\nDATA=./pg\nCHECK=pg_isready\n",
    )
    db = project.services["db"]
    assert type(db.image) is str and type(db.environment["A"]) is str
    assert type(db.env["A"].value) is str and db.env["A"].ref == "DB_IMAGE"
    assert db.healthcheck is not None and type(db.healthcheck["test"]) is str
    assert type(db.mounts[0].source) is str
    yaml.safe_dump({"image": db.image, "hc": db.healthcheck, "env": db.environment})


def test_environment_list_form_keeps_references(tmp_path):
    project, _ = _load(
        tmp_path,
        """\
        services:
          app:
            image: app
            environment: ["A=${X}", B=lit, "C=${X}x", D]
        """,
        dotenv="X=1\nD=4\n",
    )
    env = project.services["app"].env
    assert {k: (v.value, v.ref) for k, v in env.items()} == {
        "A": ("1", "X"),
        "B": ("lit", None),
        "C": ("1x", None),
        "D": ("4", "D"),
    }


# -- extends, profiles, links, depends_on, secrets, configs, placement ------------------------


def test_extends_in_the_same_file_and_from_another_folder(tmp_path):
    project, problems = _load(
        tmp_path,
        """\
        services:
          base:
            image: app:1
            environment: {A: "1", B: "1"}
            volumes: [data:/data, ./conf:/conf:ro]
          child:
            extends: base
            environment: {B: "2"}
            volumes: [other:/data]
          far:
            extends: {file: lib/common.yml, service: server}
            volumes: [/etc/localtime:/etc/localtime:ro]
        volumes: {data: {}, other: {}}
        """,
        lib__common_DOT_yml="""\
        services:
          core:
            image: srv:2
            env_file: srv.env
            volumes: [./db:/var/lib/db]
            profiles: [full]
          server:
            extends: core
            depends_on: [db]
        """,
        lib__srv_DOT_env="X=from-lib\n",
    )
    assert problems == []
    child = project.services["child"]
    assert child.image == "app:1"
    assert child.environment == {"A": "1", "B": "2"}
    assert {(m.source, m.target) for m in child.mounts} == {("other", "/data"), ("./conf", "/conf")}
    far = project.services["far"]
    assert far.image == "srv:2"
    assert far.environment == {"X": "from-lib"}
    assert far.profiles == ["full"] and far.active is False
    # a relative path keeps the meaning it had in the extended file's folder
    assert {m.host_path for m in far.binds} == {str(tmp_path / "lib" / "db"), "/etc/localtime"}


def test_extends_errors_are_located(tmp_path):
    _, problems = _load(
        tmp_path,
        """\
        services:
          a: {extends: b}
          b: {extends: a}
          c: {extends: {file: nowhere.yml, service: x}}
          d: {extends: nobody}
        """,
    )
    messages = [p.format() for p in problems]
    assert any("services.a.extends" in m and "loops" in m for m in messages)
    assert any("nowhere.yml" in m and "does not exist" in m for m in messages)
    assert any("'nobody' does not exist" in m for m in messages)


def test_profiles_links_and_long_depends_on(tmp_path):
    compose = """\
        services:
          web:
            image: web
            links: ["db:database"]
            depends_on:
              cache: {condition: service_started, required: false}
              debug: {condition: service_started, required: false}
              migrate: {condition: service_completed_successfully}
          db: {image: postgres}
          cache: {image: redis}
          migrate: {image: web}
          debug: {image: tools, profiles: [debug]}
        """
    project, _ = _load(tmp_path, compose)
    web = project.services["web"]
    assert web.depends["migrate"].condition == "service_completed_successfully"
    assert web.depends["debug"].required is False
    # an optional dependency on a service that is not started is not a dependency
    assert web.depends_on == ["cache", "migrate", "db"]
    assert project.services["debug"].profile_only and not project.services["debug"].active
    project, _ = _load(tmp_path, compose, environ={"COMPOSE_PROFILES": "debug,other"})
    assert project.active_profiles == {"debug", "other"}
    assert project.services["debug"].active
    assert "debug" in project.services["web"].depends_on


def test_secrets_configs_and_placement(tmp_path):
    project, _ = _load(
        tmp_path,
        """\
        services:
          db:
            image: postgres
            secrets: [db_password, {source: db_user, target: user}]
            configs: [{source: pg_conf, target: /etc/pg.conf}]
            deploy:
              placement: {constraints: ["node.role == worker", "node.labels.db == yes"]}
        secrets:
          db_password: {external: true}
          db_user: {file: ./secrets/user}
          api_key: {environment: API_KEY}
          legacy: {external: {name: old_name}}
        configs:
          pg_conf: {name: pg-conf-v2, file: /etc/drplan/pg.conf}
        """,
    )
    db = project.services["db"]
    assert db.secrets == ["db_password", "db_user"]
    assert db.configs == ["pg_conf"]
    assert db.placement == ["node.role == worker", "node.labels.db == yes"]
    s = project.secrets
    assert s["db_password"].external and s["db_password"].real_name == "db_password"
    assert s["db_user"].file == str(tmp_path / "secrets" / "user")
    assert s["api_key"].environment == "API_KEY"
    assert s["legacy"].real_name == "old_name"
    assert project.configs["pg_conf"].real_name == "pg-conf-v2"


def test_files_merged_in_order(tmp_path):
    base = _write(
        tmp_path,
        "compose.yml",
        """\
        services:
          app:
            image: app:1
            environment: [A=1, B=1]
            volumes: [data:/data, ./logs:/logs]
            ports: ["80:80"]
          db: {image: postgres}
        volumes: {data: {}}
        """,
    )
    override = _write(
        tmp_path,
        "compose.override.yml",
        """\
        services:
          app:
            image: app:2
            environment: {B: "2"}
            volumes: [./data:/data]
            ports: ["443:443"]
            depends_on: [db]
        volumes: {data: {name: real-data}}
        """,
    )
    project, problems = load_compose([base, override], environ={})
    assert problems == []
    app_ = project.services["app"]
    assert app_.image == "app:2"
    assert app_.environment == {"A": "1", "B": "2"}
    assert {(m.type, m.target) for m in app_.mounts} == {("bind", "/data"), ("bind", "/logs")}
    assert len(app_.ports) == 2
    assert app_.depends_on == ["db"]
    assert project.volume_real_name("s", "data") == "real-data"


# -- volumes and mounts ---------------------------------------------------------------------


def test_volumes_under_their_real_names(tmp_path):
    project, _ = _load(
        tmp_path,
        """\
        services:
          app:
            image: app
            volumes: [plain:/a, named:/b, ext:/c, legacy:/d, both:/e, /anon]
          more:
            image: app
            volumes: [{type: volume, target: /anon2}]
        volumes:
          plain:
          named: {name: "${PREFIX}-named"}
          ext: {external: true}
          legacy: {external: {name: legacy-real}}
          both: {external: true, name: both-real}
        """,
        dotenv="PREFIX=prod\n",
    )
    got = {v: project.volume_real_name("campus", v) for v in project.volumes}
    assert got == {
        "plain": "campus_plain",
        "named": "prod-named",
        "ext": "ext",
        "legacy": "legacy-real",
        "both": "both-real",
    }
    app_ = project.services["app"]
    assert app_.anonymous_volumes == ["/anon"]
    assert project.services["more"].anonymous_volumes == ["/anon2"]
    assert app_.volumes == ["plain", "named", "ext", "legacy", "both"]
    # a drill's copy (isolated compose files) owns every volume under the stack's prefix
    assert project.without_volume_names().volume_real_name("drill", "ext") == "drill_ext"


def test_loaded_plan_finds_volumes_by_their_real_names(tmp_path):
    compose = COMPOSE.replace("  files:\n", "  files: {name: campus-files}\n").replace(
        "  redis-data:\n", "  redis-data: {external: true}\n"
    )
    path = write_stack(tmp_path, compose=compose)
    checked = validate_file(path)
    assert checked.plan is not None and checked.compose is not None
    lp = LoadedPlan(path, checked.plan, checked.compose)
    assert lp.volume_name("campus", "files") == "campus-files"
    assert lp.volume_name("campus", "redis-data") == "redis-data"
    assert lp.volume_name("campus", "db-data") == "campus_db-data"
    lp = LoadedPlan(path, checked.plan, ComposeProject(files=[]))
    assert lp.volume_name("campus", "files") == "campus_files"


def test_bind_mounts_with_their_host_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/op")
    project, _ = _load(
        tmp_path,
        """\
        services:
          app:
            image: app
            volumes:
              - ${UPLOAD_LOCATION}:/data
              - ./media:/media:ro
              - ~/cfg:/cfg
              - {type: bind, source: ../shared, target: /shared, read_only: true}
              - /srv/x/../y:/y:rw,z
        """,
        dotenv="UPLOAD_LOCATION=./library\n",
    )
    binds = {(m.source, m.host_path, m.target, m.read_only) for m in project.services["app"].binds}
    assert binds == {
        ("./library", str(tmp_path / "library"), "/data", False),
        ("./media", str(tmp_path / "media"), "/media", True),
        ("~/cfg", "/home/op/cfg", "/cfg", False),
        ("../shared", str(tmp_path.parent / "shared"), "/shared", True),
        ("/srv/x/../y", "/srv/y", "/y", False),
    }


# -- names Compose accepts ------------------------------------------------------------------


def test_a_draft_from_names_compose_accepts_validates(tmp_path):
    compose = _write(
        tmp_path,
        "compose.yml",
        """\
        services:
          _worker:
            image: app
            volumes: [_cache:/cache]
          café:
            image: app
            depends_on: [_worker]
          web.v2:
            image: app
        volumes:
          _cache:
        """,
    )
    plan = tmp_path / "plan.yml"
    draft = draft_plan(compose, stack="names", plan_path=plan)
    assert {"_worker", "café", "web.v2"} <= set(draft.data["services"])
    plan.write_text(yaml.safe_dump(draft.data, allow_unicode=True, sort_keys=False))
    checked = validate_file(plan)
    assert checked.ok, [p.format() for p in checked.problems]


@pytest.mark.parametrize("bad", [".hidden", "-option", "a b", "a/b", "", "x\n"])
def test_names_that_stay_refused(tmp_path, bad):
    text = PLAN.replace("  exam:\n    depends_on: [db, redis]\n", f"  {json.dumps(bad)}: {{}}\n")
    checked = validate_file(write_stack(tmp_path, plan=text))
    assert not checked.ok


def test_plan_json_keeps_stdout_for_json(tmp_path, runner):
    bad = write_stack(tmp_path, plan=PLAN.replace("tier: P1", "tier: P9", 1))
    result = runner.invoke(app, ["plan", "--json", str(bad)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "services.db.tier" in result.stderr
    # a valid plan with warnings: stdout is the JSON alone
    compose = COMPOSE.replace("services:\n", "services:\n  extra: {image: x}\n", 1)
    good = write_stack(tmp_path, compose=compose)
    result = runner.invoke(app, ["plan", "--json", str(good)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["services"]


def test_extends_chains_across_files_are_not_loops(tmp_path):
    """Same service names in two files extending each other's are no loop; a chain too
    long is refused with a located error, not a crash."""
    _write(
        tmp_path,
        "b.yml",
        """\
        services:
          s2: {image: from-b}
          s3: {extends: s2}
        """,
    )
    chain = "".join(f"  c{i}: {{extends: c{i + 1}}}\n" for i in range(200))
    project, problems = _load(
        tmp_path,
        "services:\n"
        "  s1: {extends: s2}\n"
        "  s2: {extends: {file: b.yml, service: s3}}\n" + chain + "  c200: {image: deep}\n",
    )
    assert project.services["s1"].image == "from-b"
    assert any("chain longer than 64" in p.message for p in problems)
    assert project.services["c199"].image == "deep"


def test_a_drill_restores_named_volumes_into_its_own_copies(tmp_path):
    """Production's `files` volume has an explicit name; a drill's isolated compose files
    drop it, so the drill must restore into `<drill stack>_files`, never production's."""
    import shutil

    from drplan.actions.drill import drill_context
    from tests.unit.drill_helpers import campus_plan

    pc = campus_plan(tmp_path)
    compose = tmp_path / "compose.yml"
    compose.write_text(compose.read_text().replace("  files:\n", "  files: {name: prod-files}\n"))
    pc = _reload(tmp_path)
    assert pc.volume_name("campus", "files") == "prod-files"
    drill_pc, files, _ = drill_context(pc, "d1", list(pc.plan.services))
    try:
        assert drill_pc.volume_name("drill-d1", "files") == "drill-d1_files"
        assert pc.volume_name("campus", "files") == "prod-files"  # the original is intact
    finally:
        shutil.rmtree(next(iter(files)).parent, ignore_errors=True)


def _reload(tmp_path: Path):
    from drplan.actions.context import load_plan

    return load_plan(tmp_path / "drplan.yml")


def test_a_plan_from_a_repository_interpolates_none_of_the_operators_variables(
    tmp_path, monkeypatch
):
    """A hostile compose file read back from a repository must not pull a secret of the
    operator's environment into a service (a user name on a dump's command line)."""
    from drplan.actions.context import check_plan

    monkeypatch.setenv("OPERATOR_SECRET", "hunter2")
    compose = COMPOSE.replace(
        "environment: {PGDATA: /data}",
        'environment: {PGDATA: /data, POSTGRES_USER: "${OPERATOR_SECRET}"}',
    )
    path = write_stack(tmp_path, compose=compose)
    trusted = check_plan(path)
    assert trusted.context is not None
    assert trusted.context.compose.services["db"].environment["POSTGRES_USER"] == "hunter2"
    untrusted = check_plan(path, trusted=False)
    assert untrusted.context is not None
    assert untrusted.context.compose.services["db"].environment["POSTGRES_USER"] == ""


@pytest.mark.parametrize("name", ["_worker", "café", "web.v2", "db-1"])
def test_a_run_manifest_accepts_the_names_a_plan_accepts(name):
    """A backup of a service named so must read back (the manifest checks names too)."""
    from drplan.store import manifest as mf

    assert mf.NAME_RE.fullmatch(name)
    assert not mf.NAME_RE.fullmatch("." + name) and not mf.NAME_RE.fullmatch("-" + name)


def test_services_of_inactive_profiles_need_not_be_in_the_plan(tmp_path, monkeypatch):
    compose = COMPOSE.replace(
        "services:\n", "services:\n  debug: {image: x, profiles: [debug]}\n", 1
    )
    path = write_stack(tmp_path, compose=compose)
    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    quiet = [p.message for p in validate_file(path).problems]
    assert not any("'debug' is not in the plan" in m for m in quiet)
    monkeypatch.setenv("COMPOSE_PROFILES", "debug")
    loud = [p.message for p in validate_file(path).problems]
    assert any("'debug' is not in the plan" in m for m in loud)


def test_env_secrets_fall_back_to_the_stack_dotenv(tmp_path, monkeypatch):
    """A draft names `{env: POSTGRES_PASSWORD}`: the stack's .env sets it for Compose, so
    drplan reads it there when its own environment does not; the environment wins."""
    from drplan.actions.context import load_plan
    from drplan.errors import InputError
    from drplan.plan.model import Secret

    path = write_stack(tmp_path)
    (tmp_path / ".env").write_text("DB_PASS=from-dotenv\n")
    monkeypatch.delenv("DB_PASS", raising=False)
    monkeypatch.delenv("NOWHERE_SET", raising=False)
    pc = load_plan(path)
    assert pc.resolve(Secret(env="DB_PASS"), "services.db.data.pg.password") == "from-dotenv"
    monkeypatch.setenv("DB_PASS", "from-env")
    assert pc.resolve(Secret(env="DB_PASS"), "x") == "from-env"
    with pytest.raises(InputError) as err:
        pc.resolve(Secret(env="NOWHERE_SET"), "services.db.data.pg.password")
    assert "NOWHERE_SET is not set (nor by the stack's .env)" in str(err.value)
    assert "services.db.data.pg.password" in str(err.value)
