"""Bucket arithmetic and request-window planning for Braze data series.

Pure functions, no I/O. A *bucket* is one point of a Braze series:

- day unit: a calendar day in the company time zone, represented as a `date`;
- hour unit: a clock hour in the company time zone, represented by the UTC
  instant at which it starts (an aware `datetime` in UTC).

Hour buckets are kept in UTC on purpose: Python compares two aware datetimes
that share a tzinfo by wall time and ignores `fold`, so the two 01:00 hours of a
fall-back night would compare equal in the local zone.

Braze answers `length` buckets ending at a bucket `ending_at` names. A recorded
answer proves the date form: `ending_at=D` (a date) with `length=N` returns the
days D-N ... D-1, so a date names the end, exclusive, of the last bucket. How
Braze reads a datetime is not recorded: "the bucket holding the instant just
before it" and "the last bucket that ends by it" both fit. We therefore always
send the exclusive end of the last wanted bucket, the start of the next one: the
next day's date for day series (the recorded form), and the next hour's start in
the company time zone, with its offset, for hour series (both readings name the
wanted hour for it; the last second of the hour, the obvious alternative, names
the hour before it under the second reading). We cut a range into the fewest
windows the endpoint's maximum `length` allows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["day", "hour"]
Bucket = dt.date | dt.datetime

UTC = dt.timezone.utc
ONE_HOUR = dt.timedelta(hours=1)
ONE_DAY = dt.timedelta(days=1)
EPSILON = dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    """One request: `length` buckets from `first` to `last`, both included."""

    first: Bucket
    last: Bucket
    length: int
    ending_at: str


def day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant at which a local calendar day starts.

    A midnight that does not exist (a DST jump at 00:00) resolves, like
    zoneinfo does for fold=0, to the first instant of the day.
    """
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)


def bucket_of(instant: dt.datetime, unit: Unit, tz: ZoneInfo) -> Bucket:
    """The bucket that contains an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("bucket_of needs an aware datetime")
    local = instant.astimezone(tz)
    if unit == "day":
        day = local.date()
        # A local midnight that does not exist moves the day start later; an
        # instant before it still belongs to the previous day.
        if instant < day_start(day, tz):
            return day - ONE_DAY
        return day
    local_hour = local.replace(minute=0, second=0, microsecond=0)
    return local_hour.astimezone(UTC)


def bucket_start(bucket: Bucket, unit: Unit, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant at which a bucket starts."""
    if unit == "day":
        return day_start(_as_date(bucket), tz)
    return _as_hour(bucket)


def bucket_end(bucket: Bucket, unit: Unit, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant at which a bucket ends (exclusive)."""
    if unit == "day":
        return day_start(_as_date(bucket) + ONE_DAY, tz)
    return _as_hour(bucket) + ONE_HOUR


def next_bucket(bucket: Bucket, unit: Unit) -> Bucket:
    """The bucket right after `bucket`."""
    return bucket + (ONE_DAY if unit == "day" else ONE_HOUR)


def shift(bucket: Bucket, count: int, unit: Unit) -> Bucket:
    """The bucket `count` buckets after (or before, if negative) `bucket`."""
    return bucket + (ONE_DAY if unit == "day" else ONE_HOUR) * count


def count_buckets(first: Bucket, last: Bucket, unit: Unit) -> int:
    """Number of buckets from `first` to `last`, both included (0 if last < first)."""
    if unit == "day":
        days = (_as_date(last) - _as_date(first)).days
        return max(days + 1, 0)
    hours = (_as_hour(last) - _as_hour(first)) // ONE_HOUR
    return max(hours + 1, 0)


def format_ending_at(bucket: Bucket, unit: Unit, tz: ZoneInfo) -> str:
    """`ending_at` for a window whose last bucket is `bucket`: that bucket's exclusive end.

    For days, the date of the next day (`2024-03-06` for a window ending 2024-03-05):
    the form whose reading a recorded answer proves. For hours, the start of the
    next hour, local with its offset (`2024-03-10T04:00:00-04:00` for a window
    ending 2024-03-10T03:00-04:00): the instant just before it lies in the wanted
    hour, and the wanted hour is the last one that ends by it.
    """
    if unit == "day":
        return (_as_date(bucket) + ONE_DAY).isoformat()
    return bucket_end(bucket, unit, tz).astimezone(tz).isoformat()


def plan_windows(
    first: Bucket,
    last: Bucket,
    unit: Unit,
    max_length: int,
    tz: ZoneInfo,
) -> list[Window]:
    """Cut the buckets from `first` to `last` into the fewest request windows.

    Windows tile the range exactly: no gap, no overlap, oldest first, each at
    most `max_length` buckets. An empty range (last before first) plans nothing.
    """
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    total = count_buckets(first, last, unit)
    windows: list[Window] = []
    for index in range(math.ceil(total / max_length)):
        window_first = shift(first, index * max_length, unit)
        length = min(max_length, total - index * max_length)
        window_last = shift(window_first, length - 1, unit)
        windows.append(
            Window(
                first=window_first,
                last=window_last,
                length=length,
                ending_at=format_ending_at(window_last, unit, tz),
            )
        )
    return windows


def parse_time(value: object, unit: Unit, tz: ZoneInfo) -> Bucket:
    """The bucket a series point's `time` names.

    Day series carry `YYYY-MM-DD`; hour series an ISO datetime, with or without
    an offset (without one it is read in the company time zone). Anything else
    raises ValueError.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"time is {value!r}, not an ISO-8601 string")
    if unit == "day":
        if len(value) > 10 and value[10] in "T ":
            return bucket_of(parse_instant(value, tz), "day", tz)
        return dt.date.fromisoformat(value)
    return bucket_of(parse_instant(value, tz), "hour", tz)


def read_time(value: object, unit: Unit, tz: ZoneInfo) -> tuple[Bucket, str]:
    """A point's bucket and the `time` its record carries; ValueError if unreadable.

    The same result as `parse_time` then `format_bucket`. Memoised: it runs for
    every point, and the same `time` strings recur for every entity of a run (a
    year of hours is 8,784 of them).
    """
    if type(value) is not str:
        raise ValueError(f"time is {value!r}, not an ISO-8601 string")
    key = (value, unit, tz)
    found = _READ_TIMES.get(key)
    if found is None:
        found = _read_time(value, unit, tz)
        # Bounded, and never evicting: entities are read one after another over
        # the same history, an access pattern in which a least-recently-used cache
        # smaller than the history would miss every time.
        if len(_READ_TIMES) < READ_TIMES_KEPT:
            _READ_TIMES[key] = found
    return found


# About 340 bytes each: 11 MB at most, 3.7 years of hours.
READ_TIMES_KEPT = 1 << 15
_READ_TIMES: dict[tuple[str, Unit, ZoneInfo], tuple[Bucket, str]] = {}


def _read_time(value: str, unit: Unit, tz: ZoneInfo) -> tuple[Bucket, str]:
    """One parse and one conversion when Braze's value is already a bucket start (it
    always is); the general route otherwise."""
    if unit == "day":
        bucket = parse_time(value, "day", tz)
        return bucket, format_bucket(bucket, "day", tz)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = parse_instant(value, tz)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    local = parsed.astimezone(tz)
    if local.minute or local.second or local.microsecond:
        hour = bucket_of(parsed, "hour", tz)
        return hour, format_bucket(hour, "hour", tz)
    return local.astimezone(UTC), local.isoformat()


def parse_instant(value: str, tz: ZoneInfo) -> dt.datetime:
    """An aware datetime from ISO-8601, naive values read in `tz`.

    Accepts Braze's unpadded offsets such as `-5:00`.
    """
    text = value.strip()
    if len(text) >= 6 and text[-6] not in "+-" and text[-5] in "+-" and text[-3] == ":":
        text = f"{text[:-5]}{text[-5]}0{text[-4:]}"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def format_bucket(bucket: Bucket, unit: Unit, tz: ZoneInfo) -> str:
    """The `time` value a record carries: a date, or a local datetime with its offset."""
    if unit == "day":
        return _as_date(bucket).isoformat()
    return _as_hour(bucket).astimezone(tz).isoformat()


def lookback_start(bookmark: Bucket, days: int, unit: Unit, tz: ZoneInfo) -> Bucket:
    """The first bucket to re-read: `days` calendar days before the bookmark's bucket."""
    if unit == "day":
        return _as_date(bookmark) - ONE_DAY * days
    local = _as_hour(bookmark).astimezone(tz)
    wall = dt.datetime.combine(local.date() - ONE_DAY * days, local.time(), tzinfo=tz)
    return bucket_of(wall.astimezone(UTC), "hour", tz)


def _as_date(bucket: Bucket) -> dt.date:
    if isinstance(bucket, dt.datetime):
        raise TypeError("a day bucket is a date, not a datetime")
    return bucket


def _as_hour(bucket: Bucket) -> dt.datetime:
    if not isinstance(bucket, dt.datetime) or bucket.tzinfo is None:
        raise TypeError("an hour bucket is an aware datetime")
    return bucket.astimezone(UTC)
