"""Property tests of the pure window planner (no I/O)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_braze_series.sandbox import timeutil as sandbox_time
from tap_braze_series.windows import (
    bucket_end,
    bucket_of,
    bucket_start,
    count_buckets,
    format_bucket,
    lookback_start,
    next_bucket,
    parse_instant,
    parse_time,
    plan_windows,
    read_time,
    shift,
)

# Zones with whole-hour DST shifts, a half-hour offset, and a southern-hemisphere DST.
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kolkata",
    "America/St_Johns",
    "Australia/Sydney",
    "America/Santiago",
]

zones = st.sampled_from(ZONES).map(ZoneInfo)
instants = st.datetimes(
    min_value=dt.datetime(2019, 1, 1),
    max_value=dt.datetime(2027, 12, 31),
    timezones=st.just(dt.timezone.utc),
)
units = st.sampled_from(["day", "hour"])


@given(instant=instants, tz=zones, unit=units)
def test_bucket_contains_its_instant_and_buckets_are_contiguous(instant, tz, unit):
    bucket = bucket_of(instant, unit, tz)
    assert bucket_start(bucket, unit, tz) <= instant < bucket_end(bucket, unit, tz)
    following = next_bucket(bucket, unit)
    assert bucket_start(following, unit, tz) == bucket_end(bucket, unit, tz)
    assert bucket_of(bucket_end(bucket, unit, tz), unit, tz) == following


@st.composite
def ranges(draw):
    tz = draw(zones)
    unit = draw(units)
    first = bucket_of(draw(instants), unit, tz)
    span = draw(st.integers(min_value=0, max_value=1500 if unit == "day" else 3000))
    return tz, unit, first, shift(first, span, unit)


@given(case=ranges(), max_length=st.sampled_from([1, 2, 13, 14, 100]))
@settings(max_examples=300)
def test_windows_tile_the_range_exactly_with_the_fewest_requests(case, max_length):
    tz, unit, first, last = case
    windows = plan_windows(first, last, unit, max_length, tz)
    total = count_buckets(first, last, unit)
    assert len(windows) == math.ceil(total / max_length)
    assert sum(w.length for w in windows) == total
    assert windows[0].first == first
    assert windows[-1].last == last
    for window in windows:
        assert 1 <= window.length <= max_length
        assert count_buckets(window.first, window.last, unit) == window.length
    for before, after in itertools.pairwise(windows):
        assert next_bucket(before.last, unit) == after.first  # no gap, no overlap
    # Every window but the last is full: no split is wasted.
    assert all(w.length == max_length for w in windows[:-1])


def _braze_last_bucket(ending_at: str, unit: str, tz: ZoneInfo, reading: str):
    """The last bucket Braze answers for `ending_at` under `reading` (the sandbox's code)."""
    bound, _ = sandbox_time.parse_iso(ending_at, tz)
    start = sandbox_time.last_bucket_for(bound, unit, tz, reading)
    if unit == "day":
        return start.astimezone(tz).date()
    return start.astimezone(dt.timezone.utc)


@given(case=ranges())
def test_ending_at_names_the_last_bucket_under_every_reading_of_the_bound(case):
    tz, unit, first, last = case
    for window in plan_windows(first, last, unit, 14, tz):
        # The bound is the last bucket's exclusive end: the next bucket's start.
        if unit == "day":
            assert window.ending_at == (window.last + dt.timedelta(days=1)).isoformat()
        else:
            ending_at = parse_instant(window.ending_at, tz)
            assert ending_at == bucket_end(window.last, unit, tz)
            # Bounds are expressed in the company time zone.
            assert ending_at.utcoffset() == ending_at.astimezone(tz).utcoffset()
        for reading in sandbox_time.ENDING_AT_READINGS:
            assert _braze_last_bucket(window.ending_at, unit, tz, reading) == window.last


@given(case=ranges())
def test_the_last_second_of_the_last_bucket_is_wrong_under_the_ends_by_reading(case):
    """Why the bound is the exclusive end: the last second names the bucket before."""
    tz, unit, _, last = case
    last_second = (bucket_end(last, unit, tz) - dt.timedelta(seconds=1)).astimezone(tz)
    assert _braze_last_bucket(last_second.isoformat(), unit, tz, "instant") == last
    assert _braze_last_bucket(last_second.isoformat(), unit, tz, "ends_by") == shift(last, -1, unit)


def test_a_date_bound_is_exclusive_as_recorded():
    """A recorded answer: ending_at=2022-12-15, length=3 gave 12-12, 12-13, 12-14."""
    tz = ZoneInfo("UTC")
    for reading in sandbox_time.ENDING_AT_READINGS:
        assert _braze_last_bucket("2022-12-15", "day", tz, reading) == dt.date(2022, 12, 14)


def test_one_bucket_range_and_start_equal_end():
    tz = ZoneInfo("UTC")
    day = dt.date(2024, 3, 5)
    [window] = plan_windows(day, day, "day", 14, tz)
    assert (window.first, window.last, window.length) == (day, day, 1)
    assert window.ending_at == "2024-03-06"
    assert plan_windows(day, day - dt.timedelta(days=1), "day", 14, tz) == []


def test_dst_days_have_23_and_25_hours_in_new_york():
    tz = ZoneInfo("America/New_York")
    spring, fall = dt.date(2024, 3, 10), dt.date(2024, 11, 3)
    for day, hours in ((spring, 23), (fall, 25), (dt.date(2024, 3, 11), 24)):
        first = bucket_of(bucket_start(day, "day", tz), "hour", tz)
        last = bucket_of(bucket_end(day, "day", tz) - dt.timedelta(seconds=1), "hour", tz)
        assert count_buckets(first, last, "hour") == hours
    # The two 01:00 hours of the fall-back night are distinct buckets with their offsets.
    first = bucket_of(bucket_start(fall, "day", tz), "hour", tz)
    labels = [format_bucket(shift(first, i, "hour"), "hour", tz) for i in range(4)]
    assert labels == [
        "2024-11-03T00:00:00-04:00",
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00",
        "2024-11-03T02:00:00-05:00",
    ]


def test_hour_windows_across_spring_forward():
    tz = ZoneInfo("America/New_York")
    first = bucket_of(dt.datetime(2024, 3, 9, 5, tzinfo=dt.timezone.utc), "hour", tz)  # 00:00 EST
    last = shift(first, 99, "hour")
    [window] = plan_windows(first, last, "hour", 100, tz)
    assert window.length == 100
    assert window.ending_at == "2024-03-13T05:00:00-04:00"


@given(case=ranges())
def test_record_time_round_trips(case):
    tz, unit, first, _ = case
    assert parse_time(format_bucket(first, unit, tz), unit, tz) == first


def test_parse_time_accepts_braze_forms():
    tz = ZoneInfo("America/New_York")
    assert parse_instant("2018-05-30T23:59:59-5:00", tz) == dt.datetime(
        2018, 5, 31, 4, 59, 59, tzinfo=dt.timezone.utc
    )
    assert parse_time("2024-03-05", "day", tz) == dt.date(2024, 3, 5)
    assert parse_time("2024-03-05T10:00:00Z", "hour", tz) == dt.datetime(
        2024, 3, 5, 10, tzinfo=dt.timezone.utc
    )
    # A naive hour is read in the company time zone.
    assert parse_time("2024-03-05T10:00:00", "hour", tz) == dt.datetime(
        2024, 3, 5, 15, tzinfo=dt.timezone.utc
    )
    for bad in (None, "", "yesterday", 20240305):
        with pytest.raises(ValueError, match=r"time is|Invalid isoformat"):
            parse_time(bad, "day", tz)


@given(case=ranges(), days=st.integers(min_value=0, max_value=40))
def test_lookback_goes_back_whole_local_days(case, days):
    tz, unit, first, _ = case
    start = lookback_start(first, days, unit, tz)
    assert start <= first
    if unit == "day":
        assert (first - start).days == days
    else:
        local_first = first.astimezone(tz)
        local_start = start.astimezone(tz)
        assert (
            local_first.date() - local_start.date()
        ).days == days or local_start.hour != local_first.hour


@given(instant=instants, tz=zones, unit=units)
def test_read_time_equals_parse_then_format(instant, tz, unit):
    bucket = bucket_of(instant, unit, tz)
    for text in (format_bucket(bucket, unit, tz), instant.astimezone(tz).isoformat()):
        if unit == "day" and "T" in text:
            continue
        got = read_time(text, unit, tz)
        want = parse_time(text, unit, tz)
        assert got == (want, format_bucket(want, unit, tz))


def test_read_time_memo_is_bounded_and_answers_alike_past_its_bound():
    from tap_braze_series import windows

    tz = ZoneInfo("America/New_York")
    start = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    texts = [
        (start + dt.timedelta(hours=h)).astimezone(tz).isoformat()
        for h in range(windows.READ_TIMES_KEPT + 500)
    ]
    for text in texts:
        assert read_time(text, "hour", tz)[1] == text
    assert len(windows._READ_TIMES) <= windows.READ_TIMES_KEPT
    # Past the bound, times are still read right (just not kept), twice alike.
    last = texts[-1]
    assert read_time(last, "hour", tz) == read_time(last, "hour", tz)
    assert read_time(last, "hour", tz)[0] == dt.datetime.fromisoformat(last).astimezone(
        dt.timezone.utc
    )


@pytest.mark.parametrize("value", [None, 20240301, ["2024-03-01"], {"t": 1}, ""])
def test_read_time_refuses_what_is_not_a_time_string(value):
    with pytest.raises(ValueError, match="not an ISO-8601 string"):
        read_time(value, "day", ZoneInfo("UTC"))
