"""`drplan runbook -o DIR` destroys nothing it did not write.

It writes only into a new or empty directory, or one it wrote a runbook into before
(marked by `.drplan-runbook`, which lists its files), and there replaces only its own
files. Compose files are kept under their path relative to the plan, so two of the same
base name in two folders are both kept.
"""

from __future__ import annotations

import json
import re

import pytest

from drplan import runbook as rb
from drplan.errors import InputError
from drplan.runbook.output import MARKER
from drplan.store import manifest as mf
from drplan.store.restic import Repository
from tests.unit.crisis_helpers import run_cli
from tests.unit.drill_helpers import CAMPUS, campus_plan

SECRET = "s3cret-never-in-a-runbook"


def _run(name: str = "campus") -> mf.Manifest:
    """A complete run of the campus plan (ids in their real shapes)."""

    def src(service, source, engine, n, path, fp):
        return mf.SourceRecord(
            service=service,
            source=source,
            engine=engine,
            method="dump",
            consistency="x",
            snapshot=f"{n:08x}",
            path=path,
            bytes=1000,
            seconds=1.0,
            started_at="2026-01-01T00:00:00Z",
            finished_at="2026-01-01T00:00:01Z",
            fingerprint=fp,
        )

    return mf.Manifest(
        plan=name,
        stack=name,
        run_id="20260101T000000Z-abcd",
        host="h",
        drplan_version="0",
        started_at="2026-01-01T00:00:00Z",
        rpo_point="2026-01-01T00:00:00Z",
        complete=True,
        sources=[
            src("db", "pg", "postgresql", 1, "/db.pg.sql", {"databases": ["campus"]}),
            src("redis", "cache", "redis", 2, "/redis.cache.rdb", {"keys": 7}),
            src("web", "files", "files", 3, "/volume", {"files": 3, "tree": "ab" * 32}),
            src("exam", "files", "files", 4, "/volume", {"files": 0, "tree": "cd" * 32}),
        ],
        images={"drplan-tb/app:latest": "sha256:" + "1" * 64},
        images_snapshot="0000abcd",
    )


def _book(tmp_path, edit=None, profile=None):
    pc = campus_plan(tmp_path, edit)
    repo = Repository(name="local", url=str(tmp_path / "repo"), password=SECRET)
    return rb.build(pc, repo, manifest=_run(pc.name), drills=[], profile=profile)


def _tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _foreign(tmp_path):
    """Somebody's directory, holding files with the names a runbook uses."""
    d = tmp_path / "mine"
    (d / "compose").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes")
    (d / "README.md").write_text("my readme")
    (d / "01-prepare-site.md").write_text("my step")
    (d / "compose" / "compose.yml").write_text("services: {}\n")
    return d


def test_a_foreign_non_empty_directory_is_refused_and_left_intact(tmp_path):
    book = _book(tmp_path)
    d = _foreign(tmp_path)
    before = _tree(d)
    with pytest.raises(InputError, match="not written by drplan") as exc:
        rb.write(book, d)
    assert str(d) in str(exc.value)
    assert _tree(d) == before
    assert sorted(p.name for p in d.iterdir()) == [
        "01-prepare-site.md",
        "README.md",
        "compose",
        "notes.txt",
    ]


def test_the_cli_refuses_it_with_exit_code_2_before_reading_the_repository(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("DRPLAN_REPO_PASSWORD", raising=False)  # never asked for
    campus_plan(tmp_path)
    d = _foreign(tmp_path)
    before = _tree(d)
    code, _, err = run_cli(["runbook", str(tmp_path / "drplan.yml"), "-o", str(d)], capsys)
    assert code == 2, err
    assert str(d) in err and "not written by drplan" in err
    assert "Traceback" not in err
    assert _tree(d) == before
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run_cli(["runbook", str(tmp_path / "drplan.yml"), "-o", str(afile)], capsys)
    assert code == 2 and "not a directory" in err and "Traceback" not in err
    assert afile.read_text() == "x"


def test_a_new_or_empty_directory_is_written_and_marked(tmp_path):
    book = _book(tmp_path)
    (tmp_path / "empty").mkdir()
    for d in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        rb.write(book, d)
        marker = json.loads((d / MARKER).read_text())
        assert set(marker["files"]) == set(_tree(d)) - {MARKER}
        assert "README.md" in marker["files"] and "compose/compose.yml" in marker["files"]


def test_rerunning_into_its_own_directory_replaces_only_its_files(tmp_path):
    out = tmp_path / "rb"
    rb.write(_book(tmp_path), out)
    full_steps = {p.name for p in out.glob("[0-9][0-9]-*.md")}
    (out / "notes.txt").write_text("added by the operator")
    (out / "compose" / "notes.md").write_text("added by the operator")
    (out / "99-my-own-step.md").write_text("added by the operator")

    small = _book(tmp_path, profile="exams-only")
    rb.write(small, out)
    steps = {p.name for p in out.glob("[0-9][0-9]-*.md")}
    assert steps == {p.file for p in small["steps"]} | {"99-my-own-step.md"}
    assert steps != full_steps | {"99-my-own-step.md"}  # stale step files are gone
    for f in ("notes.txt", "compose/notes.md", "99-my-own-step.md"):
        assert (out / f).read_text() == "added by the operator"
    assert "exams-only" in (out / "README.md").read_text()
    listed = set(json.loads((out / MARKER).read_text())["files"])
    assert listed == set(_tree(out)) - {
        MARKER,
        "notes.txt",
        "compose/notes.md",
        "99-my-own-step.md",
    }


def test_in_its_own_directory_a_file_it_did_not_write_is_not_overwritten(tmp_path):
    out = tmp_path / "rb"
    small = _book(tmp_path, profile="exams-only")
    rb.write(small, out)
    full = _book(tmp_path)
    new = sorted({p.file for p in full["steps"]} - {p.file for p in small["steps"]})
    assert new
    (out / new[0]).write_text("the operator's")
    before = _tree(out)
    with pytest.raises(InputError, match=re.escape(f"{new[0]} exists and was not written")):
        rb.write(full, out)
    assert _tree(out) == before


def test_a_link_planted_in_its_directory_is_replaced_not_followed(tmp_path):
    out = tmp_path / "rb"
    book = _book(tmp_path)
    rb.write(book, out)
    outside = tmp_path / "precious"
    outside.write_text("precious")
    (out / "README.md").unlink()
    (out / "README.md").symlink_to(outside)
    rb.write(book, out)
    assert outside.read_text() == "precious"
    assert not (out / "README.md").is_symlink()
    assert "Recovery runbook" in (out / "README.md").read_text()


def test_compose_files_of_the_same_name_in_two_folders_are_both_kept(tmp_path):
    def two_files(plan):
        for sub in ("a", "b"):
            (tmp_path / sub).mkdir()
        (tmp_path / "a" / "compose.yml").write_text((CAMPUS / "compose.yml").read_text())
        (tmp_path / "b" / "compose.yml").write_text(
            "services:\n  web:\n    environment: {FROM_B: 'yes'}\n"
        )
        plan["stack"]["compose"] = ["a/compose.yml", "b/compose.yml"]

    book = _book(tmp_path, two_files)
    out = tmp_path / "rb"
    rb.write(book, out)
    a = (out / "compose" / "a" / "compose.yml").read_text()
    b = (out / "compose" / "b" / "compose.yml").read_text()
    assert "drplan-tb/postgres:15" in a and "FROM_B" not in a
    assert "FROM_B" in b and "postgres" not in b
    assert not (out / "compose" / "compose.yml").exists()
    page = next(p for p in book["steps"] if p.id == "create-volumes")
    deploy = (out / page.file).read_text()
    assert (
        "--compose-file=compose/a/compose.yml --compose-file=compose/b/compose.yml -- campus"
    ) in deploy


def test_compose_files_that_would_collide_are_refused(tmp_path):
    def colliding(plan):
        (tmp_path / "a b").mkdir()
        (tmp_path / "a_b").mkdir()
        for sub in ("a b", "a_b"):
            (tmp_path / sub / "compose.yml").write_text((CAMPUS / "compose.yml").read_text())
        plan["stack"]["compose"] = ["a b/compose.yml", "a_b/compose.yml"]

    with pytest.raises(InputError, match=re.escape("both be written as compose/a_b/compose.yml")):
        _book(tmp_path, colliding)
