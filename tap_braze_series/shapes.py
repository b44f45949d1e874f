"""Turn Braze series responses into flat, warehouse-ready records.

Pure functions, no I/O. Braze nests breakdowns in maps keyed by ids
(`variant_stats`, `step_stats`, `messages`); every function here flattens them
into one row per identity and bucket. Documented metrics become typed columns;
anything Braze adds that we do not know is kept in `extra_metrics` rather than
dropped. Points that contradict the docs are skipped and counted in `Issues`,
never allowed to crash the sync or take other points with them.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from tap_braze_series.windows import (
    Bucket,
    Unit,
    Window,
    count_buckets,
    next_bucket,
    parse_instant,
    read_time,
)


class ZeroPoint(dict):
    """A point for a bucket a count series left out: Braze leaves out the buckets
    whose count is 0 (see endpoints.SeriesEndpoint.omits_zero_buckets)."""


class ZeroRow(dict):
    """The record of a `ZeroPoint`: emitted (a day restated to 0 overwrites its old
    value), or, with `zero_rows` off, only bookmarked."""


class PayloadError(ValueError):
    """A response whose overall shape makes its points unusable."""


@dataclass
class Issues:
    """What shaping skipped, by reason, for the run's log."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, example: str, count: int = 1) -> None:
        self.counts[reason] += count
        self.examples.setdefault(reason, example)

    def merge(self, other: Issues) -> None:
        for reason, count in other.counts.items():
            self.add(reason, other.examples.get(reason, ""), count)


# Reasons shared by the response-level and the point-level checks.
NOT_AN_OBJECT = "point is not an object"
NO_VALID_TIME = "point without a valid time"
OUTSIDE_WINDOW = "bucket outside the requested window"
DUPLICATE = "point for a bucket already given (the last one is kept)"


def data_list(body: Mapping[str, Any]) -> list[Any]:
    """The `data` list of a simple series response."""
    _check_message(body)
    data = body.get("data")
    if data is None:
        raise PayloadError("the response has no 'data'")
    if not isinstance(data, list):
        raise PayloadError(f"'data' is a {type(data).__name__}, not a list")
    return data


def canvas_data(body: Mapping[str, Any]) -> tuple[str | None, list[Any]]:
    """(canvas name, stats list) of a /canvas/data_series response."""
    _check_message(body)
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise PayloadError("'data' is not an object with 'name' and 'stats'")
    stats = data.get("stats")
    if stats is None:
        stats = []
    if not isinstance(stats, list):
        raise PayloadError(f"'data.stats' is a {type(stats).__name__}, not a list")
    name = data.get("name")
    return (name if isinstance(name, str) else None), stats


def point_list(body: Mapping[str, Any], at: str) -> list[Any]:
    """The list of points of a response whose points sit `at` (SeriesEndpoint.points_at)."""
    if at == "data.stats":
        return canvas_data(body)[1]
    return data_list(body)


@dataclass(frozen=True, slots=True)
class Points:
    """The usable points of one response: one per bucket, in bucket order."""

    items: list[Any]
    buckets: list[Bucket]  # the bucket of each item: ascending, distinct, inside the window
    unit: Unit
    changed: bool  # whether `items` differs from the response's own list

    def first_missing(
        self,
        window: Window,
        *,
        leading_ok: bool,
        tail_ok: bool,
        after: Bucket | None = None,
    ) -> Bucket | None:
        """The first bucket of the window without a point, or None when none is missing.

        With `leading_ok`, buckets before the first point are not missing: they are
        the time before the entity had data. With `tail_ok`, buckets after the last
        point are not missing: Braze has not produced them yet. Buckets up to
        `after` are not looked at.
        """
        buckets = self.buckets
        if leading_ok:
            if not buckets:
                return None
            expected = buckets[0]
        else:
            expected = window.first
        if after is not None and after >= expected:
            expected = next_bucket(after, self.unit)
        rest = buckets[bisect.bisect_left(buckets, expected) :]
        if (
            rest
            and rest[0] == expected
            and len(rest) == count_buckets(expected, window.last, self.unit)
        ):
            return None  # the common case: every bucket, nothing to walk
        for bucket in rest:
            if bucket != expected:
                return expected
            expected = next_bucket(expected, self.unit)
        if expected > window.last or tail_ok:
            return None
        return expected

    def after_last(self, window: Window) -> Bucket:
        """The bucket after the last point (the window's first if there is none)."""
        return next_bucket(self.buckets[-1], self.unit) if self.buckets else window.first

    def before(self, bucket: Bucket) -> Points:
        """Only the points of the buckets before `bucket`."""
        keep = sum(1 for b in self.buckets if b < bucket)
        if keep == len(self.buckets):
            return self
        return Points(self.items[:keep], self.buckets[:keep], self.unit, changed=True)


def with_zeros(
    points: Points, first: Bucket, last: Bucket, zero_point: Callable[[Bucket], ZeroPoint]
) -> tuple[Points, int]:
    """`points` with a zero point for every bucket from `first` to `last` it lacks, and
    how many were added."""
    buckets = points.buckets
    unit = points.unit
    if count_buckets(first, last, unit) == sum(1 for b in buckets if first <= b <= last):
        return points, 0
    present = dict(zip(buckets, points.items, strict=True))
    merged: dict[Bucket, Any] = {b: item for b, item in present.items() if b < first}
    added = 0
    bucket = first
    while bucket <= last:
        item = present.get(bucket)
        if item is None:
            item = zero_point(bucket)
            added += 1
        merged[bucket] = item
        bucket = next_bucket(bucket, unit)
    merged.update((b, item) for b, item in present.items() if b > last)
    return Points(list(merged.values()), list(merged), unit, changed=True), added


def ordered_points(
    items: list[Any], window: Window, unit: Unit, tz: ZoneInfo, issues: Issues, where: str
) -> Points:
    """One point per bucket of the window, in bucket order, from a response's list.

    Braze sends its points oldest first, one per bucket; when a response does not,
    its points are sorted (records are emitted, and bookmarks advance, in bucket
    order: a bookmark written mid-window must never pass a bucket not yet
    emitted) and a bucket given twice keeps its last point, so that a response
    yields one row per key however many times it repeats a bucket. Unusable
    points are dropped. Each is counted in `issues`, with `where` as example.
    """
    first, last = window.first, window.last
    kept: list[tuple[Bucket, Any]] = []
    in_order = True
    previous: Bucket | None = None
    for item in items:
        if type(item) is not dict:  # JSON objects decode to dict; faster than an ABC check
            issues.add(NOT_AN_OBJECT, f"{where}: {item!r}"[:160])
            continue
        try:
            bucket, _ = read_time(item.get("time"), unit, tz)
        except (ValueError, TypeError):
            issues.add(NO_VALID_TIME, f"{where}: {item!r}"[:160])
            continue
        if bucket < first or bucket > last:
            issues.add(OUTSIDE_WINDOW, f"{where}: {item.get('time')}")
            continue
        if previous is not None and bucket <= previous:
            in_order = False
        previous = bucket
        kept.append((bucket, item))
    changed = len(kept) != len(items)
    if not in_order:
        changed = True
        by_bucket: dict[Bucket, Any] = {}
        for bucket, item in kept:
            if bucket in by_bucket:
                issues.add(DUPLICATE, f"{where}: {item.get('time')}")
            by_bucket[bucket] = item
        kept = sorted(by_bucket.items(), key=itemgetter(0))
    if not changed:
        return Points(items, [bucket for bucket, _ in kept], unit, changed=False)
    return Points([item for _, item in kept], [bucket for bucket, _ in kept], unit, changed=True)


def with_points(body: Mapping[str, Any], points: Points) -> Mapping[str, Any]:
    """The response with its point list replaced by `points` (the same body if unchanged)."""
    if not points.changed:
        return body
    data = body.get("data")
    if isinstance(data, Mapping):
        return {**body, "data": {**data, "stats": points.items}}
    return {**body, "data": points.items}


def _check_message(body: Mapping[str, Any]) -> None:
    message = body.get("message")
    if message != "success":
        raise PayloadError(f"Braze answered message={message!r} instead of 'success'")


def points(
    items: list[Any],
    window: Window,
    start: Bucket,
    unit: Unit,
    tz: ZoneInfo,
    issues: Issues,
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(record time, point) for every usable point inside the window and >= start."""
    first, last = window.first, window.last
    for item in items:
        # JSON objects decode to dict; faster than an ABC check.
        if type(item) is not dict and type(item) is not ZeroPoint:
            issues.add(NOT_AN_OBJECT, repr(item)[:80])
            continue
        try:
            bucket, time = read_time(item.get("time"), unit, tz)
        except (ValueError, TypeError):
            issues.add(NO_VALID_TIME, repr(item)[:80])
            continue
        if bucket < first or bucket > last:
            issues.add(OUTSIDE_WINDOW, str(item.get("time")))
            continue
        if bucket < start:
            continue
        yield time, item


def metrics(
    source: Mapping[str, Any],
    typed: Mapping[str, str],
    issues: Issues,
    *,
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Documented metrics as typed columns (absent ones null) plus `extra_metrics`."""
    row: dict[str, Any] = dict.fromkeys(typed)
    extra: dict[str, Any] = {}
    for name, value in source.items():
        if name in skip:
            continue
        kind = typed.get(name)
        if kind is None:
            extra[name] = value
            continue
        coerced = _coerce(value, kind)
        if coerced is _INVALID:
            issues.add(f"metric '{name}' is not of type {kind}", repr(value)[:80])
            extra[name] = value
            continue
        row[name] = coerced
    row["extra_metrics"] = extra or None
    return row


_INVALID = object()


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return _INVALID
    if kind == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _INVALID
    if isinstance(value, int | float):
        return value
    return _INVALID


def simple_records(
    items: list[Any],
    window: Window,
    start: Bucket,
    unit: Unit,
    tz: ZoneInfo,
    identity: Mapping[str, Any],
    value_fields: tuple[str, ...],
    issues: Issues,
    kind: str = "integer",
) -> Iterator[dict[str, Any]]:
    """Rows of a simple series: identity, time and the value field(s), of JSON type `kind`."""
    hourly = unit == "hour"
    for time, point in points(items, window, start, unit, tz, issues):
        record: dict[str, Any] = {**identity, "time": time}
        if hourly:
            # `time` is the local start of the hour with its offset; loaders store it
            # as a UTC instant, so the company's day and hour travel as columns too.
            record["date"] = time[:10]
            record["hour"] = int(time[11:13])
        for name in value_fields:
            value = point.get(name)
            if type(value) is int:  # the common case, first
                record[name] = value
                continue
            coerced = _coerce(value, kind)
            if coerced is _INVALID:
                issues.add(f"'{name}' is not a number", repr(value)[:80])
                coerced = None
            elif value is None:
                issues.add(f"'{name}' missing or null", time)
            record[name] = coerced
        yield ZeroRow(record) if type(point) is ZeroPoint else record


def _named_entries(
    stat: Mapping[str, Any], key: str, issues: Issues
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    entries = stat.get(key)
    if entries is None:
        return
    if not isinstance(entries, Mapping):
        issues.add(f"'{key}' is not an object", repr(entries)[:80])
        return
    for entry_id, entry in entries.items():
        if not isinstance(entry, Mapping):
            issues.add(f"an entry of '{key}' is not an object", repr(entry)[:80])
            continue
        yield str(entry_id), entry


@dataclass(frozen=True, slots=True)
class Cut:
    """What cutting one entity's breakdown rows (canvas, campaign) from a response needs."""

    window: Window
    start: Bucket  # rows from this bucket on
    tz: ZoneInfo
    column: str  # the entity's column (its endpoint's axis): canvas_id, campaign_id
    entity: str  # the canvas or campaign id
    issues: Issues
    typed: Mapping[str, str]  # the documented metrics, as typed columns

    def days(self, items: list[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """(record time, point) of every usable day point."""
        return points(items, self.window, self.start, "day", self.tz, self.issues)

    def metrics(self, source: Mapping[str, Any], *skip: str) -> dict[str, Any]:
        return metrics(source, self.typed, self.issues, skip=frozenset(skip))


def canvas_total_records(body: Mapping[str, Any], cut: Cut) -> Iterator[dict[str, Any]]:
    """canvas_data_series rows: one per canvas and day."""
    name, stats = canvas_data(body)
    for time, stat in cut.days(stats):
        total = stat.get("total_stats")
        if not isinstance(total, Mapping):
            cut.issues.add("'total_stats' missing or not an object", time)
            total = {}
        yield {cut.column: cut.entity, "canvas_name": name, "time": time, **cut.metrics(total)}


def _canvas_entries(
    body: Mapping[str, Any], cut: Cut, field: str, id_column: str, name_column: str
) -> Iterator[tuple[dict[str, Any], Mapping[str, Any]]]:
    """(the row's columns up to `time`, the entry) for each entry of each day's `field`."""
    name, stats = canvas_data(body)
    for time, stat in cut.days(stats):
        for entry_id, entry in _named_entries(stat, field, cut.issues):
            yield (
                {
                    cut.column: cut.entity,
                    "canvas_name": name,
                    id_column: entry_id,
                    name_column: _text(entry.get("name")),
                    "time": time,
                },
                entry,
            )


def canvas_variant_records(body: Mapping[str, Any], cut: Cut) -> Iterator[dict[str, Any]]:
    """canvas_variant_data_series rows: one per canvas, variant and day."""
    for row, variant in _canvas_entries(body, cut, "variant_stats", "variant_id", "variant_name"):
        yield {**row, **cut.metrics(variant, "name")}


def canvas_step_records(body: Mapping[str, Any], cut: Cut) -> Iterator[dict[str, Any]]:
    """canvas_step_data_series rows: one per canvas, step and day."""
    for row, step in _canvas_entries(body, cut, "step_stats", "step_id", "step_name"):
        yield {**row, **cut.metrics(step, "name", "messages")}


def canvas_step_message_records(body: Mapping[str, Any], cut: Cut) -> Iterator[dict[str, Any]]:
    """canvas_step_message_data_series rows: canvas, step, day, channel, message entry."""
    for row, step in _canvas_entries(body, cut, "step_stats", "step_id", "step_name"):
        for channel, entries in _channels(step.get("messages"), cut.issues):
            for index, entry in enumerate(entries):
                yield {**row, "channel": channel, "message_index": index, **cut.metrics(entry)}


def campaign_records(body: Mapping[str, Any], cut: Cut) -> Iterator[dict[str, Any]]:
    """campaign_data_series rows: one per campaign and day."""
    for time, point in cut.days(data_list(body)):
        yield {cut.column: cut.entity, "time": time, **cut.metrics(point, "time", "messages")}


def campaign_message_records(body: Mapping[str, Any], cut: Cut) -> Iterator[dict[str, Any]]:
    """campaign_message_data_series rows: campaign, day, channel, message variation."""
    for time, point in cut.days(data_list(body)):
        for channel, entries in _channels(point.get("messages"), cut.issues):
            # One row per key: a variation listed twice in a channel keeps its last entry.
            by_variation: dict[str, Mapping[str, Any]] = {}
            for index, entry in enumerate(entries):
                # Primary keys are never null: an entry without an id keeps its position.
                variation = _text(entry.get("variation_api_id")) or f"#{index}"
                if variation in by_variation:
                    cut.issues.add(
                        "variation listed twice in a channel (the last entry is kept)",
                        f"{cut.entity} {time} {channel} {variation}",
                    )
                by_variation[variation] = entry
            for variation, entry in by_variation.items():
                yield {
                    cut.column: cut.entity,
                    "time": time,
                    "channel": channel,
                    "variation_api_id": variation,
                    "variation_name": _text(entry.get("variation_name")),
                    **cut.metrics(entry, "variation_api_id", "variation_name"),
                }


def _channels(messages: Any, issues: Issues) -> Iterator[tuple[str, list[Mapping[str, Any]]]]:
    if messages is None:
        return
    if not isinstance(messages, Mapping):
        issues.add("'messages' is not an object", repr(messages)[:80])
        return
    for channel, entries in messages.items():
        if not isinstance(entries, list):
            issues.add("a channel's messages are not a list", f"{channel}: {entries!r}"[:80])
            continue
        usable = []
        for entry in entries:
            if isinstance(entry, Mapping):
                usable.append(entry)
            else:
                issues.add("a message entry is not an object", repr(entry)[:80])
        yield str(channel), usable


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def bucket_key(value: str, unit: Unit, tz: ZoneInfo) -> str | dt.datetime:
    """Comparable form of a record's `time` or a bookmark (hour values as instants)."""
    if unit == "day":
        return value[:10]  # ISO dates order as strings
    try:
        # Offsets parse to fixed-offset zones, which compare as instants.
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = parse_instant(value, tz)
    # A bookmark written without an offset is read in the company time zone.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
