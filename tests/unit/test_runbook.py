"""The runbook from a plan and a run's manifest, without an engine or a repository."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from drplan import runbook as rb
from drplan.render import png_stats, svg_to_png
from drplan.store.restic import Repository
from tests.unit.drill_helpers import campus_plan, drill_record, fake_run

SECRET = "s3cret-never-in-a-runbook"
SH = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def _book(tmp_path, edit=None, drills=None, stack="handmade"):
    pc = campus_plan(tmp_path, edit)
    repo = Repository(name="local", url=str(tmp_path / "repo"), password=SECRET)
    book = rb.build(pc, repo, manifest=fake_run(pc.name), drills=drills or [], stack=stack)
    out = tmp_path / "runbook"
    rb.write(book, out)
    return book, out


def test_one_file_per_step_numbered_in_a_dependency_order(tmp_path):
    book, out = _book(tmp_path)
    files = sorted(out.glob("[0-9][0-9]-*.md"))
    assert len(files) == len(book["steps"]) == len(book["_schedule"].steps)
    number = {p.id: p.number for p in book["steps"]}
    for page in book["steps"]:
        for dep, f in page.after:
            assert number[dep] < page.number, (dep, page.id)
            assert (out / f).exists()
    index = (out / "README.md").read_text()
    for page in book["steps"]:
        assert f"]({page.file})" in index
    assert "Critical path:" in index and "room B12" in index and "Ada Lovelace" in index
    restore = (out / next(p.file for p in book["steps"] if p.id == "restore:db/pg")).read_text()
    assert "[health:db](" in restore  # preconditions link to the steps waited for
    assert "technical coordination: Ada Lovelace (+33 3 00 00 00 01)" in restore


def test_commands_come_from_the_manifest_and_are_valid_bash(tmp_path):
    book, out = _book(tmp_path)
    text = {p.id: (out / p.file).read_text() for p in book["steps"]}
    run = book["run"]
    pg = next(s["snapshot"] for s in run["sources"] if s["service"] == "db")
    assert (
        f"restic dump --no-lock -- {run['images_snapshot']} /images.tar | docker load"
        in text["load-images"]
    )
    assert "sha256:" + "1" * 64 in text["load-images"]
    assert f"-- {pg} /db.pg.sql" in text["restore:db/pg"]
    assert 'DROP DATABASE IF EXISTS "campus" WITH (FORCE)' in text["restore:db/pg"]
    assert (
        "docker volume inspect --format '{{.Mountpoint}}' -- handmade_files"
        in text["restore:web/files"]
    )
    assert "chown -- 100:101" in text["restore:redis/cache"]
    assert "docker service scale --detach -- handmade_web=1" in text["start:web"]
    assert "ab" * 32 in text["validate:web"]  # the tree fingerprint of the backup
    assert (
        "SELECT count(*) FROM public.items" in text["validate:db"] and "42" in text["validate:db"]
    )
    blocks = [b for t in text.values() for b in SH.findall(t)]
    assert len(blocks) >= len(text)
    for block in blocks:
        proc = subprocess.run(["bash", "-n", "-c", block], capture_output=True, text=True)
        assert proc.returncode == 0, (block, proc.stderr)


def test_no_password_anywhere_and_the_compose_is_at_zero(tmp_path):
    import yaml

    _, out = _book(tmp_path)
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="replace"), f
    assert "RESTIC_PASSWORD_FILE" in (out / "README.md").read_text()
    compose = yaml.safe_load((out / "compose" / "compose.yml").read_text())
    for svc in compose["services"].values():
        assert svc["deploy"]["replicas"] == 0
        assert "depends_on" not in svc
        assert "ports" not in svc  # another name than production's on that site


def test_profile_and_remote_engine(tmp_path):
    def remote(plan):
        plan["sites"]["recovery"]["docker_host"] = "tcp://dr.example:2376"

    pc = campus_plan(tmp_path, remote)
    repo = Repository(name="local", url="/r", password=SECRET)
    book = rb.build(pc, repo, manifest=fake_run(pc.name), drills=[], profile="exams-only")
    assert set(book["services"]) == {"exam", "db", "redis"}
    assert book["stack"] == pc.name
    out = tmp_path / "rb"
    rb.write(book, out)
    exam = (out / next(p.file for p in book["steps"] if p.id == "restore:exam/files")).read_text()
    assert (
        "docker run --rm -i --network none "
        "--mount=type=volume,source=campus_exam-files,target=/volume"
    ) in exam
    assert "Mountpoint" not in exam


def test_durations_measured_by_drills_are_used(tmp_path):
    rec = drill_record(steps={"start:db": {"status": "ok", "seconds": 123.0}})
    book, out = _book(tmp_path, drills=[rec])
    page = next(p for p in book["steps"] if p.id == "start:db")
    assert page.expected_s == 123.0 and page.basis == "measured by drills"
    assert "2m 3s (measured by drills)" in (out / page.file).read_text()


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs librsvg2-bin")
def test_html_is_one_file_and_the_chart_renders(tmp_path):
    book, out = _book(tmp_path)
    html = (out / "runbook.html").read_text()
    assert "<svg" in html and "<?xml" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no external asset
    assert html.count('class="rb-step"') == len(book["steps"])
    assert SECRET not in html
    stats = png_stats(svg_to_png((out / "gantt.svg").read_text(), tmp_path / "g.png"))
    assert stats.width > 600 and stats.height > 300 and stats.colours > 8
    assert 0.02 < stats.ink < 0.95


def test_what_the_plan_says_of_services_sources_and_people_is_in_the_runbook(tmp_path):
    """Descriptions and contacts are read by the runbook (the schema-walk rule), and an
    operator finds them in both the Markdown and the HTML runbooks."""

    def edit(plan):
        plan["services"]["db"]["description"] = "Exam grades, PostgreSQL 15"
        first = next(iter(plan["services"]["db"]["data"]))
        plan["services"]["db"]["data"][first]["description"] = "every exam since 2019"
        plan["repositories"]["local"]["description"] = "vault in building C"
        ada = plan["crisis_cell"]["people"]["ada"]
        ada.update(organisation="DNum infrastructure", chat="#dr-room")

    _, out = _book(tmp_path, edit)
    index = (out / "README.md").read_text() if (out / "README.md").exists() else ""
    index = index or next(p.read_text() for p in out.glob("*.md") if "Crisis cell" in p.read_text())
    html = (out / "runbook.html").read_text()
    for text in (index, html):
        for value in ("Exam grades, PostgreSQL 15", "every exam since 2019", "DNum infrastructure"):
            assert value in text
    assert "#dr-room" in html and "vault in building C" in index


@pytest.mark.parametrize(
    ("site", "lines"),
    [
        (
            {
                "docker_host": "tcp://dr.example:2376",
                "tls": {
                    "ca": "/etc/dr/ca.pem",
                    "cert": "/etc/dr/cert.pem",
                    "key": "/etc/dr/key.pem",
                },
            },
            ["export DOCKER_TLS_VERIFY=1", "export DOCKER_CERT_PATH=/etc/dr"],
        ),
        (
            {"docker_host": "ssh://ops@dr.example", "ssh_config": "/etc/drplan/ssh_config"},
            ["the Host entries of /etc/drplan/ssh_config in ~/.ssh/config"],
        ),
    ],
)
def test_a_remote_site_tells_the_docker_cli_how_to_reach_it(tmp_path, site, lines):
    """What drplan was told of the engine (TLS files, an ssh configuration) reaches the
    shell the runbook's commands run in, in the Markdown and the HTML alike."""
    _, out = _book(tmp_path, lambda p: p["sites"]["recovery"].update(site))
    index = (out / "README.md").read_text()
    html = (out / "runbook.html").read_text()
    [block] = [b for b in SH.findall(index) if "DOCKER_HOST" in b]
    assert subprocess.run(["bash", "-n", "-c", block]).returncode == 0
    for line in lines:
        assert line in block, block
        assert line in html.replace("&#39;", "'"), line
    pre = html[html.index("<pre>export DOCKER_HOST") : html.index("</pre>")]
    assert pre.count("\nexport ") == block.count("\nexport "), (pre, block)
