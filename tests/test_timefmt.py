"""The public time helpers every plugin formats and parses times with."""

from __future__ import annotations

import pytest

from raspapi.plugin import Invalid, parse_rfc3339, parse_when, rfc3339, rfc3339_ms


def test_rfc3339_is_whole_seconds_in_utc():
    assert rfc3339(1710065471.9) == "2024-03-10T10:11:11Z"
    assert rfc3339(None) is None


def test_rfc3339_out_of_range_raises_unless_lenient():
    with pytest.raises((OverflowError, OSError, ValueError)):
        rfc3339(1e20)
    assert rfc3339(1e20, lenient=True) is None


def test_rfc3339_ms_keeps_milliseconds_and_drops_a_zero_fraction():
    assert rfc3339_ms(1700000000123) == "2023-11-14T22:13:20.123Z"
    assert rfc3339_ms(1700000000000) == "2023-11-14T22:13:20Z"
    assert rfc3339_ms(1700000000001) == "2023-11-14T22:13:20.001Z"


def test_parse_rfc3339_needs_a_zone():
    assert parse_rfc3339("2024-03-10T12:11:11+02:00") == 1710065471.0
    with pytest.raises(ValueError):
        parse_rfc3339("2024-03-10T10:11:11")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("now", 1000.0), ("-30m", 1000.0 - 1800), ("-1.5h", 1000.0 - 5400), ("-2d", 1000.0 - 172800)],
)
def test_parse_when_reads_relative_times(text, expected):
    assert parse_when("since", text, 1000.0) == expected


def test_parse_when_names_the_field_it_refuses():
    with pytest.raises(Invalid) as caught:
        parse_when("until", "yesterday", 1000.0)
    assert str(caught.value).startswith("until: ")
