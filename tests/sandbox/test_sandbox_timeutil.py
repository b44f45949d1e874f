"""ISO parsing and bucket arithmetic (pure functions, property-tested)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_braze_series.sandbox import SandboxConfig, Workspace
from tap_braze_series.sandbox.timeutil import UTC, bucket_start, next_bucket, parse_iso

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "expected", "date_only"),
    [
        ("2024-03-05", datetime(2024, 3, 5, tzinfo=NY), True),
        ("2024-03-05T23:59:59Z", datetime(2024, 3, 5, 23, 59, 59, tzinfo=UTC), False),
        ("2024-03-05T23:59:59+00:00", datetime(2024, 3, 5, 23, 59, 59, tzinfo=UTC), False),
        ("2024-03-05T23:59:59-5:00", datetime(2024, 3, 6, 4, 59, 59, tzinfo=UTC), False),
        ("2024-03-05T23:59:59-05:00", datetime(2024, 3, 6, 4, 59, 59, tzinfo=UTC), False),
        ("2024-03-05T23:59:59+0530", datetime(2024, 3, 5, 18, 29, 59, tzinfo=UTC), False),
        ("2024-03-05T23:59:59-05", datetime(2024, 3, 6, 4, 59, 59, tzinfo=UTC), False),
        ("2024-03-05T23:59", datetime(2024, 3, 5, 23, 59, tzinfo=NY), False),
        ("2024-03-05 10:00:00.123456Z", datetime(2024, 3, 5, 10, 0, 0, 123456, tzinfo=UTC), False),
        ("2024-03-05T10:00:00.1234567Z", datetime(2024, 3, 5, 10, 0, 0, 123456, tzinfo=UTC), False),
    ],
)
def test_parse_iso_accepts(text, expected, date_only):
    value, was_date = parse_iso(text, NY)
    assert value == expected
    assert value.utcoffset() is not None
    assert was_date is date_only


@pytest.mark.parametrize(
    "text",
    [
        "",
        "now",
        "2024-3-5",
        "2024-03-05T",
        "2024-03-05T24:00:00Z",
        "2024-02-30",
        "2024-03-05T10:00:00+25:00",
        "2024-03-05T10:00:00 05:00",
        "1709596800",
    ],
)
def test_parse_iso_rejects(text):
    with pytest.raises(ValueError, match=r"."):
        parse_iso(text, NY)


def test_date_only_is_local_midnight():
    value, _ = parse_iso("2024-03-10", NY)
    assert value.astimezone(UTC) == datetime(2024, 3, 10, 5, tzinfo=UTC)


ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
]
INSTANTS = st.datetimes(
    min_value=datetime(2012, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(instant=INSTANTS, zone=st.sampled_from(ZONES), unit=st.sampled_from(["day", "hour"]))
def test_bucket_contains_instant(instant, zone, unit):
    tz = ZoneInfo(zone)
    start = bucket_start(instant, unit, tz)
    end = next_bucket(start, unit, tz)
    assert start.astimezone(UTC) <= instant < end.astimezone(UTC)
    span = end.astimezone(UTC) - start.astimezone(UTC)
    if unit == "hour":
        assert span <= timedelta(hours=1)
        assert start.astimezone(tz).minute == 0 or zone == "Asia/Kolkata"
    else:
        assert timedelta(hours=22) <= span <= timedelta(hours=26)
        assert start.astimezone(tz).date() == instant.astimezone(tz).date()
    assert bucket_start(start, unit, tz) == start


@settings(max_examples=60, deadline=None)
@given(
    end=INSTANTS,
    length=st.integers(1, 100),
    zone=st.sampled_from(ZONES),
    unit=st.sampled_from(["day", "hour"]),
)
def test_window_properties(end, length, zone, unit):
    ws = Workspace(
        SandboxConfig(
            timezone=zone, n_canvases=0, n_campaigns=0, n_segments=0, n_events=0, n_products=0
        )
    )
    now = datetime(2031, 1, 1, tzinfo=UTC)
    buckets = ws.window(now=now, length=length, unit=unit, ending_at=end)
    assert len(buckets) == length
    utc = [b.astimezone(UTC) for b in buckets]
    assert utc == sorted(set(utc))
    last_end = ws.next_bucket(buckets[-1], unit).astimezone(UTC)
    assert utc[-1] < end <= last_end
    for a, b in itertools.pairwise(buckets):
        # compare in UTC: same-ZoneInfo comparisons use wall time (ambiguous on fall-back)
        assert ws.next_bucket(a, unit).astimezone(UTC) == b.astimezone(UTC)
    labels = [ws.bucket_label(b, unit) for b in buckets]
    assert len(set(labels)) == length


def test_fixed_offset_input_against_named_zone():
    ws = Workspace(SandboxConfig(timezone="America/New_York"))
    instant = datetime(2024, 11, 3, 1, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert ws.bucket_label(ws.bucket_start(instant, "hour"), "hour") == (
        "2024-11-03T01:00:00-05:00"
    )
