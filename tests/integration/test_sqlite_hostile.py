"""A SQLite database with hostile table names, fingerprinted in real helper containers.

The workload names its tables; a name such as ``x";SELECT writefile('/volume/canary',..)``
must neither run (the helper holds the live volume read-write at backup time, so the
canary would land in it) nor spoil the fingerprint. The stored copy read back for
``drplan check`` is fingerprinted in a helper with no network and no mounts, and that
helper does not outlive the check.
"""

from __future__ import annotations

import sqlite3 as pysqlite
from pathlib import Path

import pytest

from drplan.plan import model as m
from drplan.platform.docker import HELPER_LABEL, DockerEngine
from drplan.sources import sqlite as src
from drplan.sources import volume as vol
from drplan.sources.base import SourceContext

pytestmark = pytest.mark.integration

CANARY = "/volume/canary"
NAMES = {
    "x": 1,
    f"x\";SELECT/**/writefile('{CANARY}','pwned');--": 2,
    f"y]; SELECT writefile('{CANARY}','pwned'); --": 3,
    "zz with space\nand newline": 4,
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _database(path: Path) -> bytes:
    db = pysqlite.connect(path)
    for name, rows in NAMES.items():
        db.execute(f"CREATE TABLE {_q(name)} (a)")
        db.executemany(f"INSERT INTO {_q(name)} VALUES (?)", [(i,) for i in range(rows)])
    db.commit()
    db.close()
    return path.read_bytes()


class _Repo:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def dump(self, snapshot: str, path: str, *, what: str):
        yield self.data


@pytest.fixture
def engine(testbed):
    e = DockerEngine("primary", testbed["primary"])
    yield e
    e.close()


@pytest.fixture
def ctx(engine, unique_name, tmp_path):
    name = unique_name("hostilesqlite")
    c = SourceContext(
        engine=engine,
        repo=None,  # type: ignore[arg-type]
        stack=name,
        plan_name=name,
        service="metrics",
        name="state",
        spec=m.DataSource(engine="sqlite", volume="state", path="/state/h.db"),
        run_id="test",
        volume=f"{name}_state",
        mount_target="/state",
    )
    yield c
    engine.remove_helpers({"org.drplan.plan": name})
    engine.remove_volume(c.volume)


def _exists_in_volume(ctx, path: str) -> bool:
    with vol.holding(ctx.engine, ctx.volume, labels=vol.labels_of(ctx)) as (c, _):
        res = ctx.engine.exec_run(c, ["ls", path], what="test", check=False)
    return res.exit_code == 0


def test_live_fingerprint_runs_no_table_name(ctx, tmp_path: Path) -> None:
    data = _database(tmp_path / "h.db")
    vol.put_file(ctx, "h.db", [data])
    fp = src.SOURCE.fingerprint(ctx)
    assert not _exists_in_volume(ctx, CANARY), "a table name wrote into the workload's volume"
    assert fp["tables"] == NAMES
    assert len(fp["sha3"]) == 56


def test_stored_fingerprint_in_a_sealed_helper(ctx, engine, tmp_path: Path) -> None:
    data = _database(tmp_path / "h.db")
    vol.put_file(ctx, "h.db", [data])
    live = src.SOURCE.fingerprint(ctx)
    labels = {"org.drplan.plan": ctx.plan_name, "org.drplan.run": "check"}
    record = type("Rec", (), {"snapshot": "s", "path": "/x.sqlite", "service": "m", "source": "s"})
    stored = src.SOURCE.stored_fingerprint(_Repo(data), record, engine=engine, labels=labels)
    assert stored == live
    assert src.SOURCE.compare(live, stored) == []
    left = engine.client.containers.list(
        all=True, filters={"label": [f"{HELPER_LABEL}=1", f"org.drplan.plan={ctx.plan_name}"]}
    )
    assert left == []
