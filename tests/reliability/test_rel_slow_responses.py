"""A heavy tail of response times changes nothing but the wall time.

The same sync against the same sandbox, once with uniform response times and once
with a quarter of the requests (the same ones each time: a hash of the request)
much slower than the rest: the records of every stream are identical and in the
same order, every STATE message claims only buckets already emitted, each window
is requested once, and never more than `max_workers` requests are in flight.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from tests.harness.messages import bookmarks, bucket_order, context_key, parse_line
from tests.harness.running import catalog_for, run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 20, 12, tzinfo=dt.timezone.utc)
START = "2024-01-01"
WORKERS = 3
SELECTED = [
    "canvas_step_message_data_series",
    "canvas_step_data_series",
    "canvas_variant_data_series",
    "canvas_data_series",
    "event_data_series_hourly",
]


@pytest.fixture(scope="module")
def runs():
    out = {}
    with sandbox(now=NOW, n_canvases=3, n_events=2) as sb:
        config = tap_config(sb.url, sb.api_key, NOW, START, max_workers=WORKERS)
        catalog_for(config, SELECTED)  # discovery outside the request logs
        for name, tail_rate in (("uniform", 0.0), ("tail", 0.25)):
            sb.set_latency(0.0, tail_rate=tail_rate, tail_latency=0.4)
            sb.clear_log()
            run = run_tap(config, streams=SELECTED)
            assert run.returncode == 0, run.stderr[-3000:]
            out[name] = (run, sb.request_log.snapshot())
    return out


def test_records_are_identical_and_in_the_same_order(runs):
    uniform, tail = runs["uniform"][0], runs["tail"][0]
    assert set(uniform.records) == set(SELECTED)
    for stream in SELECTED:
        assert tail.records[stream] == uniform.records[stream], stream
    assert tail.state == uniform.state


def test_slow_requests_were_in_flight_and_each_window_asked_once(runs):
    (_, uniform_log), (_, tail_log) = runs["uniform"], runs["tail"]
    slow = [r for r in tail_log if r.latency > 0]
    assert slow, "the tail made no request slow"

    def asked(log):
        return Counter((r.path, json.dumps(r.params, sort_keys=True)) for r in log)

    assert asked(tail_log) == asked(uniform_log)
    assert max(asked(tail_log).values()) == 1
    assert max(r.in_flight for r in tail_log) <= WORKERS


def test_every_state_claims_only_emitted_buckets(runs):
    run = runs["tail"][0]
    emitted: dict[tuple[str, tuple], set] = {}
    for index, line in enumerate(run.stdout.splitlines()):
        message = parse_line(index, line)
        if message.kind == "RECORD" and message.stream in SELECTED:
            key = (message.stream, context_key(message.stream, message.record))
            emitted.setdefault(key, set()).add(bucket_order(message.record["time"]))
        elif message.kind == "STATE":
            for stream, partitions in bookmarks(message.value).items():
                for context, value in partitions.items():
                    assert bucket_order(value) in emitted.get((stream, context), set()), (
                        stream,
                        context,
                        value,
                    )
