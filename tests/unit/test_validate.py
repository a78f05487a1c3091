"""`drplan validate`: every problem located as FILE:LINE:COL: path: message, exit 2."""

from __future__ import annotations

import os

import pytest
from plan_helpers import COMPOSE, PLAN, assert_problem_lines, write_stack

from drplan.cli import app


def run(runner, path):
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2)
    return result


def problems_of(runner, path):
    result = run(runner, path)
    assert result.exit_code == 2, result.stdout
    return assert_problem_lines(result.stdout)


def test_base_plan_is_valid(runner, tmp_path):
    result = run(runner, write_stack(tmp_path))
    assert result.exit_code == 0, result.stdout
    assert result.stdout.startswith("OK: ")
    assert "4 services, 3 data sources" in result.stdout


def test_unknown_dependency_is_located(runner, tmp_path):
    path = write_stack(
        tmp_path,
        PLAN.replace("depends_on: [db, redis]\n    data", "depends_on: [db, rediss]\n    data"),
    )
    [line] = problems_of(runner, path)
    assert line == (
        f"{path}:24:22: services.web.depends_on[1]: "
        "unknown service 'rediss' (did you mean 'redis'?)"
    )


def test_cycle_is_printed_as_path(runner, tmp_path):
    plan = PLAN.replace(
        "  redis:\n    tier: P1\n", "  redis:\n    tier: P1\n    depends_on: [web]\n"
    )
    lines = problems_of(runner, write_stack(tmp_path, plan))
    assert any("dependency cycle: redis→web→redis" in x or "web→redis→web" in x for x in lines), (
        lines
    )


def test_profile_missing_dependency(runner, tmp_path):
    path = write_stack(tmp_path, PLAN.replace("[db, redis, exam]", "[exam, db]"))
    [line] = problems_of(runner, path)
    assert "profiles.exams.services[0]" in line
    assert "leaves out 'redis', a dependency of 'exam'" in line


def test_rpo_shorter_than_schedule(runner, tmp_path):
    path = write_stack(tmp_path, PLAN.replace("rpo: 24h", "rpo: 1h"))
    [line] = problems_of(runner, path)
    assert ":10:" in line and "objectives.rpo: RPO 1h is shorter than the backup schedule" in line


def test_rpo_fits_interval_schedule(runner, tmp_path):
    plan = PLAN.replace('{daily_at: "03:00"}', "{every: 1h}").replace("rpo: 24h", "rpo: 1h")
    assert run(runner, write_stack(tmp_path, plan)).exit_code == 0


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        (
            "password: {env: RESTIC_PASSWORD}",
            "password: hunter2",
            "repositories.main.password: secret written in clear",
        ),
        (
            "path: /srv/files}",
            "path: /srv/files, description: 'postgres://u:hunter2@db/x'}",
            "a URL with a password",
        ),
        (
            "command: [pg_isready, -U, postgres]",
            "command: PGPASSWORD=hunter2 psql -c 'select 1'",
            "a password assigned in clear",
        ),
        (
            "{env: RESTIC_PASSWORD}}",
            "{env: RESTIC_PASSWORD}, env: {AWS_SECRET_ACCESS_KEY: abc123}}",
            "AWS_SECRET_ACCESS_KEY: secret written in clear",
        ),
    ],
)
def test_clear_secrets(runner, tmp_path, old, new, expect):
    assert old in PLAN
    lines = problems_of(runner, write_stack(tmp_path, PLAN.replace(old, new)))
    assert any(expect in x for x in lines), lines
    assert not any("hunter2" in x or "abc123" in x for x in lines), "secret value printed"


def test_data_source_without_engine(runner, tmp_path):
    path = write_stack(tmp_path, PLAN.replace("rdb: {engine: redis, ", "rdb: {"))
    [line] = problems_of(runner, path)
    assert "services.redis.data.rdb.engine: data source has no engine" in line


def test_duplicate_keys(runner, tmp_path):
    plan = PLAN.replace(
        "  exam:\n    depends_on: [db, redis]\n",
        "  exam:\n    depends_on: [db, redis]\n  exam:\n    tier: P3\n",
    )
    lines = problems_of(runner, write_stack(tmp_path, plan))
    assert any("duplicate key 'exam'" in x for x in lines), lines


def test_unknown_key_with_suggestion(runner, tmp_path):
    path = write_stack(
        tmp_path,
        PLAN.replace("    tier: P1\n    data:\n      pg", "    teir: P1\n    data:\n      pg"),
    )
    [line] = problems_of(runner, path)
    assert line.endswith("services.db.teir: unknown key 'teir' (did you mean 'tier'?)")
    assert ":13:5:" in line


@pytest.mark.parametrize("bad", ["2x", "-1h", "soon", "[1]"])
def test_bad_durations(runner, tmp_path, bad):
    lines = problems_of(runner, write_stack(tmp_path, PLAN.replace("rto: 1h", f"rto: {bad}")))
    assert any("objectives.rto" in x for x in lines), lines


def test_missing_compose_file(runner, tmp_path):
    path = write_stack(
        tmp_path, PLAN.replace("compose: compose.yml", "compose: [compose.yml, nope.yml]")
    )
    [line] = problems_of(runner, path)
    assert "stack.compose[1]: compose file 'nope.yml' does not exist" in line


def test_service_and_volume_not_in_compose(runner, tmp_path):
    plan = PLAN.replace("  exam:\n    depends_on", "  exams:\n    depends_on").replace(
        "[db, redis, exam]", "[db, redis, exams]"
    )
    plan = plan.replace("volume: files,", "volume: filez,")
    lines = problems_of(runner, write_stack(tmp_path, plan))
    text = "\n".join(lines)
    assert (
        "services.exams: service 'exams' is not in the compose file(s) (did you mean 'exam'?)"
        in text
    )
    assert "volume 'filez' is not declared in the compose file(s)" in text
    assert "warning: compose service 'exam' is not in the plan" in text


def test_volume_not_mounted_by_service(runner, tmp_path):
    lines = problems_of(
        runner, write_stack(tmp_path, PLAN.replace("volume: files,", "volume: db-data,"))
    )
    assert any("service 'web' does not mount volume 'db-data'" in x for x in lines)


def test_compose_problems_located_in_compose(runner, tmp_path):
    path = write_stack(tmp_path, compose="services: [1, 2\n")
    lines = problems_of(runner, path)
    assert any("compose.yml:" in x and "invalid YAML" in x for x in lines), lines


def test_many_problems_all_listed(runner, tmp_path):
    plan = (
        PLAN.replace("tier: P1", "tier: P0")
        .replace("[db, redis, exam]", "[exam]")
        .replace("depends_on: [db, redis]\n    data", "depends_on: [dbb]\n    data")
    )
    lines = problems_of(runner, write_stack(tmp_path, plan))
    text = "\n".join(lines)
    assert "services.db.tier" in text and "services.redis.tier" in text
    assert "unknown service 'dbb'" in text  # graph checks run even when the model fails
    assert "profile 'exams' leaves out" in text
    assert [int(x.split(":")[1]) for x in lines] == sorted(int(x.split(":")[1]) for x in lines)


def test_site_and_repository_roles(runner, tmp_path):
    plan = PLAN.replace("role: recovery", "role: primary").replace(
        "role: primary, password", "password"
    )
    text = "\n".join(problems_of(runner, write_stack(tmp_path, plan)))
    assert "exactly one site must have role primary (found 2)" in text
    assert "no recovery site" in text
    assert "exactly one repository must have role primary (found 0)" in text


def test_bad_docker_host_and_repo_url(runner, tmp_path):
    plan = PLAN.replace("tcp://127.0.0.1:23750", "http://x").replace(
        "sftp:backup@offsite:/restic/campus", "b2:bucket"
    )
    text = "\n".join(problems_of(runner, write_stack(tmp_path, plan)))
    assert "sites.b.docker_host: docker_host must be a URL" in text
    assert "repositories.copy: unsupported repository url" in text


def test_sql_check_needs_sql_source(runner, tmp_path):
    plan = PLAN.replace(
        "health: {type: http", "checks: [{type: sql, query: SELECT 1}]\n    health: {type: http"
    )
    text = "\n".join(problems_of(runner, write_stack(tmp_path, plan)))
    assert "services.web.checks[0]: an sql check needs an SQL data source" in text


def test_secret_reference_needs_exactly_one(runner, tmp_path):
    plan = PLAN.replace("{env: RESTIC_PASSWORD}", "{env: A, file: b}")
    text = "\n".join(problems_of(runner, write_stack(tmp_path, plan)))
    assert (
        "repositories.main.password: a secret reference needs exactly one of env, file or command"
        in text
    )


def test_crisis_cell_references(runner, tmp_path):
    plan = PLAN + (
        "crisis_cell:\n"
        "  people: {ann: {name: Ann}}\n"
        "  roles: {direction: [ann], technical_coordination: [bob],\n"
        "          communication: [ann], user_support: [ann]}\n"
        "  activation:\n"
        "    - {kind: service_down, services: [wbe]}\n"
        "    - {kind: tickets, threshold: 0, window: 1h}\n"
        "risks:\n"
        "  - {id: fire, event: Fire, probability: low, impact: very_high, triggers_plan: true}\n"
        "  - {id: fire, event: Flood, probability: huge, impact: low, triggers_plan: false}\n"
    )
    text = "\n".join(problems_of(runner, write_stack(tmp_path, plan)))
    assert "risks[1].probability" in text
    assert "crisis_cell.activation[1].threshold" in text
    plan = plan.replace("probability: huge", "probability: high").replace(
        "threshold: 0", "threshold: 5"
    )
    text = "\n".join(problems_of(runner, write_stack(tmp_path, plan)))
    assert "crisis_cell.roles.technical_coordination[0]: unknown person 'bob'" in text
    assert "crisis_cell.activation[0].services[0]: unknown service 'wbe'" in text
    assert "risks[1].id: duplicate risk id 'fire'" in text


def test_sexagesimal_times_are_strings(runner, tmp_path):
    assert run(runner, write_stack(tmp_path, PLAN.replace('"03:00"', "03:00"))).exit_code == 0


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "empty plan"),
        (b"# only a comment\n", "empty plan"),
        (b"- a\n- b\n", "not a list"),
        (b"just a string", "not a string"),
        (b"key: [unclosed", "invalid YAML"),
        (b"\x00\x01\x02\xff\xfe garbage", "not UTF-8"),
        (b"a: \x07bell", "invalid YAML"),
        (b"--- 1\n--- 2\n", "invalid YAML"),
        (b"a: &x [*x]\n", "missing required key"),
        (b"a: !!python/object:os.system {}\n", "unsupported YAML tag"),
        (b"[" * 5000, "invalid YAML"),
        (b"a: *nope", "invalid YAML"),
    ],
)
def test_garbage_never_tracebacks(runner, tmp_path, content, expect):
    path = tmp_path / "plan.yml"
    path.write_bytes(content)
    lines = problems_of(runner, path)
    assert any(expect in x for x in lines), lines


def test_missing_file_and_directory(runner, tmp_path):
    [line] = problems_of(runner, tmp_path / "nope.yml")
    assert line.endswith("(file): file not found")
    [line] = problems_of(runner, tmp_path)
    assert line.endswith("is a directory, not a YAML file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file(runner, tmp_path):
    path = write_stack(tmp_path)
    path.chmod(0)
    [line] = problems_of(runner, path)
    assert "cannot read" in line


def test_compose_fixture_parses():
    assert "services:" in COMPOSE


def test_storage_a_drill_would_share_with_production_is_warned_about(runner, tmp_path):
    """Named, external, driver_opts volumes and bind mounts: a warning each, located at
    the service's mount in the compose file, saying what a drill does with it."""
    compose = (
        COMPOSE.replace("volumes: [redis-data:/data]", "volumes: [redis-data:/data, ./conf:/c:ro]")
        .replace(
            "volumes: [files:/srv/files]",
            "volumes:\n      - files:/srv/files\n      - ./media:/srv/media",
        )
        .replace(
            "      redis: {condition: service_started}\n",
            "      redis: {condition: service_started}\n    volumes:\n"
            "      - {type: bind, source: /var/run/docker.sock, target: /s.sock}\n",
        )
        .replace("  db-data:\n", "  db-data:\n    driver_opts: {type: nfs, device: ':/x'}\n")
        .replace("  redis-data:\n", "  redis-data: {external: true}\n")
        .replace("  files:\n", "  files: {name: campus_files}\n")
    )
    path = write_stack(tmp_path, compose=compose)
    result = run(runner, path)
    assert result.exit_code == 0, result.stdout  # warnings only
    lines = assert_problem_lines("\n".join(result.stdout.strip().split("\n")[:-1]))
    c = tmp_path / "compose.yml"
    assert lines == [
        f"{c}:5:15: services.db.volumes[0]: warning: service db: volume db-data has "
        "driver_opts (type=nfs, device=:/x): a drill remaps it to an isolated copy of its own",
        f"{c}:8:15: services.redis.volumes[0]: warning: service redis: volume redis-data is "
        "external: a drill remaps it to an isolated copy of its own",
        f"{c}:8:33: services.redis.volumes[1]: warning: service redis: bind mount ./conf is "
        "read-only: a drill keeps it (it can read production's files, not change them)",
        f"{c}:14:9: services.web.volumes[0]: warning: service web: volume files has an "
        "explicit name (campus_files): a drill remaps it to an isolated copy of its own",
        f"{c}:15:9: services.web.volumes[1]: warning: service web: bind mount ./media is "
        "writable: a drill remaps it to an isolated copy of its own",
        f"{c}:15:9: services.web.volumes[1]: warning: host directory {tmp_path / 'media'} "
        "(service 'web', at /srv/media) is in no data source of the plan: it is not backed "
        f"up. Add a source `engine: files` with `bind: {tmp_path / 'media'}`",
        f"{c}:23:9: services.exam.volumes[0]: warning: service exam: bind mount "
        "/var/run/docker.sock is a socket or runtime directory (read-only does not stop a "
        "connection to production's daemons): a drill refuses to run this service (drill a "
        "profile without it)",
    ]


def test_a_local_repository_with_a_multi_node_site_is_a_located_warning(runner, tmp_path):
    """Volume copies run restic on the node holding the data: a local repository path
    must then be shared by every node, which validate says, at the repository's url."""
    plan = PLAN.replace(
        '  a: {role: primary, docker_host: "unix:///var/run/docker.sock"}',
        '  a: {role: primary, docker_host: "unix:///var/run/docker.sock",'
        ' nodes: {"*": "ssh://root@{addr}"}}',
    )
    result = run(runner, write_stack(tmp_path, plan))
    assert result.exit_code == 0, result.stdout  # a warning, not an error
    lines = assert_problem_lines(result.stdout.split("\nOK: ")[0])
    [line] = [x for x in lines if "repositories.main.url" in x]
    assert "warning: a local path, and site(s) a have several nodes" in line
    assert "sftp:, rest: or s3:" in line
    # one-node sites (no `nodes`): no such warning; the sftp copy never gets one
    assert "several nodes" not in run(runner, write_stack(tmp_path)).stdout
    assert not any("repositories.copy" in x and "several nodes" in x for x in lines)


def test_volume_options_of_an_unknown_volume_are_located(runner, tmp_path):
    plan = PLAN.replace(
        '  b: {role: recovery, docker_host: "tcp://127.0.0.1:23750"}',
        '  b: {role: recovery, docker_host: "tcp://127.0.0.1:23750",'
        " volume_options: {filez: {type: none, o: bind, device: /dr/files}}}",
    )
    [line] = [x for x in problems_of(runner, write_stack(tmp_path, plan)) if "filez" in x]
    assert "sites.b.volume_options.filez: volume 'filez' is not declared" in line
    assert "did you mean 'files'?" in line
