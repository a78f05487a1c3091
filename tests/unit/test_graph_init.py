"""Dependency graph and drafting a plan from compose."""

from __future__ import annotations

import pytest
import yaml
from plan_helpers import COMPOSE

from drplan.actions.init import detect_engine, draft_plan, image_basename
from drplan.cli import app
from drplan.errors import InputError
from drplan.plan.compose import ComposeService, Mount, load_compose
from drplan.plan.graph import DependencyGraph
from drplan.plan.validate import validate_file
from drplan.schedule import build_schedule


def test_closure_cycles_height():
    g = DependencyGraph({"a": ["b"], "b": ["c"], "c": [], "d": ["a", "x"]})
    assert g.closure(["a"]) == {"a", "b", "c"}
    assert g.cycles() == []
    assert g.height() == {"c": 0, "b": 1, "a": 2, "d": 3}
    g = DependencyGraph({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"]})
    assert g.cycles() == [["a", "b", "c", "a"]]


def test_long_chain_has_no_recursion_limit():
    n = 5000
    g = DependencyGraph({f"s{i}": [f"s{i + 1}"] if i + 1 < n else [] for i in range(n)})
    assert g.height()["s0"] == n - 1
    assert g.cycles() == []


@pytest.mark.parametrize(
    ("image", "base"),
    [
        ("drplan-tb/postgres:15", "postgres"),
        ("registry:5000/a/b/mariadb:10.11@sha256:abc", "mariadb"),
        ("redis", "redis"),
        (None, ""),
    ],
)
def test_image_basename(image, base):
    assert image_basename(image) == base


@pytest.mark.parametrize(
    ("image", "env", "engine"),
    [
        ("drplan-tb/postgres:15", {}, ("postgresql", "dump")),
        ("drplan-tb/mariadb:10.11", {}, ("mariadb", "dump")),
        ("bitnami/mariadb-galera:10", {}, ("mariadb", "dump")),
        ("mysql:8", {}, ("mariadb", "dump")),
        ("drplan-tb/redis:7", {}, ("redis", "dump")),
        ("opensearchproject/opensearch:2", {}, ("files", "cold")),
        ("cassandra:4", {}, ("files", "cold")),
        ("custom/db:1", {"POSTGRES_PASSWORD_FILE": "/x"}, ("postgresql", "dump")),
        ("custom/db:1", {"MARIADB_ROOT_PASSWORD_FILE": "/x"}, ("mariadb", "dump")),
        ("drplan-tb/app:latest", {"POSTGRES_HOST": "db", "POSTGRES_USER": "u"}, None),
        ("drplan-tb/app:latest", {}, None),
    ],
)
def test_detect_engine(image, env, engine):
    got = detect_engine(ComposeService("s", image=image, environment=env))
    assert (got[:2] if got else None) == engine


def test_compose_forms(tmp_path):
    path = tmp_path / "compose.yml"
    path.write_text(COMPOSE + "x-defaults: &d {image: busybox}\n")
    project, problems = load_compose([path])
    assert problems == []
    assert project.services["exam"].depends_on == ["db", "redis"]
    assert project.services["web"].depends_on == ["db", "redis"]
    assert project.services["web"].mounts == [Mount("volume", "files", "/srv/files")]
    assert project.volumes == {"db-data", "redis-data", "files"}


def test_draft_for_the_testbed_shape(tmp_path):
    compose = tmp_path / "compose.yml"
    compose.write_text(COMPOSE)
    draft = draft_plan(compose, plan_path=tmp_path / "drplan.yml")
    services = draft.data["services"]
    assert services["db"]["data"]["db"] == {
        "engine": "postgresql",
        "method": "dump",
        "volume": "db-data",
        "path": "/data",
        "user": "postgres",  # the image's default: nothing in the service names another
    }
    assert services["redis"]["data"]["db"]["engine"] == "redis"
    assert services["web"]["data"]["files"]["engine"] == "files"
    assert services["db"]["tier"] == services["redis"]["tier"] == "P1"
    assert services["web"]["tier"] == "P1"  # users reach it: it publishes a port
    assert services["exam"]["tier"] == "P2"
    assert services["exam"]["depends_on"] == ["db", "redis"]
    assert draft.data["stack"]["compose"] == ["compose.yml"]
    assert any("db: postgresql" in n for n in draft.notes)


def test_init_cli_writes_valid_plan(tmp_path, runner):
    compose = tmp_path / "compose.yml"
    compose.write_text(COMPOSE)
    out = tmp_path / "drplan.yml"
    result = runner.invoke(
        app, ["init", "--from", str(compose), "--stack", "campus", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stdout
    checked = validate_file(out)
    assert checked.ok, [p.format() for p in checked.problems]
    assert checked.plan.stack.name == "campus"
    waves = build_schedule(checked.plan).wave_of()
    assert waves["start:web"] > waves["health:db"] > waves["start:db"]
    # refuses to overwrite; stdout mode prints YAML
    result = runner.invoke(app, ["init", "--from", str(compose), "-o", str(out)])
    assert result.exit_code != 0
    result = runner.invoke(app, ["init", "--from", str(compose)])
    assert yaml.safe_load(result.stdout)["stack"]["name"]


def test_init_rejects_bad_input(tmp_path):
    with pytest.raises(InputError):
        draft_plan(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("services: [")
    with pytest.raises(InputError):
        draft_plan(bad)
    empty = tmp_path / "empty.yml"
    empty.write_text("services: {}\n")
    with pytest.raises(InputError):
        draft_plan(empty)
