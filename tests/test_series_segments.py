"""series_segment_ids: event and session series per segment, and upgrading from before it.

The runs resume from states the release before the setting wrote (tests/fixtures/
pre_segment_state): their partition contexts have no segment_id. Two days later in the
sandbox, with and without the setting, with and without app_ids.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.harness.expected import expected_simple
from tests.harness.messages import TapRun, keyed
from tests.harness.running import catalog_for, run_tap

FIXTURE = Path(__file__).parent / "fixtures" / "pre_segment_state"
RUN = json.loads((FIXTURE / "run.json").read_text())
NOW = dt.datetime(2024, 6, 12, 15, tzinfo=dt.timezone.utc)  # two days after the fixture's run
END = dt.date(2024, 6, 12)  # the last day, read up to NOW (end_date is NOW)
START = dt.date.fromisoformat(RUN["tap"]["start_date"])
SANDBOX = SandboxConfig(**{**RUN["sandbox"], "now": NOW})
WELCOME, LOYALTY = "5d085049-fe85-48ab-93ad-c6642c9b3748", "30bcd732-0cca-48f6-9d4a-2258f7398939"
WINBACK = "a5e266dd-a193-4cd8-ae8f-6162eaccd06c"  # analytics tracking disabled
UNKNOWN = "no-such-segment"
SERIES_SEGMENT_IDS = [WELCOME, WINBACK, UNKNOWN, LOYALTY]
STREAMS = {  # stream -> (path, value field, unit, key columns before app_id)
    "event_data_series": ("/events/data_series", "count", "day", ["event_name"]),
    "event_data_series_hourly": ("/events/data_series", "count", "hour", ["event_name"]),
    "session_data_series": ("/sessions/data_series", "sessions", "day", []),
    "session_data_series_hourly": ("/sessions/data_series", "sessions", "hour", []),
}
# lookback_days is 2: the bookmarks of the fixture (2024-06-10, 10:00 New York) minus 2 days.
RESUMED_FROM = {"day": "2024-06-08", "hour": "2024-06-08T10:00:00-04:00"}
STATES = {"without apps": "state_all_apps.json", "with app_ios": "state_per_app.json"}


def fixture_state(case: str) -> dict:
    return json.loads((FIXTURE / STATES[case]).read_text())


def apps_of(case: str) -> list[str]:
    return RUN["states"][STATES[case]].get("app_ids", [])


_runs: dict[tuple[str, bool], tuple[Sandbox, TapRun]] = {}


def upgraded(case: str, segments: bool) -> tuple[Sandbox, TapRun]:
    """The tap of this checkout resuming from the fixture state of `case`."""
    if (case, segments) not in _runs:
        with Sandbox(SANDBOX) as sb:
            config = {
                "api_key": sb.api_key,
                "api_url": sb.url,
                **RUN["tap"],
                "end_date": NOW.isoformat(),
                **RUN["states"][STATES[case]],
            }
            if segments:
                config["series_segment_ids"] = SERIES_SEGMENT_IDS
            run = run_tap(config, state=fixture_state(case), streams=list(STREAMS))
        assert run.returncode == 0, run.stderr[-3000:]
        _runs[case, segments] = (sb, run)
    return _runs[case, segments]


def t(time: str, unit: str) -> object:
    return dt.date.fromisoformat(time) if unit == "day" else dt.datetime.fromisoformat(time)


@pytest.mark.parametrize("segments", [False, True], ids=["without segments", "with segments"])
@pytest.mark.parametrize("case", list(STATES))
def test_a_pre_segment_state_resumes_without_reading_history_again(case, segments):
    sb, run = upgraded(case, segments)
    old = fixture_state(case)["bookmarks"]
    new = run.state["bookmarks"]
    for stream, (_path, _field, unit, _keys) in STREAMS.items():
        everyone = [r for r in run.records[stream] if r["segment_id"] == "*"]
        first = min(t(r["time"], unit) for r in everyone)
        assert first == t(RESUMED_FROM[unit], unit), (stream, "resumes at bookmark - lookback")
        # The old contexts are the all-users partitions: resumed, advanced, not doubled.
        old_contexts = [p["context"] for p in old[stream]["partitions"]]
        all_users = [p for p in new[stream]["partitions"] if "segment_id" not in p["context"]]
        assert [p["context"] for p in all_users] == old_contexts
        assert all(p["replication_key_value"].startswith("2024-06-12") for p in all_users)
        assert not any(p["context"].get("segment_id") == "*" for p in new[stream]["partitions"])
        segment_rows = [r for r in run.records[stream] if r["segment_id"] != "*"]
        if segments:
            # A new segment backfills from start_date.
            assert {r["segment_id"] for r in segment_rows} == {WELCOME, LOYALTY}
            assert min(t(r["time"], unit) for r in segment_rows) == t(
                f"{START}" if unit == "day" else f"{START}T00:00:00-04:00", unit
            )
        else:
            assert segment_rows == []
    # All-users partitions ask only for the buckets from the lookback on: one day window,
    # and the hours up to NOW in windows of 100.
    hours = (NOW - dt.datetime.fromisoformat(RESUMED_FROM["hour"])) // dt.timedelta(hours=1)
    for path, stream in (
        ("/events/data_series", "event_data_series"),
        ("/sessions/data_series", "session_data_series"),
    ):
        asked = Counter(
            r.params.get("unit", "day")
            for r in sb.request_log
            if r.path == path and "segment_id" not in r.params
        )
        n = len(old[stream]["partitions"])
        assert asked == {"day": n, "hour": n * math.ceil(hours / 100)}, path


@pytest.mark.parametrize("case", list(STATES))
def test_every_value_equals_the_oracle_for_all_users_and_each_segment(case):
    sb, run = upgraded(case, segments=True)
    ws = sb.workspace
    apps = ["*", *apps_of(case)]
    for stream, (path, field, unit, keys) in STREAMS.items():
        entities = [({"event_name": e}, e) for e in ws.events] if keys else [({}, None)]
        common = dict(unit=unit, last=END, now=NOW, entities=entities, apps=apps)
        resumed = t(RESUMED_FROM[unit], unit)
        everyone = [
            row
            for row in expected_simple(
                ws,
                path,
                field,
                first=resumed - dt.timedelta(days=1) if unit == "hour" else resumed,
                segments=["*"],
                **common,
            )
            if t(row["time"], unit) >= resumed
        ]
        per_segment = expected_simple(
            ws, path, field, first=START, segments=[WELCOME, LOYALTY], **common
        )
        columns = [*keys, "app_id", "segment_id", "time"]
        got = keyed(run.records[stream], columns)
        want = keyed(everyone + per_segment, columns)
        assert got.keys() == want.keys(), stream
        assert {k: r[field] for k, r in got.items()} == {k: r[field] for k, r in want.items()}
        assert len({r[field] for r in per_segment}) > 10, "values differ by segment"


def test_segments_braze_does_not_list_or_track_are_skipped_with_one_warning_each():
    sb, run = upgraded("with app_ios", segments=True)
    untracked = [line for line in run.stderr.splitlines() if WINBACK in line]
    assert len(untracked) == 1, untracked
    assert "series_segment_ids" in untracked[0]
    assert "analytics tracking disabled" in untracked[0]
    unknown = [line for line in run.stderr.splitlines() if UNKNOWN in line]
    assert len(unknown) == 1, unknown
    assert "series_segment_ids" in unknown[0]
    assert "does not list" in unknown[0]
    asked = {r.params.get("segment_id") for r in sb.request_log}
    assert WINBACK not in asked
    assert UNKNOWN not in asked
    assert all(r.status == 200 for r in sb.request_log)


@pytest.mark.parametrize("case", list(STATES))
def test_the_cost_of_the_segments_is_logged_once_and_is_what_the_run_requests(case):
    sb, run = upgraded(case, segments=True)
    lines = [line for line in run.stderr.splitlines() if "series_segment_ids: " in line]
    lines = [line for line in lines if "multiply" in line]
    assert len(lines) == 1, lines
    line = lines[0]
    n_apps = 1 + len(apps_of(case))
    n_events = len(sb.workspace.events)
    assert f"event_data_series ({n_events} event_name x {n_apps} app_id x 3 segment_id" in line
    assert f"session_data_series_hourly ({n_apps} app_id x 3 segment_id = {n_apps * 3})" in line
    total, extra = map(int, re.search(r"(\d+) requests .*?, (\d+) of them", line).groups())
    series = [
        r for r in sb.request_log if r.path in ("/events/data_series", "/sessions/data_series")
    ]
    assert total == len(series)
    assert extra == len([r for r in series if "segment_id" in r.params])
    # Per segment partition: the whole history, one day window and ceil(hours / 100).
    hours = (NOW - dt.datetime.combine(START, dt.time(), sb.workspace.tz)) // dt.timedelta(hours=1)
    per_partition = 1 + math.ceil(hours / 100)
    assert extra == 2 * (n_events + 1) * n_apps * per_partition


@pytest.mark.parametrize(
    ("settings", "event_key", "session_key"),
    [
        ({}, ["event_name", "time"], ["time"]),
        ({"app_ids": ["app_ios"]}, ["event_name", "app_id", "time"], ["app_id", "time"]),
        (
            {"series_segment_ids": [WELCOME]},
            ["event_name", "segment_id", "time"],
            ["segment_id", "time"],
        ),
        (
            {"app_ids": ["app_ios"], "series_segment_ids": [WELCOME]},
            ["event_name", "app_id", "segment_id", "time"],
            ["app_id", "segment_id", "time"],
        ),
    ],
)
def test_segment_id_joins_the_key_only_with_the_setting(settings, event_key, session_key):
    config = {"api_key": "k", "api_url": "http://127.0.0.1:9", "start_date": "2024-01-01"}
    catalog = {s["tap_stream_id"]: s for s in catalog_for({**config, **settings}, None)["streams"]}
    for stream, (_path, _field, _unit, keys) in STREAMS.items():
        entry = catalog[stream]
        assert entry["key_properties"] == (event_key if keys else session_key), stream
        segment = entry["schema"]["properties"]["segment_id"]
        assert segment["type"] == ["string"], "a key column is never null"
        assert "segment_id" in entry["schema"]["required"]


@pytest.mark.parametrize("segments", [False, True], ids=["without segments", "with segments"])
def test_rows_always_carry_segment_id_and_no_key_column_is_null(segments):
    _, run = upgraded("with app_ios", segments)
    for stream in STREAMS:
        keys = run.schemas[stream]["key_properties"]
        assert ("segment_id" in keys) is segments
        assert run.records[stream]
        for record in run.records[stream]:
            assert record["segment_id"] in ("*", WELCOME, LOYALTY)
            assert all(isinstance(record[k], str) and record[k] for k in keys), record
