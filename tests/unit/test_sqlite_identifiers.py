"""Workload-chosen SQLite table names never become SQL (or files written) on drplan's side.

A service owns its SQLite database, so it names its tables: ``x";SELECT writefile(...)--``
is a valid name. drplan fingerprints that database at backup time (in a helper container
holding the live volume) and again at ``drplan check`` (the stored copy, possibly with
this host's sqlite3, possibly as root). The name must reach SQL only quoted, and sqlite3
must read in safe mode, so that the canary file below is never written and the table is
still counted under its exact name.
"""

from __future__ import annotations

import shutil
import sqlite3 as pysqlite
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from drplan.errors import OperationError
from drplan.sources import sqlite as src

HOSTILE = [
    "plain",
    'quo"te',
    '"',
    '""',
    "a]b",
    "[bracketed]",
    "`tick`",
    "semi;colon",
    "it's",
    "with space",
    "new\nline",
    "--comment",
    "/*c*/",
    "ünïcødé ✝",
    "x; SELECT writefile('/tmp/pwn','x')",
]

needs_sqlite3 = pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 CLI")


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain", '"plain"'),
        ('quo"te', '"quo""te"'),
        ('"', '""""'),
        ("a]b", '"a]b"'),
        ('x";SELECT 1;--', '"x"";SELECT 1;--"'),
        ("", '""'),
    ],
)
def test_quote_identifier(name: str, quoted: str) -> None:
    assert src.quote_identifier(name) == quoted


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("plain", "'plain'"), ("it's", "'it''s'"), ("''", "''''''"), ('"', "'\"'")],
)
def test_quote_literal(text: str, quoted: str) -> None:
    assert src.quote_literal(text) == quoted


def test_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        src.quote_identifier("a\x00b")
    with pytest.raises(ValueError, match="NUL"):
        src.quote_literal("a\x00b")


@pytest.mark.parametrize("name", HOSTILE)
def test_quoted_names_round_trip_through_sqlite(name: str) -> None:
    """SQLite itself reads the quoted form back as exactly the name, and as one token."""
    db = pysqlite.connect(":memory:")
    db.execute(f"CREATE TABLE {src.quote_identifier(name)} (a)")
    db.execute(f"INSERT INTO {src.quote_identifier(name)} VALUES (1), (2)")
    (stored,) = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchone()
    assert stored == name
    (count,) = db.execute(f"SELECT count(*) FROM {src.quote_identifier(name)}").fetchone()
    assert count == 2
    (back,) = db.execute(f"SELECT {src.quote_literal(name)}").fetchone()
    assert back == name


def test_reads_are_read_only_and_safe() -> None:
    argv = src.sqlite3("/db", "SELECT 1")
    assert argv[:5] == ["sqlite3", "-readonly", "-safe", "-cmd", "PRAGMA trusted_schema=OFF"]
    backup = src.sqlite3("/db", ".backup /tmp/x", readonly=False)
    assert "-safe" not in backup and "-readonly" not in backup  # .backup writes its copy


# -- the real sqlite3 on a crafted database ------------------------------------------------


def _q(name: str) -> str:
    """The test's own quoting, so that building the database does not depend on drplan's."""
    return '"' + name.replace('"', '""') + '"'


def _hostile_db(path: Path, canary: Path) -> dict[str, int]:
    """A database whose table names try to run writefile(canary); the true row counts.

    The first name has no whitespace, so even a reader that splits the table list on
    spaces (as drplan once did) sends it whole into a ``SELECT count(*) FROM "{t}"``."""
    names = {
        "x": 1,
        f"x\";SELECT/**/writefile('{canary}','pwned');--": 2,
        f"y]; SELECT writefile('{canary}','pwned'); --": 3,
        "z\"; ATTACH '/tmp/other.db' AS o; --": 4,
        "zz with space\nand newline": 5,
    }
    db = pysqlite.connect(path)
    for name, rows in names.items():
        q = _q(name)
        db.execute(f"CREATE TABLE {q} (a)")
        db.executemany(f"INSERT INTO {q} VALUES (?)", [(i,) for i in range(rows)])
    db.commit()
    db.close()
    return names


def _sha3sum(path: Path) -> str:
    out = subprocess.run(["sqlite3", "-readonly", str(path), ".sha3sum"], capture_output=True)
    return out.stdout.decode().strip()


class _Repo:
    """Just enough of a Repository: `dump` streams the stored file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.dumped: list[tuple[str, str]] = []

    def dump(self, snapshot: str, path: str, *, what: str):
        self.dumped.append((snapshot, path))
        yield self.data[:1000]
        yield self.data[1000:]


@needs_sqlite3
def test_stored_fingerprint_with_the_host_sqlite3(tmp_path: Path) -> None:
    """``drplan check`` without an engine: this host's sqlite3, and still no file written."""
    canary = tmp_path / "canary"
    db = tmp_path / "stored.sqlite"
    expected = _hostile_db(db, canary)
    repo = _Repo(db.read_bytes())
    record = SimpleNamespace(
        snapshot="abc123", path="/svc.db.sqlite", service="svc", source="db", fingerprint={}
    )
    try:
        fp = src.SOURCE.stored_fingerprint(repo, record)
    finally:
        assert not canary.exists(), "a table name ran writefile() on the host"
    assert repo.dumped == [("abc123", "/svc.db.sqlite")]
    assert fp == {"tables": expected, "sha3": _sha3sum(db)}


class _LocalEngine:
    """An Engine whose exec_run runs the command here, as the helper container would."""

    def exec_run(self, container, argv, *, what, env=None, check=True):
        res = subprocess.run(argv, capture_output=True, check=False)
        if check and res.returncode:
            raise OperationError(f"{argv[0]} exited with {res.returncode}: {res.stderr!r}")
        return SimpleNamespace(exit_code=res.returncode, stdout=res.stdout, stderr=res.stderr)


@needs_sqlite3
def test_backup_fingerprint_with_hostile_names(tmp_path: Path) -> None:
    """The fingerprint taken at backup time (in the helper holding the live volume)."""
    canary = tmp_path / "canary"
    db = tmp_path / "live.sqlite"
    expected = _hostile_db(db, canary)
    ctx = SimpleNamespace(engine=_LocalEngine(), what="service svc, source db (sqlite)")
    try:
        fp = src.SOURCE._fingerprint_file(ctx, object(), str(db))
    finally:
        assert not canary.exists(), "a table name ran writefile()"
    assert fp == {"tables": expected, "sha3": _sha3sum(db)}


@needs_sqlite3
def test_safe_mode_stops_writefile_even_in_our_own_sql(tmp_path: Path) -> None:
    """Belt and braces: were a name ever pasted unquoted, sqlite3 -safe refuses the write."""
    canary = tmp_path / "canary"
    db = tmp_path / "d.sqlite"
    pysqlite.connect(db).close()
    argv = src.sqlite3(str(db), f"SELECT writefile('{canary}', 'pwned')")
    res = subprocess.run(argv, capture_output=True, text=True)
    assert res.returncode != 0 and "safe mode" in res.stderr
    assert not canary.exists()


@needs_sqlite3
def test_many_tables_are_counted_in_batches(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(src, "BATCH_BYTES", 200)
    db = tmp_path / "many.sqlite"
    conn = pysqlite.connect(db)
    expected = {}
    for i in range(40):
        name = f"t{i:02d} {'x' * i}"
        conn.execute(f"CREATE TABLE {_q(name)} (a)")
        conn.executemany(f"INSERT INTO {_q(name)} VALUES (?)", [(j,) for j in range(i)])
        expected[name] = i
    conn.commit()
    conn.close()
    calls = []

    def run(argv):
        calls.append(argv)
        return subprocess.run(argv, capture_output=True, check=True).stdout

    fp = src.fingerprint_db(run, str(db))
    assert fp["tables"] == expected
    assert len(calls) > 3  # the table list, several batches of counts, .sha3sum
    assert all(len(a[-1].encode()) <= 200 + 100 for a in calls)


# -- SQL checks: names from the plan stay names in the client's command line ----------------


class _Capture:
    """An Engine that records the command an SQL check would run in the container."""

    def __init__(self) -> None:
        self.argv: list[str] = []

    def exec_run(self, container, argv, *, what, env=None, check=True):
        self.argv = argv
        return SimpleNamespace(exit_code=0, stdout=b"1\n", stderr=b"")


def _check_argv(query: str = "SELECT 1", **source) -> list[str]:
    from drplan.actions import service_checks
    from drplan.plan import model as m

    svc = m.Service(data={"db": m.DataSource(**source)})
    check = m.SqlCheck(type="sql", query=query, expect="1")
    engine = _Capture()
    assert service_checks._sql(engine, object(), check, svc, "test") is None  # type: ignore[arg-type]
    return engine.argv


def test_psql_database_is_not_a_connection_string() -> None:
    """psql takes a -d value holding '=' as a connection string: it must stay a name."""
    argv = _check_argv(engine="postgresql", databases=["host=attacker.invalid dbname=x"])
    assert "host=attacker.invalid dbname=x" not in argv
    assert "--dbname=dbname='host=attacker.invalid dbname=x'" in argv
    argv = _check_argv(engine="postgresql", databases=["it's \\ odd"])
    assert "--dbname=dbname='it\\'s \\\\ odd'" in argv


def test_mariadb_database_is_not_an_option() -> None:
    db = "--init-command=DROP DATABASE prod"
    argv = _check_argv(engine="mariadb", databases=[db], user="-u")
    assert db not in argv  # a positional argument starting with - is an option
    assert f"--database={db}" in argv and "--user=-u" in argv


def test_sqlite_path_and_query_are_not_options() -> None:
    argv = _check_argv(query="-- a comment\nSELECT 1", engine="sqlite", path="-cmd")
    assert argv[0] == "sqlite3"
    assert not any(a.startswith("-") for a in argv[1:])
    assert argv[1] == "./-cmd" and argv[2].strip() == "-- a comment\nSELECT 1"
