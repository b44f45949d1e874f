"""The records the tap writes, whichever path the SDK's per-record steps take.

When nothing is deselected, mapped or flattened, the tap skips the SDK's
per-record steps (they would change nothing) and writes the RECORD line
itself. These tests pin that the short path writes what the SDK writes, and
that selection, stream maps and flattening still apply when configured.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from contextlib import redirect_stdout

import pytest
from singer_sdk.helpers._util import utc_now
from singer_sdk.singerlib import RecordMessage

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tap_braze_series.writer import StateFlushingWriter
from tests.harness.messages import keyed
from tests.harness.running import catalog_for, run_tap

NOW = dt.datetime(2024, 4, 10, 12, tzinfo=dt.timezone.utc)
STREAMS = ["event_data_series", "canvas_step_message_data_series"]
CANVAS = "canvas_step_message_data_series"
CANVAS_KEYS = ("canvas_id", "step_id", "time", "channel", "message_index")


@pytest.fixture(scope="module")
def sb():
    config = SandboxConfig(seed=11, n_canvases=3, n_events=3, now=NOW)
    with Sandbox(config) as sb:
        yield sb


@pytest.fixture(scope="module")
def config(sb):
    return {
        "api_key": sb.api_key,
        "api_url": sb.url,
        "start_date": "2024-03-25",
        "end_date": "2024-04-09",
    }


@pytest.fixture(scope="module")
def plain(config):
    run = run_tap(config, streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def record_lines(stdout: str) -> list[dict]:
    return [m for m in map(json.loads, stdout.splitlines()) if m["type"] == "RECORD"]


def test_writer_short_path_writes_the_line_the_sdk_message_writes():
    record = {
        "event_name": "a/b & c",
        "app_id": "*",
        "time": "2024-03-10T03:00:00-04:00",
        "count": 7,
        "extra_metrics": {"revenue": 1.5},
    }
    extracted = utc_now()
    lines = []
    for write in (
        lambda w: w.write_message(
            RecordMessage(stream="s", record=record, version=3, time_extracted=extracted)
        ),
        lambda w: w.write_record("s", record, 3, extracted),
        lambda w: w.write_message(
            RecordMessage(stream="s", record=record, time_extracted=extracted)
        ),
        lambda w: w.write_record("s", record, None, extracted),
    ):
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        with redirect_stdout(out):
            writer = StateFlushingWriter()
            write(writer)
            writer.flush()
        out.seek(0)
        lines.append(out.read())
    assert lines[0] == lines[1]
    assert lines[2] == lines[3]
    assert '"version"' not in lines[3]


def test_plain_run_writes_complete_singer_record_messages(plain):
    messages = record_lines(plain.stdout)
    assert {m["stream"] for m in messages} == set(STREAMS)
    for message in messages:
        assert set(message) == {"type", "stream", "record", "time_extracted"}
        assert dt.datetime.fromisoformat(message["time_extracted"]).tzinfo is not None
    schema = plain.schemas[CANVAS]["schema"]["properties"]
    for record in plain.records[CANVAS]:
        assert set(record) == set(schema)


def test_a_deselected_property_is_left_out(config, plain):
    catalog = catalog_for(config, STREAMS)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == CANVAS:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == ["properties", "step_name"]:
                    meta["metadata"]["selected"] = False
    run = run_tap(config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    got = keyed(run.records[CANVAS], CANVAS_KEYS)
    want = keyed(plain.records[CANVAS], CANVAS_KEYS)
    assert got.keys() == want.keys()
    for key, record in got.items():
        assert "step_name" not in record
        assert record == {k: v for k, v in want[key].items() if k != "step_name"}
    # The other stream is untouched.
    assert run.records["event_data_series"] == plain.records["event_data_series"]


def test_stream_maps_and_filters_still_apply(config, plain):
    counts = sorted(r["count"] for r in plain.records["event_data_series"])
    median = counts[len(counts) // 2]
    maps = {
        "event_data_series": {
            "__alias__": "events_daily",
            "__filter__": f"count > {median}",
            "double_count": "count * 2",
        }
    }
    run = run_tap({**config, "stream_maps": maps}, streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "event_data_series" not in run.records
    source = [r for r in plain.records["event_data_series"] if r["count"] > median]
    assert len(source) < len(plain.records["event_data_series"]), "the filter must drop rows"
    assert run.records["events_daily"] == [{**r, "double_count": 2 * r["count"]} for r in source]


def test_flattening_still_applies(config, plain):
    run = run_tap(
        {**config, "flattening_enabled": True, "flattening_max_depth": 1}, streams=STREAMS
    )
    assert run.returncode == 0, run.stderr[-3000:]
    nested = keyed([r for r in plain.records[CANVAS] if r.get("extra_metrics")], CANVAS_KEYS)
    assert nested, "some message rows carry undocumented metrics (machine_open, ...)"
    flat = keyed(run.records[CANVAS], CANVAS_KEYS)
    for key, record in nested.items():
        for metric, value in record["extra_metrics"].items():
            assert flat[key][f"extra_metrics__{metric}"] == value
        assert "extra_metrics" not in flat[key]


CANVAS_FAMILY = [
    "canvas_data_series",
    "canvas_step_data_series",
    "canvas_step_message_data_series",
    "canvas_variant_data_series",
]


@pytest.fixture(scope="module")
def family_run(sb, config):
    sb.clear_log()
    run = run_tap(config, streams=CANVAS_FAMILY)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, list(sb.request_log)


def test_one_request_serves_a_familys_members_driver_first(sb, family_run):
    run, log = family_run
    order = []
    for message in record_lines(run.stdout):
        if message["stream"] not in order:
            order.append(message["stream"])
    assert order == [
        "canvas_step_message_data_series",
        "canvas_step_data_series",
        "canvas_variant_data_series",
        "canvas_data_series",
    ]
    # One request per canvas window serves all four (16 days: two windows of <= 14).
    live = [c for c in sb.workspace.canvases if not c.archived]
    series = [r for r in log if r.path == "/canvas/data_series"]
    assert len(series) == 2 * len(live)


def test_members_write_each_partition_before_the_driver_writes_the_next(family_run):
    run, _log = family_run
    driver = "canvas_step_message_data_series"
    first_of_driver: dict[str, int] = {}
    last_of_member: dict[str, int] = {}
    for position, message in enumerate(record_lines(run.stdout)):
        canvas = message["record"]["canvas_id"]
        if message["stream"] == driver:
            first_of_driver.setdefault(canvas, position)
        else:
            last_of_member[canvas] = position
    canvases = list(first_of_driver)
    assert len(canvases) >= 2
    assert set(last_of_member) <= set(canvases)
    for canvas, following in itertools.pairwise(canvases):
        assert last_of_member[canvas] < first_of_driver[following], canvas


@pytest.mark.parametrize("stream", CANVAS_FAMILY)
def test_a_member_writes_the_rows_and_state_it_writes_when_synced_alone(config, family_run, stream):
    run, _log = family_run
    alone = run_tap(config, streams=[stream])
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert run.records[stream] == alone.records[stream]
    assert run.records[stream], stream
    assert run.state["bookmarks"][stream] == alone.state["bookmarks"][stream]
