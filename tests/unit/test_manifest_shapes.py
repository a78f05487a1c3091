"""Every field of a run manifest read back from a repository is checked against its real
shape, and a forged one is refused naming the field (threat model, class 1). The
repository-level test (tests/integration/test_hostile_repository.py) runs the commands."""

from __future__ import annotations

import json

import pytest

from drplan.errors import InputError, OperationError
from drplan.store import manifest as mf
from drplan.store import restic
from tests.integration.test_hostile_repository import FORGED, _set, base_manifest


def test_the_base_manifest_is_valid():
    m = mf.parse(
        json.dumps(base_manifest("campus", "20261130T100000Z-beef")).encode(), where="test"
    )
    assert m.sources[0].snapshot == "ab" * 32


@pytest.mark.parametrize(("field", "value", "named"), FORGED, ids=[f for f, _, _ in FORGED])
def test_each_forged_field_is_refused_by_name(field, value, named):
    doc = base_manifest("campus", "20261130T100000Z-beef")
    _set(doc, field, value)
    with pytest.raises(OperationError, match=f"field {named}"):
        mf.parse(json.dumps(doc).encode(), where="test")


@pytest.mark.parametrize("value", ["--password-command=x", "latest", "abc", "AB" * 32, ""])
def test_restic_never_gets_a_snapshot_argument_of_another_shape(value):
    with pytest.raises(InputError):
        restic.snapshot_id(value)


@pytest.mark.parametrize("value", ["relative", "/a/../b", "//x", "/a\nb", "/a/"])
def test_restic_never_gets_a_path_of_another_shape(value):
    with pytest.raises(InputError):
        restic.stored_path(value)
