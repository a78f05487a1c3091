"""The stored PostgreSQL dump as psql replays it: roles tolerant, each database in one
transaction committed only once its whole section has arrived (threat model, class 6)."""

from __future__ import annotations

import pytest

from drplan.sources.postgresql import MARK, conninfo, quote_ident, replay

DUMP = (
    b"-- drplan: globals\nCREATE ROLE campus;\n\n"
    + MARK
    + b"campus\nCREATE DATABASE campus;\n\\connect campus\n"
    b"CREATE TABLE t (x text);\nCOPY public.t (x) FROM stdin;\n"
    + MARK
    + b"not-a-mark-inside-copy\n\\connect not-a-connect\n\\.\n"
    + MARK
    + b"exam\nCREATE DATABASE exam;\n\\connect exam\nCREATE TABLE u (y int);\n"
)


def _lines(chunks) -> list[bytes]:
    return b"".join(chunks).split(b"\n")


def test_each_database_is_one_transaction_and_roles_are_tolerant():
    out = _lines(replay([DUMP[:37], DUMP[37:90], DUMP[90:]]))
    assert out[0] == b"\\set ON_ERROR_STOP off"
    assert out.index(b"\\set ON_ERROR_STOP on") < out.index(b"CREATE DATABASE campus;")
    c = out.index(b"\\connect campus")
    assert out[c + 1] == b"BEGIN;"
    # COPY data that looks like a mark or a meta-command is data
    assert b"COMMIT;" not in out[c : out.index(b"\\.")]
    e = out.index(b"CREATE DATABASE exam;")
    assert b"COMMIT;" in out[out.index(b"\\.") : e]
    assert [line for line in out if line][-1] == b"COMMIT;"


def test_a_stream_that_fails_never_gets_its_commit():
    def failing():
        yield DUMP[:120]
        raise OSError("restic dump killed")

    got = []
    with pytest.raises(OSError):
        for chunk in replay(failing()):
            got.append(chunk)
    assert b"COMMIT;" not in b"".join(got)


def test_names_from_the_workload_stay_names():
    assert quote_ident('a"; DROP DATABASE x; --') == '"a""; DROP DATABASE x; --"'
    assert conninfo("host=evil dbname=x") == "dbname='host=evil dbname=x'"
    assert conninfo("it's\\") == "dbname='it\\'s\\\\'"
