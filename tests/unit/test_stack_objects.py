"""Secrets and configs a recovery site needs, and placement constraints per site: the
pure parts (what the recovery checks, the deployed copy, validate's lines, the runbook's
lines, the run's config tar)."""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from drplan.actions import backup
from drplan.actions import recover as rc
from drplan.actions.context import load_plan
from drplan.cli import app
from drplan.errors import InputError
from drplan.plan.compose import zero_compose
from drplan.plan.stack_objects import missing, stack_objects
from drplan.runbook import _stack_objects

COMPOSE = """\
services:
  app:
    image: drplan-tb/app:latest
    secrets: [api_key, db_pass]
    configs: [app_conf]
    deploy:
      placement:
        constraints: [node.role == manager]
  worker:
    image: drplan-tb/app:latest
    secrets: [api_key]
    deploy:
      placement:
        constraints: [node.labels.zone == a]
secrets:
  api_key: {external: true}
  db_pass: {file: ./secrets/db_pass.txt}
configs:
  app_conf: {external: true, name: prod_conf}
"""

PLAN = """\
version: 1
stack: {name: shop, compose: compose.yml}
sites:
  a: {role: primary, docker_host: "unix:///var/run/docker.sock"}
  b:
    role: recovery
    docker_host: "tcp://127.0.0.1:23750"
    placement:
      app: [node.labels.dr == yes]
      worker: []
repositories:
  main: {url: /srv/restic/shop, role: primary, password: {env: RESTIC_PASSWORD}}
services:
  app: {}
  worker: {}
"""

SECRET_VALUE = "pw-never-printed"


def write(tmp: Path, plan: str = PLAN, compose: str = COMPOSE) -> Path:
    (tmp / "secrets").mkdir(exist_ok=True)
    (tmp / "secrets" / "db_pass.txt").write_text(SECRET_VALUE)
    (tmp / "compose.yml").write_text(textwrap.dedent(compose))
    (tmp / "plan.yml").write_text(textwrap.dedent(plan))
    return tmp / "plan.yml"


def test_objects_name_what_must_exist_and_who_needs_it(tmp_path):
    pc = load_plan(write(tmp_path))
    objs = {(o.kind, o.key): o for o in stack_objects(pc.compose)}
    assert objs["secret", "api_key"].must_exist and objs["secret", "api_key"].services == (
        "app",
        "worker",
    )
    assert objs["config", "app_conf"].name == "prod_conf" and objs["config", "app_conf"].must_exist
    db = objs["secret", "db_pass"]
    assert not db.must_exist and db.engine_name("dr-shop") == "dr-shop_db_pass"
    absent = missing(list(objs.values()), {"db_pass"}, set())
    assert sorted(o.name or o.key for o in absent) == ["api_key", "prod_conf"]
    assert missing(list(objs.values()), {"api_key"}, {"prod_conf"}) == []
    # a profile without `worker` needs api_key for app only
    [api] = [o for o in stack_objects(pc.compose, ["app"]) if o.key == "api_key"]
    assert api.services == ("app",)


class _Engine:
    site = "b"
    where = "site b"

    def __init__(self, secrets: set[str], configs: set[str]) -> None:
        self.secrets, self.configs = secrets, configs

    def secret_names(self) -> set[str]:
        return self.secrets

    def config_names(self) -> set[str]:
        return self.configs


def test_recovery_refuses_naming_every_missing_external_object(tmp_path):
    pc = load_plan(write(tmp_path))
    runner = SimpleNamespace(pc=pc, services=["app", "worker"], engine=_Engine(set(), set()))
    with pytest.raises(InputError) as exc:
        rc._Runner.check_objects(runner)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert "secret api_key (needed by app, worker)" in msg
    assert "config prod_conf (needed by app)" in msg
    assert "db_pass" not in msg and "nothing was changed" in msg and "site b" in msg
    runner.engine = _Engine({"api_key"}, {"prod_conf"})
    rc._Runner.check_objects(runner)  # type: ignore[arg-type]


def test_the_site_maps_or_drops_placement_constraints(tmp_path):
    pc = load_plan(write(tmp_path))
    doc = yaml.safe_load((tmp_path / "compose.yml").read_text())
    out = zero_compose(doc, ["app", "worker"], pc.plan.sites["b"], drop_ports=False)
    assert out["services"]["app"]["deploy"]["placement"] == {
        "constraints": ["node.labels.dr == yes"]
    }
    assert "placement" not in out["services"]["worker"]["deploy"]
    kept = zero_compose(
        yaml.safe_load((tmp_path / "compose.yml").read_text()),
        ["app", "worker"],
        pc.plan.sites["a"],
        drop_ports=False,
    )
    assert kept["services"]["worker"]["deploy"]["placement"]["constraints"] == [
        "node.labels.zone == a"
    ]


def test_validate_lists_what_each_site_needs_and_locates_unknown_services(runner, tmp_path):
    result = runner.invoke(app, ["validate", str(write(tmp_path))])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "note: each site (a, b) needs these secrets and configs:" in text
    assert "secret api_key (must exist before recovering; used by app, worker)" in text
    assert "config prod_conf (must exist before recovering; used by app)" in text
    assert "secret db_pass (created by the deploy from a file; used by app)" in text
    assert SECRET_VALUE not in text
    bad = write(tmp_path, PLAN.replace("      worker: []", "      wrker: []"))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:10:7: sites.b.placement.wrker: unknown service 'wrker'" in result.stdout


def test_a_file_outside_the_plan_folder_is_a_warning(runner, tmp_path):
    outside = tmp_path / "kit" / "db_pass.txt"
    outside.parent.mkdir()
    outside.write_text(SECRET_VALUE)
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    path = write(plan_dir, compose=COMPOSE.replace("./secrets/db_pass.txt", str(outside)))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stdout.splitlines() if "db_pass" in x]
    assert line.startswith(f"{plan_dir / 'compose.yml'}:17:19: ")
    assert "secrets.db_pass.file: warning:" in line
    assert "not kept with the run: keep it with your recovery kit" in line


def test_the_runbook_lists_names_only(tmp_path):
    pc = load_plan(write(tmp_path))
    lines = _stack_objects(pc, ["app", "worker"], "dr-shop")
    assert {(o["kind"], o["name"]) for o in lines} == {
        ("secret", "api_key"),
        ("secret", "dr-shop_db_pass"),
        ("config", "prod_conf"),
    }
    assert all(SECRET_VALUE not in str(o) for o in lines)


def test_the_runs_config_keeps_secret_files_inside_the_plan_folder(tmp_path):
    pc = load_plan(write(tmp_path))

    class Repo:
        def backup_stream(self, chunks, **kw):
            self.data = b"".join(chunks)
            return {"snapshot_id": "s1"}

    repo = Repo()
    assert backup._config(pc, repo, "r1") == "s1"  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(repo.data)) as tar:
        names = tar.getnames()
        assert sorted(names) == ["compose.yml", "plan.yml", "secrets/db_pass.txt"]
        kept = tar.extractfile("secrets/db_pass.txt")
        assert kept is not None and kept.read().decode() == SECRET_VALUE


def test_the_runbook_index_lists_them_before_you_start(tmp_path):
    from drplan import runbook as rb
    from drplan.store.restic import Repository
    from tests.unit.drill_helpers import campus_plan, fake_run

    pc = campus_plan(tmp_path)
    doc = yaml.safe_load((tmp_path / "compose.yml").read_text())
    web = next(iter(doc["services"]))
    doc["services"][web]["secrets"] = ["api_key"]
    doc["secrets"] = {"api_key": {"external": True}}
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(doc))
    pc = load_plan(pc.path)
    repo = Repository(name="local", url=str(tmp_path / "repo"), password="x")
    book = rb.build(pc, repo, manifest=fake_run(pc.name), drills=[], stack="campus")
    rb.write(book, tmp_path / "runbook")
    index = (tmp_path / "runbook" / "README.md").read_text()
    before = index.split("## Before you start", 1)[1].split("## Order of the recovery", 1)[0]
    assert (
        f"- secret `api_key`: must exist on the site before the recovery (external); used by {web}"
        in before
    )
    assert "api_key" in (tmp_path / "runbook" / "runbook.html").read_text()
