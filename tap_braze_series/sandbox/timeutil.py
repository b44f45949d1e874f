"""Time helpers: lenient ISO-8601 parsing and DST-correct bucket arithmetic."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo

UTC = timezone.utc  # datetime.UTC is Python 3.11+
ONE_MICROSECOND = timedelta(microseconds=1)

_ISO_RE = re.compile(
    r"""^\s*
    (?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
    (?:
        [Tt\x20]
        (?P<h>\d{1,2}):(?P<mi>\d{2})
        (?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?
        (?P<tz>[Zz]|[+-]\d{1,2}(?::?\d{2})?)?
    )?
    \s*$""",
    re.VERBOSE,
)


def parse_iso(value: str, tz: tzinfo) -> tuple[datetime, bool]:
    """Parse an ISO-8601 date or datetime the way the sandbox accepts them.

    Accepts ``2024-03-05`` (local midnight in ``tz``), datetimes with ``Z``,
    ``+00:00``, unpadded offsets like ``-5:00`` or ``+0530``, and naive datetimes
    (interpreted in ``tz``). Returns ``(aware datetime, was_date_only)``.
    Raises ``ValueError`` on anything else.
    """
    m = _ISO_RE.match(value or "")
    if not m:
        raise ValueError(f"not an ISO-8601 date or datetime: {value!r}")
    y, mo, d = int(m["y"]), int(m["mo"]), int(m["d"])
    if m["h"] is None:
        return local_midnight(date(y, mo, d), tz), True
    frac = (m["frac"] or "0")[:6].ljust(6, "0")
    naive = datetime(y, mo, d, int(m["h"]), int(m["mi"]), int(m["s"] or 0), int(frac))
    tzs = m["tz"]
    if tzs is None:
        # Naive: wall-clock time in the company time zone (first occurrence on folds).
        return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz), False
    if tzs in ("Z", "z"):
        return naive.replace(tzinfo=UTC), False
    sign = -1 if tzs[0] == "-" else 1
    body = tzs[1:]
    if ":" in body:
        hh, mm = body.split(":")
    elif len(body) > 2:
        hh, mm = body[:-2], body[-2:]
    else:
        hh, mm = body, "0"
    hours, minutes = int(hh), int(mm)
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad UTC offset in {value!r}")
    offset = timedelta(hours=hours, minutes=minutes) * sign
    return naive.replace(tzinfo=timezone(offset)), False


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of the local calendar day ``day`` in ``tz``.

    Normalised through UTC so a day whose midnight does not exist (a DST gap at
    00:00) starts at the transition.
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC).astimezone(tz)


def to_utc(dt: datetime) -> datetime:
    """Convert an aware datetime to UTC.

    Arithmetic and comparisons between datetimes sharing one ``ZoneInfo`` are
    done on wall-clock time by Python, which is wrong across DST changes; the
    sandbox always compares and subtracts instants in UTC.
    """
    if dt.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return dt.astimezone(UTC)


def bucket_start(instant: datetime, unit: str, tz: tzinfo) -> datetime:
    """Start (aware, in ``tz``) of the day or hour bucket containing ``instant``."""
    utc = to_utc(instant)
    local = utc.astimezone(tz)
    if unit == "day":
        start = local_midnight(local.date(), tz)
        if to_utc(start) > utc:  # a day that starts after local midnight (DST at 00:00)
            start = local_midnight(local.date() - timedelta(days=1), tz)
        return start
    if unit == "hour":
        # Keep the fold so the repeated hour of a fall-back day is its own bucket.
        start = local.replace(minute=0, second=0, microsecond=0)
        start_utc = start.astimezone(UTC)
        if start_utc > utc:  # exotic zones with sub-hour transitions
            start_utc = utc.replace(minute=0, second=0, microsecond=0)
        return start_utc.astimezone(tz)
    raise ValueError(f"unknown unit {unit!r}")


def next_bucket(start: datetime, unit: str, tz: tzinfo) -> datetime:
    """Start of the bucket after the one starting at ``start``."""
    if unit == "day":
        return local_midnight(start.astimezone(tz).date() + timedelta(days=1), tz)
    if unit == "hour":
        nxt = to_utc(start) + timedelta(hours=1)
        return bucket_start(nxt, "hour", tz)
    raise ValueError(f"unknown unit {unit!r}")


def prev_bucket(start: datetime, unit: str, tz: tzinfo) -> datetime:
    """Start of the bucket before the one starting at ``start``."""
    return bucket_start(to_utc(start) - ONE_MICROSECOND, unit, tz)


def bucket_label(start: datetime, unit: str, tz: tzinfo) -> str:
    """The ``time`` field Braze returns for a bucket."""
    local = start.astimezone(tz)
    if unit == "day":
        return local.date().isoformat()
    return local.isoformat()


#: How Braze may read a datetime ``ending_at`` (a date is its local midnight in both):
#: "instant", the last bucket holds the instant just before it; "ends_by", the last
#: bucket is the last one that ends by it.
ENDING_AT_READINGS: tuple[str, ...] = ("instant", "ends_by")


def last_bucket_for(end: datetime, unit: str, tz: tzinfo, reading: str) -> datetime:
    """Start of the last bucket a series ending at the bound ``end`` holds."""
    holding = bucket_start(to_utc(end) - ONE_MICROSECOND, unit, tz)
    if reading == "instant":
        return holding
    if reading != "ends_by":
        raise ValueError(f"unknown ending_at reading {reading!r}")
    if to_utc(next_bucket(holding, unit, tz)) <= to_utc(end):
        return holding
    return prev_bucket(holding, unit, tz)


def format_ts(dt: datetime) -> str:
    """ISO-8601 timestamp in UTC with seconds precision (``2024-03-05T10:11:12+00:00``)."""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()
