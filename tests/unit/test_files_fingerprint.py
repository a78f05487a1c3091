"""The files source's fingerprint from listings around restic's run, or None to read it
back from the snapshot."""

from __future__ import annotations

from drplan.sources.files import quiet_fingerprint, tree_fingerprint

LISTED = [("a/x.bin", 10, "1700000000.1"), ("b.txt", 0, "1700000000.2"), ("c", 5, "1.0")]
SUMMARY = {"total_files_processed": 3, "total_bytes_processed": 15}


def test_a_quiet_volume_gives_the_listings_fingerprint():
    fp = quiet_fingerprint(LISTED, list(reversed(LISTED)), SUMMARY)
    assert fp == tree_fingerprint([("a/x.bin", 10), ("b.txt", 0), ("c", 5)])
    assert fp["files"] == 3 and fp["bytes"] == 15


def test_any_change_during_the_run_falls_back_to_the_snapshot():
    touched = [LISTED[0], ("b.txt", 0, "1700000009.0"), LISTED[2]]
    assert quiet_fingerprint(LISTED, touched, SUMMARY) is None
    assert quiet_fingerprint(LISTED, LISTED[:2], SUMMARY) is None  # a file removed
    assert quiet_fingerprint(LISTED, [*LISTED, ("d", 1, "2.0")], SUMMARY) is None
    assert quiet_fingerprint(LISTED, None, SUMMARY) is None  # no second listing


def test_restic_must_have_counted_the_same_files_and_bytes():
    assert quiet_fingerprint(LISTED, LISTED, {**SUMMARY, "total_files_processed": 4}) is None
    assert quiet_fingerprint(LISTED, LISTED, {**SUMMARY, "total_bytes_processed": 14}) is None
    assert quiet_fingerprint(LISTED, LISTED, {}) is None
