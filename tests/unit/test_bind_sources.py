"""Bind-mounted host directories as data sources, and the state a plan leaves unprotected:
the model's rules, the site mapping in the deployed compose file, `drplan validate`'s
errors and warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from drplan.plan import model as m
from drplan.plan.compose import map_bind_sources
from drplan.plan.validate import validate_file
from drplan.sources import files, registry

PLAN = """\
version: 1
stack: {{name: wiki, compose: compose.yml}}
sites:
  a: {{role: primary, docker_host: "unix:///var/run/docker.sock"}}
  b:
    role: recovery
    docker_host: "tcp://127.0.0.1:23750"
    paths: {{{uploads}: /mnt/dr/uploads}}
repositories:
  main: {{url: /srv/restic/wiki, role: primary, password: {{env: RESTIC_PASSWORD}}}}
backup: {{schedule: {{daily_at: "03:00"}}, retention: {{keep_daily: 7}}}}
objectives: {{rto: 1h, rpo: 24h}}
services:
{services}
"""

COMPOSE = """\
services:
  db:
    image: drplan-tb/wikidb:1
    environment: {POSTGRES_USER: wiki, POSTGRES_PASSWORD: "${DB_PASS}"}
    volumes: [db-data:/var/lib/postgresql/data]
  app:
    image: drplan-tb/app:latest
    environment: {DB_HOST: db}
    volumes: [shared:/srv/shared, ./uploads:/srv/uploads, ./app.conf:/etc/app.conf:ro]
  worker:
    image: drplan-tb/app:latest
    environment: {DB_HOST: db}
    volumes: [shared:/srv/shared, /tmp/scratch-cache]
volumes:
  db-data:
  shared:
"""


def write(tmp_path: Path, services: str) -> Path:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    (tmp_path / "app.conf").write_text("x=1\n")
    uploads = str(tmp_path / "uploads")
    plan = tmp_path / "plan.yml"
    plan.write_text(
        PLAN.format(uploads=uploads, services=textwrap.indent(textwrap.dedent(services), "  "))
    )
    return plan


def problems(plan: Path, severity: str) -> list[str]:
    result = validate_file(plan, engines=registry.catalog())
    return [p.message for p in result.problems if p.severity == severity]


# -- the model ----------------------------------------------------------------------------


@pytest.mark.parametrize("bind", ["uploads", "./uploads", "${UPLOAD_LOCATION}", "/", "~/x"])
def test_a_bind_must_be_an_absolute_literal_path(bind: str) -> None:
    with pytest.raises(ValidationError, match="absolute host path"):
        m.DataSource(engine="files", bind=bind)


def test_site_paths_map_and_default_to_the_same_path() -> None:
    site = m.Site(role="recovery", docker_host="unix:///x", paths={"/srv/a": "/mnt/a"})
    assert site.host_dir("/srv/a") == "/mnt/a"
    assert site.host_dir("/srv/b") == "/srv/b"
    with pytest.raises(ValidationError, match="absolute host path"):
        m.Site(role="recovery", docker_host="unix:///x", paths={"/srv/a": "rel"})


def test_files_source_needs_a_volume_or_a_bind_not_both() -> None:
    only_path = files.ENGINE.source_problems(m.DataSource(engine="files", path="/data"))
    assert [msg for _, msg in only_path] == [
        "a files source needs a `volume` or a `bind` (a host directory it copies)"
    ]
    both = m.DataSource(engine="files", volume="v", bind="/srv/x")
    assert files.ENGINE.source_problems(both) == [
        (("bind",), "a files source copies a `volume` or a `bind`, not both")
    ]
    assert files.ENGINE.source_problems(m.DataSource(engine="files", bind="/srv/x")) == []


# -- the compose file deployed on a site --------------------------------------------------


def test_mapped_bind_sources_in_short_and_long_syntax() -> None:
    doc = {
        "services": {
            "app": {
                "volumes": [
                    "/srv/uploads/:/data:ro",
                    {"type": "bind", "source": "/srv/uploads", "target": "/d2"},
                    "/srv/other:/o",
                    "named:/n",
                    {"type": "volume", "source": "/srv/uploads", "target": "/v"},
                ]
            }
        }
    }
    out = map_bind_sources(doc, {"/srv/uploads": "/mnt/dr/uploads"})
    assert out["services"]["app"]["volumes"] == [
        "/mnt/dr/uploads:/data:ro",
        {"type": "bind", "source": "/mnt/dr/uploads", "target": "/d2"},
        "/srv/other:/o",
        "named:/n",
        {"type": "volume", "source": "/srv/uploads", "target": "/v"},
    ]


def test_interpolated_bind_sources_are_mapped_by_their_value() -> None:
    doc = {
        "services": {
            "app": {
                "volumes": [
                    "${UPLOAD_LOCATION}:/data",
                    "${MEDIA:-/srv/media}:/media:rw",
                    "${UNSET_DIR:-./rel}:/r",
                ]
            }
        }
    }
    paths = {"/srv/uploads": "/mnt/dr/uploads", "/srv/media": "/mnt/dr/media"}
    out = map_bind_sources(doc, paths, {"UPLOAD_LOCATION": "/srv/uploads/"})
    assert out["services"]["app"]["volumes"] == [
        "/mnt/dr/uploads:/data",
        "/mnt/dr/media:/media:rw",
        "${UNSET_DIR:-./rel}:/r",
    ]


# -- validate -----------------------------------------------------------------------------


def test_unprotected_state_is_warned_about(tmp_path: Path) -> None:
    plan = write(tmp_path, "db: {}\napp: {}\nworker: {}\n")
    warnings = problems(plan, "warning")
    assert problems(plan, "error") == []
    text = "\n".join(warnings)
    assert "service 'db' runs postgresql" in text  # recognised by environment, no source
    assert "volume 'db-data'" in text
    assert sum("volume 'shared'" in w for w in warnings) == 1  # one volume, one warning
    assert f"host directory {tmp_path / 'uploads'}" in text
    assert "anonymous volume at /tmp/scratch-cache" in text
    # a read-only configuration file is not data
    assert not [w for w in warnings if "app.conf" in w and "not backed up" in w]


def test_covered_state_gives_no_warning(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    plan = write(
        tmp_path,
        f"""\
        db:
          data: {{main: {{engine: postgresql, volume: db-data, user: wiki}}}}
        app:
          depends_on: [db]
          data:
            shared: {{engine: files, volume: shared}}
            uploads: {{engine: files, bind: {uploads}}}
        worker:
          depends_on: [app]
        """,
    )
    warnings = problems(plan, "warning")
    assert problems(plan, "error") == []
    assert [w for w in warnings if "not backed up" in w or "no data source" in w] == [
        w for w in warnings if "anonymous" in w
    ]
    assert len([w for w in warnings if "anonymous" in w]) == 1


def test_bind_errors_and_warnings(tmp_path: Path) -> None:
    plan = write(
        tmp_path,
        """\
        db:
          data: {main: {engine: postgresql, volume: db-data, user: wiki}}
        app:
          data:
            a: {engine: files, bind: /srv/elsewhere}
            b: {engine: files, path: /srv/uploads}
        worker:
          data:
            c: {engine: files, bind: /srv/elsewhere/}
        """,
    )
    errors = problems(plan, "error")
    assert any("needs a `volume` or a `bind`" in e for e in errors)
    assert any("already copied by services.app.data.a" in e for e in errors)
    warnings = problems(plan, "warning")
    assert any(
        "service 'app' does not bind-mount host directory /srv/elsewhere" in w for w in warnings
    )


def test_relative_bind_refused_with_location(tmp_path: Path) -> None:
    plan = write(
        tmp_path, "db: {}\napp:\n  data: {u: {engine: files, bind: ./uploads}}\nworker: {}\n"
    )
    result = validate_file(plan, engines=registry.catalog())
    errs = [p for p in result.problems if p.severity == "error"]
    assert errs and "absolute host path" in errs[0].message
    assert errs[0].path.startswith("services.app.data.u")


def test_a_drill_restores_bind_sources_into_its_own_volumes() -> None:
    """Never into production's directory: into the volume the drill's compose file
    mounts in its place."""
    from drplan.plan.isolation import bind_volume, isolate_bind_sources, isolate_compose

    docs = [{"services": {"app": {"volumes": ["./uploads:/u", "/srv/logs:/l:ro"]}}}]
    plan = m.Plan.model_validate(
        {
            "version": 1,
            "stack": {"name": "s", "compose": "c.yml"},
            "sites": {"a": {"role": "primary", "docker_host": "unix:///x"}},
            "repositories": {"r": {"url": "/r", "role": "primary", "password": {"env": "P"}}},
            "backup": {"schedule": {"daily_at": "03:00"}},
            "objectives": {"rto": "1h", "rpo": "24h"},
            "services": {
                "app": {
                    "data": {
                        "up": {"engine": "files", "bind": "/proj/uploads/"},
                        "logs": {"engine": "files", "bind": "/srv/logs"},
                    }
                }
            },
        }
    )
    isolate_bind_sources(plan, docs, ["/proj"])
    data = plan.services["app"].data
    isolated = isolate_compose(docs, ["app"])[0]["services"]["app"]["volumes"]
    assert (data["up"].bind, data["up"].volume) == (None, bind_volume("./uploads"))
    assert isolated[0]["source"] == data["up"].volume
    # read-only in compose: kept by the drill, so the source gets a volume nothing mounts
    assert (data["logs"].bind, data["logs"].volume) == (None, bind_volume("/srv/logs"))
    assert isolated[1] == "/srv/logs:/l:ro"
