"""Every stream's records equal the sandbox's expected values; requests are minimal."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tap_braze_series.shapes import bucket_key
from tests.harness.expected import assert_values_equal, days, entity_days, expected_simple
from tests.harness.messages import keyed
from tests.harness.running import run_tap
from tests.harness.sandboxes import READINGS

NOW = dt.datetime(
    2024, 6, 30, 15, 30, tzinfo=dt.timezone.utc
)  # 11:30 in New York: today is partial
TZ = "America/New_York"  # DST starts 2024-03-10 inside the range
START, END = dt.date(2024, 2, 1), dt.date(2024, 6, 30)
SEED_STREAMS = [
    "canvases",
    "segments",
    "events",
    "canvas_data_series",
    "canvas_variant_data_series",
    "canvas_step_data_series",
    "canvas_step_message_data_series",
    "event_data_series",
    "event_data_series_hourly",
    "segment_data_series",
    "session_data_series",
    "session_data_series_hourly",
]


@pytest.fixture(scope="module", params=list(READINGS))
def synced(request):
    config = SandboxConfig(
        **READINGS[request.param],
        seed=11,
        n_canvases=5,
        n_segments=6,
        n_events=12,
        n_campaigns=2,
        n_products=2,
        apps=("app_ios", "app_web"),
        timezone=TZ,
        now=NOW,
        restatement_days=3,
    )
    with Sandbox(config) as sb:
        tap_config = {
            "api_key": sb.api_key,
            "api_url": sb.url,
            "start_date": START.isoformat(),
            # The sandbox's clock, not the tap's: its partial buckets are the run's open ones.
            "end_date": NOW.isoformat(),
            "company_timezone": TZ,
            "app_ids": ["app_ios"],
            "max_workers": 4,
        }
        run = run_tap(tap_config, streams=SEED_STREAMS)
        assert run.returncode == 0, run.stderr[-3000:]
        yield sb, run


def test_canvas_total_variant_step_and_message_rows_equal_the_oracle(synced):
    sb, run = synced
    ws = sb.workspace
    canvases = [c for c in ws.canvases if not c.archived]
    assert {r["id"] for r in run.records["canvases"]} == {c.id for c in canvases}
    expected_total, expected_variant, expected_step, expected_message = {}, {}, {}, {}
    # Under the "ends_by" reading Braze never shows today's partial day.
    last = END if sb.config.ending_at_reading == "instant" else END - dt.timedelta(days=1)
    for canvas in canvases:
        for day in entity_days(ws, canvas, START, last):
            stat = ws.canvas_stats(canvas.id, day, now=NOW)
            time = day.isoformat()
            expected_total[(canvas.id, time)] = stat["total_stats"]
            for vid, v in stat["variant_stats"].items():
                expected_variant[(canvas.id, vid, time)] = v
            for sid, s in stat["step_stats"].items():
                expected_step[(canvas.id, sid, time)] = s
                for channel, entries in s["messages"].items():
                    for i, entry in enumerate(entries):
                        expected_message[(canvas.id, sid, time, channel, i)] = entry

    total = keyed(run.records["canvas_data_series"], ["canvas_id", "time"])
    assert total.keys() == expected_total.keys()
    for key, stats in expected_total.items():
        row = total[key]
        assert row["canvas_name"] == ws.canvas(key[0]).name
        for metric, value in stats.items():
            assert row[metric] == value, (key, metric)

    variant = keyed(run.records["canvas_variant_data_series"], ["canvas_id", "variant_id", "time"])
    assert variant.keys() == expected_variant.keys()
    for key, stats in expected_variant.items():
        assert variant[key]["variant_name"] == stats["name"]
        assert all(variant[key][m] == v for m, v in stats.items() if m != "name")

    step = keyed(run.records["canvas_step_data_series"], ["canvas_id", "step_id", "time"])
    assert step.keys() == expected_step.keys()
    deleted = {s.id for c in canvases for s in c.steps if s.deleted}
    assert deleted & {k[1] for k in step}, "deleted steps' history is exported"
    for key, stats in expected_step.items():
        assert step[key]["step_name"] == stats["name"]
        assert all(step[key][m] == v for m, v in stats.items() if m not in ("name", "messages"))

    message = keyed(
        run.records["canvas_step_message_data_series"],
        ["canvas_id", "step_id", "time", "channel", "message_index"],
    )
    assert message.keys() == expected_message.keys()
    extra_seen = False
    for key, entry in expected_message.items():
        row = message[key]
        for metric, value in entry.items():
            if metric in row:
                assert row[metric] == value, (key, metric)
            else:
                # Undocumented metrics are kept, not dropped.
                assert row["extra_metrics"][metric] == value, (key, metric)
                extra_seen = True
    assert extra_seen, "the sandbox returns undocumented metrics; they must be kept"


def test_event_rows_equal_the_oracle_for_all_apps_and_per_app(synced):
    sb, run = synced
    ws = sb.workspace
    assert {r["name"] for r in run.records["events"]} == set(ws.events)
    odd = [e for e in ws.events if any(ch in e for ch in " /&=?%+#") or not e.isascii()]
    assert len(odd) >= 5, "the sandbox lists events whose names need URL-encoding"
    entities = [({"event_name": e}, e) for e in ws.events]
    for stream, unit in (("event_data_series", "day"), ("event_data_series_hourly", "hour")):
        expected = expected_simple(
            ws,
            "/events/data_series",
            "count",
            unit=unit,
            first=START,
            last=END,
            now=NOW,
            entities=entities,
            apps=("*", "app_ios"),
        )
        assert_values_equal(
            stream, run.records[stream], expected, ["event_name", "app_id", "time"], "count"
        )


def test_hourly_rows_follow_the_company_time_zone_across_dst(synced):
    _, run = synced
    times = {r["time"] for r in run.records["session_data_series_hourly"] if r["app_id"] == "*"}
    spring = sorted(t for t in times if t.startswith("2024-03-10"))
    assert len(spring) == 23
    assert "2024-03-10T01:00:00-05:00" in spring
    assert "2024-03-10T03:00:00-04:00" in spring


def test_segment_and_session_rows_equal_the_oracle(synced):
    sb, run = synced
    ws = sb.workspace
    tracked = [s for s in ws.segments if s.analytics_tracking_enabled]
    assert len(tracked) < len(ws.segments), "some segments have tracking disabled"
    expected = expected_simple(
        ws,
        "/segments/data_series",
        "size",
        unit="day",
        first=START,
        last=END,
        now=NOW,
        entities=[({"segment_id": s.id}, s.id) for s in tracked],
    )
    stream = "segment_data_series"
    assert_values_equal(stream, run.records[stream], expected, ["segment_id", "time"], "size")
    untracked = {s.id for s in ws.segments} - {s.id for s in tracked}
    assert not any(
        r.params.get("segment_id") in untracked
        for r in sb.request_log
        if r.path == "/segments/data_series"
    ), "no request for untracked segments"
    assert "analytics tracking disabled" in run.stderr

    for stream, unit in (("session_data_series", "day"), ("session_data_series_hourly", "hour")):
        expected = expected_simple(
            ws,
            "/sessions/data_series",
            "sessions",
            unit=unit,
            first=START,
            last=END,
            now=NOW,
            apps=("*", "app_ios"),
        )
        assert_values_equal(stream, run.records[stream], expected, ["app_id", "time"], "sessions")


def test_request_count_is_the_minimum(synced):
    sb, _ = synced
    ws = sb.workspace
    by_path = Counter(r.path for r in sb.request_log if r.status == 200)
    n_days = len(days(START, END))
    canvases = [c for c in ws.canvases if not c.archived]
    tracked = [s for s in ws.segments if s.analytics_tracking_enabled]
    # 23 + 25 hours on the DST days: 150 days of hours.
    hours = n_days * 24 - 1
    assert by_path["/canvas/data_series"] == len(canvases) * math.ceil(n_days / 14)
    assert by_path["/segments/data_series"] == len(tracked) * math.ceil(n_days / 100)
    assert by_path["/events/data_series"] == len(ws.events) * 2 * (
        math.ceil(n_days / 100) + math.ceil(hours / 100)
    )
    assert by_path["/sessions/data_series"] == 2 * (
        math.ceil(n_days / 100) + math.ceil(hours / 100)
    )
    # Each list is read once, though both entity and series streams use it.
    assert by_path["/canvas/list"] == 1
    assert by_path["/events/list"] == 1


def test_primary_keys_are_unique_and_each_bookmark_is_its_partitions_last_row(synced):
    sb, run = synced
    tz = sb.workspace.tz
    bookmarks = run.state["bookmarks"]
    partial_shown = sb.config.ending_at_reading == "instant"
    for stream in SEED_STREAMS:
        keys = run.schemas[stream]["key_properties"]
        assert keys, f"{stream} declares no primary key"
        assert run.records[stream], f"{stream} exported no record"
        keyed(run.records[stream], keys)  # fails on a duplicate key
        if not (stream.endswith("series") or stream.endswith("hourly")):
            continue
        unit = "hour" if stream.endswith("hourly") else "day"
        partitions = bookmarks[stream]["partitions"]
        columns = {name for p in partitions for name in p["context"]}
        assert columns, f"{stream} has no partition"
        record_contexts = {tuple(sorted((c, r[c]) for c in columns)) for r in run.records[stream]}
        state_contexts = {tuple(sorted(p["context"].items())) for p in partitions}
        assert record_contexts <= state_contexts, (stream, record_contexts - state_contexts)
        for partition in partitions:
            context = partition["context"]
            times = [
                r["time"]
                for r in run.records[stream]
                if all(r.get(k) == v for k, v in context.items())
            ]
            value = partition.get("replication_key_value")
            if not times:
                assert value is None, (stream, partition)
                continue
            assert value == max(times, key=lambda t: bucket_key(t, unit, tz)), (stream, partition)
            if stream.startswith("canvas") or stream.startswith("segment"):
                # Zero-filled series end with the last bucket Braze has.
                assert value.startswith("2024-06-30" if partial_shown else "2024-06-29")


def test_unselected_streams_cost_no_request():
    config = SandboxConfig(seed=4, n_canvases=2, n_events=2, n_segments=2, now=NOW)
    with Sandbox(config) as sb:
        tap_config = {
            "api_key": sb.api_key,
            "api_url": sb.url,
            "start_date": "2024-06-01",
            "end_date": NOW.isoformat(),
        }
        run = run_tap(tap_config, streams=["canvas_data_series"])
        assert run.returncode == 0, run.stderr[-2000:]
        assert {r.path for r in sb.request_log} == {"/canvas/list", "/canvas/data_series"}
