"""What each stream must hold, from the sandbox's own oracle; comparisons with it.

One way to compute each expected value: `expected_simple` for the simple series
(events, sessions, segments, purchases), `oracle` for every stream (keyed rows),
`expected_rows` (the oracle's rows as a list, for loaded tables).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tap_braze_series.sandbox import Sandbox, Workspace
from tap_braze_series.sandbox import timeutil as sandbox_time
from tests.harness.messages import ENTITY_KEYS, STREAMS, keyed, keys_of, record_key, unit_of


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def entity_days(ws: Workspace, entity: Any, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days a canvas's or campaign's rows cover: none before the day it was created."""
    return days(max(first, ws.created_day(entity)), last)


def hour_starts(ws: Workspace, first: dt.date, last: dt.date) -> list[dt.datetime]:
    start = ws.day_start(first)
    end = ws.day_start(last + dt.timedelta(days=1))
    out = []
    while start < end:
        out.append(start)
        start = ws.next_bucket(start, "hour")
    return out


def expected_simple(
    ws: Workspace,
    path: str,
    field_name: str,
    *,
    unit: str,
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
    entities: Iterable[tuple[dict, str | None]] = (({}, None),),
    apps: Iterable[str] = ("*",),
    segments: Iterable[str] | None = None,
    bookmarked: bool = False,
) -> list[dict]:
    """Expected rows of a simple series: identity, app_id, [segment_id,] time, value.

    With `segments` ('*' for all users), rows carry segment_id and values are those
    of each segment's users.

    As the sandbox's readings make Braze answer (see docs/braze.md) and a run without
    state exports it: a count series whose zero buckets Braze leaves out has no row
    before its first non-zero bucket (unless `bookmarked`: a partition a run already
    bookmarked has rows with 0 from the start of its lookback) and none for a zero in
    the current, partial bucket (its other zeros are rows with 0); under the "ends_by" reading of
    `ending_at` the partial bucket never appears.
    """
    omitted = ws.omits_zero_buckets(path)
    partial_shown = ws.config.ending_at_reading == "instant"
    buckets = (
        hour_starts(ws, first, last)
        if unit == "hour"
        else [ws.day_start(d) for d in days(first, last)]
    )
    now_bucket_end = now
    rows = []
    audiences = [{}] if segments is None else [{"segment_id": s} for s in segments]
    for identity, entity in entities:
        for app in apps:
            for audience in audiences:
                segment = audience.get("segment_id", "*")
                seen_data = bookmarked
                for start in buckets:
                    if start >= now_bucket_end:
                        continue
                    partial = ws.next_bucket(start, unit) > now
                    if partial and not partial_shown:
                        continue
                    value = ws.series_value(
                        path,
                        start,
                        unit=unit,
                        entity=entity,
                        app_id=None if app == "*" else app,
                        segment_id=None if segment == "*" else segment,
                        now=now,
                    )
                    if omitted and value == 0 and (partial or not seen_data):
                        continue
                    seen_data = True
                    row = {
                        **identity,
                        "app_id": app,
                        **audience,
                        "time": ws.bucket_label(start, unit),
                    }
                    if unit == "hour":  # the company's day and hour of the bucket
                        local = start.astimezone(ws.tz)
                        row["date"] = local.date().isoformat()
                        row["hour"] = local.hour
                    row[field_name] = value
                    rows.append(row)
    return rows


def _metric_rows(source: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k not in set(skip)}


def oracle(
    ws: Workspace,
    stream: str,
    *,
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
    app_ids: Iterable[str] = (),
    bookmarked: bool = False,
) -> dict[tuple, dict[str, Any]]:
    """Expected records of a stream: key -> the fields (and metrics) they must carry.

    Metrics Braze returns are compared wherever the tap puts them: a typed column
    or `extra_metrics` (see `assert_matches`). As a run without state exports them,
    or with `bookmarked`, as a resumed run may (see `expected_simple`).
    Canvas and campaign days follow the sandbox's reading of `ending_at` (no partial
    day under "ends_by").
    """
    if stream in ENTITY_KEYS:
        return {record_key(stream, row): row for row in _entity_rows(ws, stream)}
    out = _series_oracle(
        ws, stream, first=first, last=last, now=now, app_ids=app_ids, bookmarked=bookmarked
    )
    # Every expected row carries its key's columns too.
    return {
        key: {**dict(zip(keys_of(stream), key, strict=True)), **row} for key, row in out.items()
    }


def _entity_rows(ws: Workspace, stream: str) -> list[dict]:
    if stream == "canvases":
        active = {c.id for c in ws.active_canvases}
        return [row for row in ws.list_rows("canvases") if row["id"] in active]
    if stream == "events":
        return [{"name": event} for event in ws.events]
    raise ValueError(f"no oracle for the stream {stream!r}")


def _live_stats(
    ws: Workspace,
    entities: Iterable[Any],
    stats: Any,
    day_list: list[dt.date],
    now: dt.datetime,
) -> Iterable[tuple[Any, str, dict[str, Any]]]:
    """(entity, day, its stats) of every day since each live (unarchived) entity was created."""
    for entity in (e for e in entities if not e.archived):
        for day in (d for d in day_list if d >= ws.created_day(entity)):
            yield entity, day.isoformat(), stats(entity.id, day, now=now)


def _series_oracle(
    ws: Workspace,
    stream: str,
    *,
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
    app_ids: Iterable[str],
    bookmarked: bool,
) -> dict[tuple, dict[str, Any]]:
    apps = ("*", *app_ids)
    out: dict[tuple, dict[str, Any]] = {}
    day_list = [d for d in days(first, last) if ws.day_start(d) < now]
    if ws.config.ending_at_reading != "instant":
        day_list = [d for d in day_list if ws.day_start(d + dt.timedelta(days=1)) <= now]
    if stream.startswith("canvas_"):
        for canvas, t, stat in _live_stats(ws, ws.canvases, ws.canvas_stats, day_list, now):
            if stream == "canvas_data_series":
                out[(canvas.id, t)] = {"canvas_name": canvas.name, **stat["total_stats"]}
            elif stream == "canvas_variant_data_series":
                for vid, v in stat["variant_stats"].items():
                    out[(canvas.id, vid, t)] = {
                        "canvas_name": canvas.name,
                        "variant_name": v["name"],
                        **_metric_rows(v, ["name"]),
                    }
            elif stream == "canvas_step_data_series":
                for sid, s in stat["step_stats"].items():
                    out[(canvas.id, sid, t)] = {
                        "canvas_name": canvas.name,
                        "step_name": s["name"],
                        **_metric_rows(s, ["name", "messages"]),
                    }
            elif stream == "canvas_step_message_data_series":
                for sid, s in stat["step_stats"].items():
                    for channel, entries in s["messages"].items():
                        for i, entry in enumerate(entries):
                            out[(canvas.id, sid, t, channel, i)] = {
                                "step_name": s["name"],
                                **entry,
                            }
        return out
    if stream.startswith("campaign_"):
        for campaign, t, stat in _live_stats(ws, ws.campaigns, ws.campaign_stats, day_list, now):
            if stream == "campaign_data_series":
                out[(campaign.id, t)] = _metric_rows(stat, ["time", "messages"])
            else:
                for channel, entries in stat["messages"].items():
                    for entry in entries:
                        out[(campaign.id, t, channel, entry["variation_api_id"])] = entry
        return out
    unit = unit_of(stream)
    path = STREAMS[stream][2]
    if stream.startswith("event_"):
        entities = [({"event_name": e}, e) for e in ws.events]
        field_name = "count"
    elif stream.startswith("segment_"):
        entities = [
            ({"segment_id": s.id}, s.id) for s in ws.segments if s.analytics_tracking_enabled
        ]
        field_name, apps = "size", ("*",)
    else:
        entities = [({}, None)]
        field_name = "sessions"
    rows = expected_simple(
        ws,
        path,
        field_name,
        unit=unit,
        first=first,
        last=last,
        now=now,
        entities=entities,
        apps=apps,
        bookmarked=bookmarked,
    )
    for row in rows:
        if stream.startswith("segment_"):
            row.pop("app_id")
        out[record_key(stream, row)] = row
    return out


def expected_rows(
    ws: Workspace, stream: str, first: dt.date, last: dt.date, now: dt.datetime
) -> list[dict]:
    """What `stream` must hold for days first..last with the sandbox at `now` (a run
    without state, all apps together): the `oracle`'s rows."""
    return list(oracle(ws, stream, first=first, last=last, now=now).values())


def assert_matches(
    stream: str, got: Mapping[tuple, Mapping], want: Mapping[tuple, Mapping]
) -> None:
    """Same keys; every expected field equal, in its column or in `extra_metrics`."""
    missing = want.keys() - got.keys()
    extra = got.keys() - want.keys()
    assert not missing, (stream, f"{len(missing)} missing e.g. {sorted(missing)[:3]}")
    assert not extra, (stream, f"{len(extra)} unexpected e.g. {sorted(extra)[:3]}")
    for key, fields in want.items():
        row = got[key]
        for name, value in fields.items():
            if name in row:
                assert row[name] == value, (stream, key, name, row[name], value)
            else:
                assert (row.get("extra_metrics") or {}).get(name) == value, (stream, key, name)


def assert_values_equal(
    stream: str,
    records: Iterable[Mapping],
    expected: Iterable[Mapping],
    keys: Iterable[str],
    field: str,
) -> None:
    """`records` have exactly the expected rows' keys, and each the expected `field`."""
    got, want = keyed(records, keys), keyed(expected, keys)
    assert got.keys() == want.keys(), stream
    assert {k: r[field] for k, r in got.items()} == {k: r[field] for k, r in want.items()}, stream


def normalise(
    stream: str, rows: Iterable[Mapping[str, Any]], columns: Iterable[str] | None = None
) -> dict[tuple, dict]:
    """Rows keyed by primary key, restricted to `columns` (the expected row's columns).

    Fails on a duplicate key. Dates and timestamps become ISO strings.
    """
    out: dict[tuple, dict] = {}
    keys = keys_of(stream)
    for row in rows:
        cols = list(columns) if columns is not None else list(row)
        value = {c: _plain(row.get(c)) for c in cols}
        key = tuple(value[k] if k in value else _plain(row.get(k)) for k in keys)
        assert key not in out, f"{stream}: duplicate primary key {key}"
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    """Comparable form: dates as ISO strings, instants as UTC ISO strings."""
    if isinstance(value, str) and len(value) >= 19 and value[10] in "T " and value[13] == ":":
        with contextlib.suppress(ValueError):
            value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # a target that stores UTC instants without the offset
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def assert_rows_equal(
    stream: str, actual_rows: Iterable[Mapping[str, Any]], expected: list[dict]
) -> None:
    """`actual_rows` hold exactly the expected rows (same keys, same values)."""
    columns = list(expected[0]) if expected else None
    exp = normalise(stream, expected, columns)
    act = normalise(stream, actual_rows, columns)
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    assert not missing, f"{stream}: {len(missing)} expected rows missing, e.g. {missing[:3]}"
    assert not extra, f"{stream}: {len(extra)} unexpected rows, e.g. {extra[:3]}"
    wrong = []
    for key, want in exp.items():
        got = act[key]
        for col, value in want.items():
            other = got.get(col)
            if isinstance(value, float) or isinstance(other, float):
                same = (
                    other is not None
                    and value is not None
                    and abs(float(other) - float(value)) <= 1e-6 * max(1.0, abs(float(value)))
                )
            else:
                same = other == value
            if not same:
                wrong.append((key, col, value, other))
    assert not wrong, (
        f"{stream}: {len(wrong)} values differ from the oracle "
        f"(key, column, expected, loaded): {wrong[:5]}"
    )


@dataclass(frozen=True)
class Requested:
    path: str
    entity: str | None
    days: tuple[dt.date, ...]


def requested_days(sandbox: Sandbox) -> list[Requested]:
    """Day windows of the daily data-series requests the sandbox served (status 200)."""
    out = []
    for record in sandbox.request_log:
        if not record.path.endswith("data_series") or record.status != 200:
            continue
        params = record.params
        if params.get("unit", "day") != "day":
            continue
        ending_at = params["ending_at"]
        if len(ending_at) == 10:  # a date: the exclusive end
            last = dt.date.fromisoformat(ending_at) - dt.timedelta(days=1)
        else:
            end = dt.datetime.fromisoformat(ending_at).astimezone(sandbox.workspace.tz)
            last = (
                (end - dt.timedelta(microseconds=1)).date()
                if end.time() == dt.time(0)
                else end.date()
            )
        if "starting_at" in params:
            first = (
                dt.datetime.fromisoformat(params["starting_at"])
                .astimezone(sandbox.workspace.tz)
                .date()
            )
        else:
            first = last - dt.timedelta(days=int(params["length"]) - 1)
        entity = next(
            (
                params[k]
                for k in ("canvas_id", "campaign_id", "event", "segment_id", "product")
                if k in params
            ),
            None,
        )
        out.append(Requested(record.path, entity, tuple(days(first, last))))
    return out


def window_labels(
    ws: Workspace, now: dt.datetime, params: Mapping[str, str], unit: str
) -> set[str]:
    """The bucket labels a logged series request covered."""
    ending_at, _ = sandbox_time.parse_iso(params["ending_at"], ws.tz)
    starts = ws.window(now=now, length=int(params["length"]), unit=unit, ending_at=ending_at)
    return {ws.bucket_label(s, unit) for s in starts}


def request_matches(stream: str, params: Mapping[str, str], partition: tuple) -> bool:
    """Whether a logged request's parameters are those of a stream's partition."""
    columns = STREAMS[stream][1]
    wanted = dict(zip(columns, partition, strict=True))
    if "canvas_id" in wanted:
        return params.get("canvas_id") == wanted["canvas_id"]
    if "campaign_id" in wanted:
        return params.get("campaign_id") == wanted["campaign_id"]
    if unit_of(stream) != params.get("unit", "day"):
        return False
    if "event_name" in wanted and params.get("event") != wanted["event_name"]:
        return False
    if "segment_id" in wanted and params.get("segment_id") != wanted["segment_id"]:
        return False
    if "app_id" in wanted:
        app = wanted["app_id"]
        return params.get("app_id") == (None if app == "*" else app)
    return True
