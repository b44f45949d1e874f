"""The readings public recordings leave open, as the sandbox plays them.

By default the sandbox answers as recorded: count series leave out their zero
buckets, canvas/campaign/segment series are zero-filled, a date `ending_at` is
exclusive. A datetime `ending_at` is read either way (`ending_at_reading`), and the
count series can be zero-filled (`count_zero_buckets`).
"""

from __future__ import annotations

import pytest

from tap_braze_series.sandbox import Sandbox
from tap_braze_series.sandbox.__main__ import build_parser, config_from_args
from tap_braze_series.sandbox.endpoints import COUNT_SERIES, SERIES
from tests.harness.sandboxes import Client, sandbox_config

SMALL = {"n_canvases": 2, "n_campaigns": 2, "n_segments": 3, "n_events": 20, "n_products": 1}


@pytest.fixture(scope="module")
def readings():
    """One client per (ending_at reading, count zero buckets)."""
    clients = {}
    sandboxes = []
    for reading in ("instant", "ends_by"):
        for zeros in ("omitted", "filled"):
            sb = Sandbox(
                sandbox_config(
                    "large", **SMALL, ending_at_reading=reading, count_zero_buckets=zeros
                )
            ).start()
            sandboxes.append(sb)
            clients[(reading, zeros)] = Client(sb)
    yield clients
    for client in clients.values():
        client.close()
    for sb in sandboxes:
        sb.stop()


def _times(client, path="/canvas/data_series", **params):
    body = client.ok(path, **params)["data"]
    points = body["stats"] if isinstance(body, dict) else body
    return [p["time"] for p in points]


@pytest.mark.parametrize(
    ("ending_at", "instant_last", "ends_by_last"),
    [
        ("2024-03-06", "2024-03-05", "2024-03-05"),  # a date is exclusive (recorded)
        ("2024-03-06T00:00:00+00:00", "2024-03-05", "2024-03-05"),  # the exclusive end
        ("2024-03-05T23:59:59+00:00", "2024-03-05", "2024-03-04"),  # the last second
        ("2024-03-05T12:00:00+00:00", "2024-03-05", "2024-03-04"),
    ],
)
def test_a_day_window_ends_where_the_reading_says(readings, ending_at, instant_last, ends_by_last):
    canvas = readings[("instant", "filled")].sandbox.workspace.canvases[0].id
    for reading, last in (("instant", instant_last), ("ends_by", ends_by_last)):
        times = _times(
            readings[(reading, "filled")], canvas_id=canvas, length=3, ending_at=ending_at
        )
        assert times[-1] == last, reading
        assert len(times) == 3


def test_an_hour_window_ends_where_the_reading_says(readings):
    params = {"length": 2, "unit": "hour", "path": "/sessions/data_series"}
    exclusive = "2024-03-05T10:00:00+00:00"
    last_second = "2024-03-05T09:59:59+00:00"
    instant = readings[("instant", "filled")]
    ends_by = readings[("ends_by", "filled")]
    assert _times(instant, ending_at=exclusive, **params)[-1] == "2024-03-05T09:00:00+00:00"
    assert _times(ends_by, ending_at=exclusive, **params)[-1] == "2024-03-05T09:00:00+00:00"
    assert _times(instant, ending_at=last_second, **params)[-1] == "2024-03-05T09:00:00+00:00"
    assert _times(ends_by, ending_at=last_second, **params)[-1] == "2024-03-05T08:00:00+00:00"


def test_the_partial_bucket_appears_only_under_the_instant_reading(readings):
    # now is 2024-03-15T14:30Z: a bound in the future ends at now.
    for reading, last in (("instant", "2024-03-15"), ("ends_by", "2024-03-14")):
        assert _times(readings[(reading, "filled")], "/sessions/data_series", length=2)[-1] == last


def test_count_series_leave_out_their_zero_buckets_and_some_days_are_zero(readings):
    omitted, filled = readings[("instant", "omitted")], readings[("instant", "filled")]
    ws = omitted.sandbox.workspace
    params = {"length": 100, "ending_at": "2024-03-01"}
    zero_days = 0
    events_with_zeros = 0
    for event in ws.events:
        full = filled.ok("/events/data_series", event=event, **params)["data"]
        sparse = omitted.ok("/events/data_series", event=event, **params)["data"]
        assert len(full) == 100
        assert sparse == [p for p in full if p["count"] != 0]
        zeros = sum(1 for p in full if p["count"] == 0)
        zero_days += zeros
        events_with_zeros += zeros > 0
    assert events_with_zeros >= 3, "some events have days without occurrences"
    assert zero_days >= 60
    # Segment sizes, canvases and campaigns stay zero-filled.
    segment = next(s for s in ws.segments if s.analytics_tracking_enabled).id
    assert len(omitted.ok("/segments/data_series", segment_id=segment, **params)["data"]) == 100
    assert set(SERIES) - {"/segments/data_series"} == COUNT_SERIES


def test_the_readings_are_cli_flags():
    args = build_parser().parse_args(
        ["--ending-at-reading", "ends-by", "--count-zero-buckets", "filled"]
    )
    config = config_from_args(args)
    assert (config.ending_at_reading, config.count_zero_buckets) == ("ends_by", "filled")
    default = config_from_args(build_parser().parse_args([]))
    assert (default.ending_at_reading, default.count_zero_buckets) == ("instant", "omitted")
    with pytest.raises(ValueError, match="ending_at_reading"):
        sandbox_config("large", ending_at_reading="sideways")
    with pytest.raises(ValueError, match="count_zero_buckets"):
        sandbox_config("large", count_zero_buckets="sometimes")
