"""The files source's fingerprint from listings around restic's run (or None, to read it
back from the snapshot), and the halves a big volume's restore is shared in."""

from __future__ import annotations

from drplan.sources.files import quiet_entries, tree_fingerprint
from drplan.sources.split import restore_split

LISTED = [("a/x.bin", 10, "1700000000.1"), ("b.txt", 0, "1700000000.2"), ("c", 5, "1.0")]
SUMMARY = {"total_files_processed": 3, "total_bytes_processed": 15}
MIB = 1 << 20


def test_a_quiet_volume_gives_the_listings_entries():
    entries = quiet_entries(LISTED, list(reversed(LISTED)), SUMMARY)
    assert entries == [("a/x.bin", 10), ("b.txt", 0), ("c", 5)]
    fp = tree_fingerprint(entries)
    assert fp["files"] == 3 and fp["bytes"] == 15


def test_any_change_during_the_run_falls_back_to_the_snapshot():
    touched = [LISTED[0], ("b.txt", 0, "1700000009.0"), LISTED[2]]
    assert quiet_entries(LISTED, touched, SUMMARY) is None
    assert quiet_entries(LISTED, LISTED[:2], SUMMARY) is None  # a file removed
    assert quiet_entries(LISTED, [*LISTED, ("d", 1, "2.0")], SUMMARY) is None
    assert quiet_entries(LISTED, None, SUMMARY) is None  # no second listing


def test_restic_must_have_counted_the_same_files_and_bytes():
    assert quiet_entries(LISTED, LISTED, {**SUMMARY, "total_files_processed": 4}) is None
    assert quiet_entries(LISTED, LISTED, {**SUMMARY, "total_bytes_processed": 14}) is None
    assert quiet_entries(LISTED, LISTED, {}) is None


def test_a_big_volume_is_split_near_half_of_its_bytes():
    entries = [(f"{d:02d}/f{i}", MIB) for d in range(20) for i in range(20)]
    halves = restore_split(entries, min_bytes=1)
    assert halves is not None and 8 <= len(halves) <= 11
    taken = sum(s for p, s in entries if p.split("/")[0] in halves)
    assert 0.35 <= taken / (400 * MIB) <= 0.65


def test_the_split_descends_into_the_directory_holding_most_of_the_data():
    entries = [
        ("config.php", 100),
        *((f"filedir/{h:02x}/blob{i}", MIB) for h in range(16) for i in range(4)),
    ]
    halves = restore_split(entries, min_bytes=1)
    assert halves and all(h.startswith("filedir/") for h in halves)


def test_no_split_when_small_unbalanced_too_many_patterns_or_glob_names():
    assert restore_split([("a", MIB), ("b", MIB)]) is None  # under the minimum size
    assert restore_split([("a", 100 * MIB), ("b", MIB)], min_bytes=1) is None
    flat = [(f"f{i}", MIB) for i in range(1000)]
    assert restore_split(flat, min_bytes=1) is None  # 500 patterns: too many
    assert restore_split([("[a]", MIB), ("b", MIB)], min_bytes=1) is None
    assert restore_split([], min_bytes=1) is None
