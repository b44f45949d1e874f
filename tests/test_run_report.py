"""What the run says about itself: progress lines, the end-of-run summary, log volume.

Every figure is checked against what the tap emitted (its RECORD messages) and
what the sandbox served (its request log).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from collections import Counter

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.harness.messages import TapRun
from tests.harness.running import run_tap
from tests.harness.sandboxes import tap_config

NOW = dt.datetime(2024, 3, 15, 12, tzinfo=dt.timezone.utc)
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \| (\w+)\s*\| (\S+)\s*\| (.*)$")


def log_lines(run: TapRun) -> list[tuple[float, str, str, str]]:
    """(epoch time, level, logger, message) of each log line of the run's stderr."""
    out = []
    for line in run.stderr.splitlines():
        match = LOG_LINE.match(line)
        if match:
            when = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((when, match.group(2), match.group(3), match.group(4)))
    return out


def summary_rows(run: TapRun) -> tuple[dict[str, list[str]], str]:
    """The summary block's rows by stream (cells as printed), and its total line."""
    lines = run.stderr.split("Run summary:\n", 1)[1].splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    assert header[:3] == ["stream", "records", "partitions"], lines[0]
    rows, total = {}, ""
    for line in lines[1:]:
        if line.startswith("  total: "):
            total = line
            break
        # Blank request cells are trailing spaces, stripped: pad them back.
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:] + [""] * (len(header) - len(cells))
    return rows, total


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


def served(sb: Sandbox, path: str, **params: str) -> list:
    return [
        r
        for r in sb.request_log
        if r.path == path and all(r.params.get(k) == v for k, v in params.items())
    ]


def test_the_summary_agrees_with_the_records_and_the_request_log():
    streams = [
        "canvas_data_series",
        "canvas_step_data_series",
        "event_data_series",
        "event_data_series_hourly",
        "canvases",
    ]
    cfg = SandboxConfig(
        seed=4, n_canvases=6, n_events=3, now=NOW, fault_rate=0.08, fault_kinds=("500",)
    )
    with Sandbox(cfg) as sb:
        run = run_tap(tap_config(sb.url, sb.api_key, NOW, "2024-01-20"), streams=streams)
        assert run.returncode == 0, run.stderr[-3000:]
        log = sb.request_log.snapshot()
        rows, total = summary_rows(run)
        assert list(rows) == [
            "canvas_step_data_series",
            "canvas_data_series",
            "canvases",
            "event_data_series",
            "event_data_series_hourly",
            "(lists, details)",
        ], "the streams in sync order, then the lists read for partitions"
        for stream in streams:
            records = run.records[stream]
            cells = rows[stream]
            assert number(cells[0]) == len(records), stream
            if stream == "canvases":
                assert cells[1:4] == ["-", "-", "-"]
                continue
            keys = ("canvas_id",) if stream.startswith("canvas") else ("event_name", "app_id")
            assert number(cells[1]) == len({tuple(r[k] for k in keys) for r in records})
            times = sorted(r["time"] for r in records)  # one offset (UTC): text order is time order
            assert cells[2:4] == [times[0], times[-1]], stream
        expected = {
            "canvas_step_data_series": served(sb, "/canvas/data_series"),
            "canvases": served(sb, "/canvas/list"),
            "event_data_series": served(sb, "/events/data_series", unit="day"),
            "event_data_series_hourly": served(sb, "/events/data_series", unit="hour"),
        }
        for stream, requests in expected.items():
            sent, retries, rate_limited = (number(c) for c in rows[stream][4:7])
            assert sent == len(requests), stream
            assert retries == sum(r.status == 500 for r in requests), stream
            assert rate_limited == sum(r.status == 429 for r in requests), stream
        assert rows["canvas_data_series"][4:] == ["", "", "", ""], "same requests as above"
        # The events list read for partitions, the canvases' details for their creation days.
        assert number(rows["(lists, details)"][4]) == len(served(sb, "/events/list")) + len(
            served(sb, "/canvas/details")
        )
        assert sum(r.status == 500 for r in log) > 0, "the faults were retried"
        assert f"{len(log):,} requests (" in total
        assert f"{sum(len(run.records[s]) for s in streams):,} records from 5 streams" in total


def test_progress_lines_agree_with_the_request_log():
    interval = 0.25
    cfg = SandboxConfig(seed=4, n_canvases=16, n_events=2, now=NOW, latency=0.03)
    with Sandbox(cfg) as sb:
        run = run_tap(
            tap_config(
                sb.url, sb.api_key, NOW, "2023-09-01", progress_interval=interval, max_workers=2
            ),
            streams=["canvas_data_series", "canvas_variant_data_series"],
        )
        assert run.returncode == 0, run.stderr[-3000:]
        log = served(sb, "/canvas/data_series")
        canvases = len({r.params["canvas_id"] for r in log})
    lines = [(t, m) for t, level, name, m in log_lines(run) if name.endswith(".progress")]
    assert len(lines) >= 5, run.stderr[-3000:]
    line_re = re.compile(
        r"^canvas: ([\d,]+) of ([\d,]+) partitions, ([\d,]+) of ([\d,]+) requests \(\d+%\), "
        r"([\d.,]+) requests/s \(limit: max_requests_per_hour 100,000/hour\), "
        r"([\d,]+) records, ETA (.+)$"
    )
    records = len(run.records["canvas_data_series"]) + len(
        run.records["canvas_variant_data_series"]
    )
    previous = None
    for when, message in lines:
        match = line_re.match(message)
        assert match, message
        done_parts, parts, done, planned, rate, written = (
            float(g.replace(",", "")) for g in match.groups()[:6]
        )
        assert parts == canvases
        assert planned == len(log), "planned requests are the requests the run sent"
        assert done_parts <= parts
        assert done <= planned
        # Requests done: the sandbox had answered them (its log is written before the
        # answer), and it had not answered many more a moment before the line.
        answered = sum(r.ended <= when + 0.002 for r in log)
        answered_before = sum(r.ended <= when - 1.5 for r in log)
        assert answered_before <= done <= answered, (message, answered_before, answered)
        assert rate > 0
        assert 0 <= written <= records
        if previous is not None:
            assert when - previous[0] >= interval - 0.002, "at most one line per interval"
            assert done >= previous[1]
            assert written >= previous[2]
        previous = (when, done, written)


def metric_points(run: TapRun) -> list[dict]:
    """The SDK's METRIC lines of the run, as the JSON they carry."""
    return [
        json.loads(message.removeprefix("METRIC: "))
        for _, _, name, message in log_lines(run)
        if name == "singer_sdk.metrics"
    ]


def test_record_count_metrics_count_each_partitions_records():
    streams = ["event_data_series", "event_data_series_hourly", "canvas_data_series", "events"]
    cfg = SandboxConfig(seed=4, n_canvases=4, n_events=5, now=NOW)
    with Sandbox(cfg) as sb:
        # app_ids: two partitions per event (all apps, one app), of different sizes.
        run = run_tap(
            tap_config(sb.url, sb.api_key, NOW, "2024-03-01", app_ids=[sb.workspace.apps[0]]),
            streams=streams,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    points = metric_points(run)
    keys = {
        "event_data_series": ("event_name", "app_id"),
        "event_data_series_hourly": ("event_name", "app_id"),
        "canvas_data_series": ("canvas_id",),
    }
    for stream in streams:
        counted: Counter = Counter()
        for point in points:
            tags = point["tags"]
            if point["metric"] == "record_count" and tags["stream"] == stream:
                context = tags.get("context") or {}
                counted[tuple(sorted(context.items()))] += point["value"]
        records = run.records[stream]
        if stream == "events":
            assert counted == {(): len(records)}
            continue
        emitted = Counter(tuple(sorted((k, r[k]) for k in keys[stream] if k in r)) for r in records)
        assert len(emitted) > 1, stream
        assert counted == emitted, stream
    timers = [p for p in points if p["metric"] == "sync_duration"]
    assert {p["tags"]["stream"] for p in timers} == set(streams)
    assert all("context" not in p["tags"] for p in timers), "a timer times a whole stream"


def info_lines(run: TapRun) -> Counter:
    """INFO-and-above log lines, by logger, without the numbers they carry.

    Not the SDK's METRIC lines: `record_count` has one line per partition by design
    (see test_record_count_metrics_count_each_partitions_records).
    """
    return Counter(
        (level, name)
        for _, level, name, message in log_lines(run)
        if level != "DEBUG" and name != "singer_sdk.metrics"
    )


def test_log_volume_does_not_grow_with_the_number_of_entities():
    streams = ["canvas_data_series", "canvas_step_data_series", "segment_data_series", "events"]
    counts = []
    for n in (3, 40):
        cfg = SandboxConfig(seed=4, n_canvases=n, n_segments=n, n_events=n, now=NOW)
        with Sandbox(cfg) as sb:
            run = run_tap(
                tap_config(sb.url, sb.api_key, NOW, "2024-02-20", progress_interval=0),
                streams=streams,
            )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "Starting incremental sync" not in run.stderr
        counts.append(info_lines(run))
    assert counts[0] == counts[1], (counts[0], counts[1])
    assert sum(counts[1].values()) < 40


def test_the_summary_of_a_run_that_cannot_connect_counts_no_request_sent():
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cfg = {"api_key": "k", "api_url": f"http://127.0.0.1:{port}", "start_date": "2024-03-01"}
    run = run_tap(cfg, streams=["kpi_dau_data_series"])
    assert run.returncode == 1
    assert "nothing was sent" in run.stderr
    total = run.stderr.split("Run stopped before its end; what it did:\n", 1)[1]
    total = next(line for line in total.splitlines() if line.startswith("  total: "))
    assert re.search(r"no request sent \(\d+ connection attempts? failed\)", total), total
    assert not re.search(r"\d+ requests? ", total), total
