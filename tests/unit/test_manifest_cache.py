"""Manifests read from a repository are cached by snapshot id (pure logic: a fake
repository stands in for restic and counts what it is asked)."""

from __future__ import annotations

import pytest

from drplan.errors import OperationError
from drplan.store import manifest as mf
from tests.unit.drill_helpers import fake_run


class FakeRepo:
    where = "repository fake"

    def __init__(self, data: bytes) -> None:
        self.data, self.reads = data, 0

    def read_file(self, snapshot: str, path: str, *, what: str) -> bytes:
        self.reads += 1
        return self.data


SNAP = {"id": "a1" * 32, "short_id": "a1a1a1a1"}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRPLAN_CACHE_DIR", str(tmp_path))
    return tmp_path / "manifests"


def test_a_manifest_is_read_from_the_repository_once():
    repo = FakeRepo(fake_run().model_dump_json().encode())
    first = mf.read(repo, SNAP)
    again = mf.read(repo, SNAP)
    assert repo.reads == 1
    assert again == first and again is not first  # a fresh object each time


def test_a_damaged_cache_entry_is_read_again_from_the_repository(cache):
    repo = FakeRepo(fake_run().model_dump_json().encode())
    mf.read(repo, SNAP)
    (cache / f"{SNAP['id']}.json").write_text('{"plan": ')
    assert mf.read(repo, SNAP).run_id == fake_run().run_id
    assert repo.reads == 2
    assert mf.read(repo, SNAP) and repo.reads == 2  # repaired


def test_only_full_snapshot_ids_are_cached(cache):
    repo = FakeRepo(fake_run().model_dump_json().encode())
    short = {"id": "a1a1a1a1", "short_id": "a1a1a1a1"}
    mf.read(repo, short)
    mf.read(repo, short)
    assert repo.reads == 2 and not cache.exists()


def test_an_unreadable_manifest_is_an_error_and_is_not_cached(cache):
    repo = FakeRepo(b"not json")
    with pytest.raises(OperationError, match="a1a1a1a1: run manifest is unreadable"):
        mf.read(repo, SNAP)
    assert not (cache / f"{SNAP['id']}.json").exists()


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DRPLAN_CACHE_DIR", str(blocker))  # a file where a directory should be
    repo = FakeRepo(fake_run().model_dump_json().encode())
    assert mf.read(repo, SNAP).run_id == mf.read(repo, SNAP).run_id
    assert repo.reads == 2
