"""Flattening responses: documented metrics typed, unknown kept, bad points skipped and counted."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tap_braze_series import shapes
from tap_braze_series.endpoints import CANVAS_STAT_METRICS, MESSAGE_METRICS
from tap_braze_series.shapes import Issues
from tap_braze_series.windows import plan_windows

UTC = ZoneInfo("UTC")
[WINDOW] = plan_windows(dt.date(2024, 3, 1), dt.date(2024, 3, 3), "day", 14, UTC)
START = dt.date(2024, 3, 1)


def canvas_body(stats, message="success"):
    return {"message": message, "data": {"name": "Welcome", "stats": stats}}


def test_simple_series_skips_and_counts_bad_points():
    issues = shapes.Issues()
    items = [
        {"time": "2024-03-01", "count": 5},
        {"time": "2024-02-29", "count": 1},  # outside the window
        {"count": 2},  # no time
        {"time": "garbage", "count": 2},
        {"time": "2024-03-02", "count": None},
        {"time": "2024-03-03", "count": "seven"},
        "not an object",
    ]
    rows = list(
        shapes.simple_records(
            items, WINDOW, START, "day", UTC, {"event_name": "e"}, ("count",), issues
        )
    )
    assert rows == [
        {"event_name": "e", "time": "2024-03-01", "count": 5},
        {"event_name": "e", "time": "2024-03-02", "count": None},
        {"event_name": "e", "time": "2024-03-03", "count": None},
    ]
    assert issues.counts["bucket outside the requested window"] == 1
    assert issues.counts["point without a valid time"] == 2
    assert issues.counts["point is not an object"] == 1


def test_message_other_than_success_and_bad_data_are_payload_errors():
    with pytest.raises(shapes.PayloadError):
        shapes.data_list({"message": "error", "data": []})
    with pytest.raises(shapes.PayloadError):
        shapes.data_list({"message": "success", "data": {"a": 1}})
    with pytest.raises(shapes.PayloadError):
        shapes.canvas_data(canvas_body([], message="partial"))
    assert shapes.data_list({"message": "success", "data": []}) == []
    assert shapes.canvas_data({"message": "success", "data": {"name": "x"}}) == ("x", [])


def test_canvas_message_rows_keep_unknown_metrics_and_channels():
    stats = [
        {
            "time": "2024-03-02",
            "total_stats": {"revenue": 1.5, "conversions": 2, "entries": 3, "new_metric": 9},
            "step_stats": {
                "s1": {
                    "name": "Step 1",
                    "revenue": 0.0,
                    "conversions": 1,
                    "messages": {
                        "email": [{"sent": 10, "opens": 4, "machine_open": 2}, {"sent": 1}],
                        "carrier_pigeon": [{"sent": 3, "feathers": 7}],
                        "sms": [],
                        "push": "oops",
                    },
                }
            },
            "variant_stats": ["not", "a", "map"],
        }
    ]
    issues = shapes.Issues()
    body = canvas_body(stats)
    stat_cut = shapes.Cut(WINDOW, START, UTC, "canvas_id", "c1", issues, CANVAS_STAT_METRICS)
    total = list(shapes.canvas_total_records(body, stat_cut))
    assert total[0]["extra_metrics"] == {"new_metric": 9}
    assert total[0]["conversions_by_entry_time"] is None
    message_cut = shapes.Cut(WINDOW, START, UTC, "canvas_id", "c1", issues, MESSAGE_METRICS)
    rows = list(shapes.canvas_step_message_records(body, message_cut))
    assert [(r["channel"], r["message_index"], r["sent"]) for r in rows] == [
        ("email", 0, 10),
        ("email", 1, 1),
        ("carrier_pigeon", 0, 3),
    ]
    assert rows[0]["extra_metrics"] == {"machine_open": 2}
    assert rows[2]["extra_metrics"] == {"feathers": 7}
    assert list(shapes.canvas_variant_records(body, stat_cut)) == []
    assert issues.counts["'variant_stats' is not an object"] == 1
    assert issues.counts["a channel's messages are not a list"] == 1


def test_metric_of_the_wrong_type_is_kept_aside_not_lost():
    issues = shapes.Issues()
    row = shapes.metrics({"sent": 2.0, "opens": 1.5, "revenue": 3}, MESSAGE_METRICS, issues)
    assert row["sent"] == 2
    assert row["revenue"] == 3
    assert row["opens"] is None
    assert row["extra_metrics"] == {"opens": 1.5}
    assert issues.counts["metric 'opens' is not of type integer"] == 1


def test_records_before_the_partition_start_are_not_emitted():
    issues = shapes.Issues()
    items = [{"time": f"2024-03-0{d}", "size": d} for d in (1, 2, 3)]
    rows = list(
        shapes.simple_records(items, WINDOW, dt.date(2024, 3, 2), "day", UTC, {}, ("size",), issues)
    )
    assert [r["time"] for r in rows] == ["2024-03-02", "2024-03-03"]


# --- a response's points: bucket order, one per bucket, holes -------------------------

[MONTH] = plan_windows(dt.date(2024, 3, 1), dt.date(2024, 3, 10), "day", 14, UTC)


def day_points(*days_and_values):
    return [{"time": f"2024-03-{d:02d}", "count": v} for d, v in days_and_values]


def test_points_in_order_are_passed_through_untouched():
    issues = shapes.Issues()
    items = day_points(*((d, d) for d in range(1, 11)))
    points = shapes.ordered_points(items, MONTH, "day", UTC, issues, "e")
    assert points.items is items
    assert not points.changed
    assert points.first_missing(MONTH, leading_ok=False, tail_ok=False) is None
    body = {"message": "success", "data": items}
    assert shapes.with_points(body, points) is body
    assert not issues.counts


def test_points_are_sorted_and_a_repeated_bucket_keeps_its_last_point():
    issues = shapes.Issues()
    items = day_points((3, 30), (1, 10), (2, 20), (1, 11), (3, 31), (1, 12))
    points = shapes.ordered_points(items, MONTH, "day", UTC, issues, "event x")
    assert [(p["time"][-2:], p["count"]) for p in points.items] == [
        ("01", 12),
        ("02", 20),
        ("03", 31),
    ]
    assert issues.counts[shapes.DUPLICATE] == 3
    assert issues.examples[shapes.DUPLICATE].startswith("event x: 2024-03-")
    body = shapes.with_points({"message": "success", "data": {"name": "c", "stats": items}}, points)
    assert body["data"] == {"name": "c", "stats": points.items}


def test_first_missing_bucket_and_its_exceptions():
    issues = shapes.Issues()

    def missing(days, *, leading_ok=False, tail_ok=False, after=None):
        points = shapes.ordered_points(
            day_points(*((d, 1) for d in days)), MONTH, "day", UTC, issues, ""
        )
        return points.first_missing(MONTH, leading_ok=leading_ok, tail_ok=tail_ok, after=after)

    every = range(1, 11)
    assert missing(every) is None
    assert missing([d for d in every if d != 4]) == dt.date(2024, 3, 4)
    assert missing([d for d in every if d not in (4, 7)], after=dt.date(2024, 3, 5)) == dt.date(
        2024, 3, 7
    )
    assert missing(range(3, 11)) == dt.date(2024, 3, 1)
    # Before the entity's first data: not missing, but a hole after it is.
    assert missing(range(3, 11), leading_ok=True) is None
    assert missing([], leading_ok=True) is None
    assert missing([3, 5], leading_ok=True) == dt.date(2024, 3, 4)
    # At the run's end: buckets Braze has not produced yet, but not a hole before them.
    assert missing(range(1, 10)) == dt.date(2024, 3, 10)
    assert missing(range(1, 9), tail_ok=True) is None
    assert missing([1, 2, 4, 5], tail_ok=True) == dt.date(2024, 3, 3)
    assert missing([]) == dt.date(2024, 3, 1)
    assert missing([], tail_ok=True) is None
    cut = shapes.ordered_points(day_points((1, 1), (2, 2), (4, 4)), MONTH, "day", UTC, issues, "")
    assert [p["count"] for p in cut.before(dt.date(2024, 3, 3)).items] == [1, 2]


def test_a_variation_listed_twice_in_a_channel_makes_one_row():
    issues = shapes.Issues()
    point = {
        "time": "2024-03-01",
        "messages": {
            "email": [
                {"variation_api_id": "v1", "sent": 1},
                {"variation_api_id": "v2", "sent": 2},
                {"variation_api_id": "v1", "sent": 3},
            ]
        },
    }
    body = {"message": "success", "data": [point]}
    cut = shapes.Cut(WINDOW, START, UTC, "campaign_id", "c1", issues, MESSAGE_METRICS)
    rows = list(shapes.campaign_message_records(body, cut))
    assert [(r["variation_api_id"], r["sent"]) for r in rows] == [("v1", 3), ("v2", 2)]
    assert sum(issues.counts.values()) == 1


def test_zero_points_fill_the_buckets_a_count_series_left_out():
    issues = shapes.Issues()
    [window] = plan_windows(dt.date(2024, 3, 1), dt.date(2024, 3, 6), "day", 14, UTC)
    items = [{"time": "2024-03-04", "count": 7}, {"time": "2024-03-02", "count": 3}]
    points = shapes.ordered_points(items, window, "day", UTC, issues, "here")

    def zero(bucket):
        return shapes.ZeroPoint({"time": bucket.isoformat(), "count": 0})

    filled, added = shapes.with_zeros(points, dt.date(2024, 3, 2), dt.date(2024, 3, 5), zero)
    assert added == 2
    assert filled.buckets == [dt.date(2024, 3, d) for d in (2, 3, 4, 5)]
    rows = list(
        shapes.simple_records(
            filled.items, window, START, "day", UTC, {"event_name": "e"}, ("count",), issues
        )
    )
    assert [(r["time"], r["count"]) for r in rows] == [
        ("2024-03-02", 3),
        ("2024-03-03", 0),
        ("2024-03-04", 7),
        ("2024-03-05", 0),
    ]
    # The rows of the buckets Braze left out are told apart (zero_rows: false drops them).
    assert [type(r) is shapes.ZeroRow for r in rows] == [False, True, False, True]
    assert not issues.counts
    # Nothing to add: the same points.
    same, none = shapes.with_zeros(filled, dt.date(2024, 3, 2), dt.date(2024, 3, 5), zero)
    assert (same, none) == (filled, 0)


def test_hour_rows_carry_the_local_day_and_hour_around_a_dst_change():
    # America/New_York moves from -05:00 to -04:00 at 02:00 on 2024-03-10: that local
    # day has 23 hours, and its hours start at 05:00 UTC, so the UTC day of `time`
    # (what a loader keeps) is not the company's day for the evening hours.
    tz = ZoneInfo("America/New_York")
    first = dt.datetime(2024, 3, 10, 5, tzinfo=dt.timezone.utc)
    last = dt.datetime(2024, 3, 11, 3, tzinfo=dt.timezone.utc)
    [window] = plan_windows(first, last, "hour", 24 * 14, tz)
    items = [{"time": (first + dt.timedelta(hours=n)).isoformat(), "count": n} for n in range(23)]
    rows = list(shapes.simple_records(items, window, first, "hour", tz, {}, ("count",), Issues()))
    assert len(rows) == 23
    assert {row["date"] for row in rows} == {"2024-03-10"}
    assert [row["hour"] for row in rows] == [0, 1, *range(3, 24)]
    assert rows[-1]["time"] == "2024-03-10T23:00:00-04:00"
    assert rows[0]["time"] == "2024-03-10T00:00:00-05:00"
    day_rows = list(
        shapes.simple_records(
            [{"time": "2024-03-01", "count": 1}],
            WINDOW,
            START,
            "day",
            UTC,
            {},
            ("count",),
            Issues(),
        )
    )
    assert day_rows == [{"time": "2024-03-01", "count": 1}], "day rows have only `time`"
