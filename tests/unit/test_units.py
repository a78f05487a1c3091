"""Durations and sizes as humans write them."""

import pytest

from drplan.plan.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        (90, 90),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("1w", 604800),
        ("2h 30m", 9000),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "2x", "h", "-1s", -5, True, None, [], "1h-", float("nan")])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10GiB", 10 * 2**30),
        ("500MB", 500 * 10**6),
        ("2G", 2 * 2**30),
        (1024, 1024),
        ("1.5KiB", 1536),
        ("7 B", 7),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "10 parsecs", "GiB", -1, False, {}])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_formats():
    assert format_duration(3725) == "1h 2m 5s"
    assert format_duration(None) == "-"
    assert format_duration(45) == "45s"
    assert format_size(10 * 2**30) == "10.0 GiB"
