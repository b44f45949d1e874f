"""Flattening responses: documented metrics typed, unknown kept, bad points skipped and counted."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tap_braze_series import shapes
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
    name, points = shapes.canvas_data(canvas_body(stats))
    total = list(shapes.canvas_total_records(name, points, WINDOW, START, UTC, "c1", issues))
    assert total[0]["extra_metrics"] == {"new_metric": 9}
    assert total[0]["conversions_by_entry_time"] is None
    rows = list(shapes.canvas_step_message_records(name, points, WINDOW, START, UTC, "c1", issues))
    assert [(r["channel"], r["message_index"], r["sent"]) for r in rows] == [
        ("email", 0, 10),
        ("email", 1, 1),
        ("carrier_pigeon", 0, 3),
    ]
    assert rows[0]["extra_metrics"] == {"machine_open": 2}
    assert rows[2]["extra_metrics"] == {"feathers": 7}
    assert list(shapes.canvas_variant_records(name, points, WINDOW, START, UTC, "c1", issues)) == []
    assert issues.counts["'variant_stats' is not an object"] == 1
    assert issues.counts["a channel's messages are not a list"] == 1


def test_metric_of_the_wrong_type_is_kept_aside_not_lost():
    issues = shapes.Issues()
    row = shapes.metrics({"sent": 2.0, "opens": 1.5, "revenue": 3}, shapes.MESSAGE_METRICS, issues)
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
