"""An endpoint that keeps failing: bounded retries, one clear error, a resumable state."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict

import pytest

from tests.harness.expected import oracle
from tests.harness.messages import bookmarks, bucket_order, context_key, keys_of, record_key
from tests.harness.proxy import Proxy
from tests.harness.running import run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2024, 1, 1)
APPS = ["app_ios"]
KEY = "persistent-key-5d1c0e"


def error_line(run) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "tap-braze-series: error:" in line]
    assert len(lines) == 1, run.stderr[-3000:]
    assert KEY not in run.stderr
    assert KEY not in run.stdout
    return lines[0]


def identity(path: str, params: dict) -> tuple:
    return path, tuple(sorted(params.items()))


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "drop", "truncated", "slow"])
def test_every_kind_of_persistent_fault_is_retried_exactly_max_retries_times(kind):
    retries = 3
    with sandbox(
        now=NOW,
        api_key=KEY,
        fault_rate=1.0,
        fault_max_repeats=10_000,
        fault_kinds=(kind,),
        slow_seconds=1.5,
    ) as sb:
        config = tap_config(
            sb.url, KEY, NOW, "2024-03-01", max_retries=retries, max_workers=1, request_timeout=0.3
        )
        run = run_tap(config, streams=["session_data_series"])
        line = error_line(run)
        assert "/sessions/data_series" in line, line
        assert f"{retries + 1} times" in line, line
        if kind == "slow":
            time.sleep(2.5)  # stalled requests are logged when their stall ends
        attempts = Counter(identity(r.path, r.params) for r in sb.request_log)
        # One request (the only window of the only partition), tried 1 + max_retries times.
        assert list(attempts.values()) == [retries + 1], attempts
        assert {r.fault for r in sb.request_log} == {kind}


def fail_then_resume(sb, config, streams, fail) -> dict:
    """The sandbox and streams, a run through a proxy answering `fail`'s statuses
    ("failed"), its proxy log, and the run resuming from its state straight against
    the sandbox ("resumed")."""
    with Proxy(sb.url, fail=fail) as proxy:
        failed = run_tap({**config, "api_url": proxy.url}, streams=streams)
        proxy_log = list(proxy.log)
    return {
        "sb": sb,
        "streams": streams,
        "failed": failed,
        "proxy_log": proxy_log,
        "resumed": run_tap(config, state=failed.state, streams=streams),
    }


@pytest.fixture(scope="module")
def failing_sessions():
    """A run whose last stream's endpoint always answers 503, then the resumed run."""
    streams = ["canvas_data_series", "event_data_series", "session_data_series"]
    with sandbox(now=NOW, api_key=KEY) as sb:
        config = tap_config(
            sb.url, KEY, NOW, START.isoformat(), app_ids=APPS, max_retries=2, max_workers=2
        )
        clean = run_tap(config, streams=streams)
        assert clean.returncode == 0, clean.stderr[-3000:]

        def fail(path, _params):
            return 503 if path == "/sessions/data_series" else None

        yield {**fail_then_resume(sb, config, streams, fail), "clean": clean}


def test_failing_endpoint_ends_the_run_with_one_clear_line(failing_sessions):
    failed = failing_sessions["failed"]
    line = error_line(failed)
    assert "/sessions/data_series" in line, line
    assert "3 times" in line, line
    attempts = Counter(
        identity(r.path, r.params)
        for r in failing_sessions["proxy_log"]
        if r.path == "/sessions/data_series"
    )
    # Bounded: no request is tried more than 1 + max_retries times; the one reported was.
    assert attempts
    assert max(attempts.values()) == 3
    assert set(attempts.values()) <= {1, 2, 3}
    # The streams before it completed and their STATE was emitted before the failure.
    assert failed.state is not None
    assert {"canvas_data_series", "event_data_series"} <= set(failed.state["bookmarks"])


def test_resuming_after_the_fault_clears_completes_the_output(failing_sessions):
    sb = failing_sessions["sb"]
    failed, resumed, clean = (failing_sessions[k] for k in ("failed", "resumed", "clean"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for stream in failing_sessions["streams"]:
        want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
        union = {}
        for run in (failed, resumed):
            for record in run.records[stream]:
                union[record_key(stream, record)] = record
        assert union.keys() == want.keys(), stream
        # The resumed run has the failed stream in full.
        if stream == "session_data_series":
            assert {record_key(stream, r) for r in resumed.records[stream]} == want.keys()
    assert bookmarks(resumed.state) == bookmarks(clean.state)


@pytest.fixture(scope="module")
def failing_mid_partition():
    """The last window of one event partition always fails: a stream stops half-way."""
    streams = ["event_data_series"]
    with sandbox(now=NOW, api_key=KEY, n_events=4) as sb:
        victim = sb.workspace.events[1]
        config = tap_config(
            sb.url, KEY, NOW, START.isoformat(), app_ids=APPS, max_retries=1, max_workers=1
        )

        def fail(path, params):
            # 2024-01-01..04-30 is two windows (100 + 21 days): fail the second one.
            if (
                path == "/events/data_series"
                and params.get("event") == victim
                and "app_id" not in params
                and params.get("length") != "100"
            ):
                return 503
            return None

        yield {**fail_then_resume(sb, config, streams, fail), "victim": victim}


def test_a_stream_failing_half_way_claims_nothing_it_did_not_emit(failing_mid_partition):
    failed = failing_mid_partition["failed"]
    victim = failing_mid_partition["victim"]
    line = error_line(failed)
    assert "/events/data_series" in line, line
    assert "2 times" in line, line
    stream = "event_data_series"
    emitted = {record_key(stream, r) for r in failed.records[stream]}
    victim_days = sorted(t for e, a, t in emitted if e == victim and a == "*")
    assert victim_days, "the first window was emitted"
    assert victim_days[-1] == "2024-04-09"
    # Whatever STATE it managed to emit claims nothing that was not emitted before it.
    emitted_so_far: set = set()
    lines = failed.stdout.splitlines()
    for raw in lines:
        message = json.loads(raw)
        if message["type"] == "RECORD":
            emitted_so_far.add(record_key(message["stream"], message["record"]))
        elif message["type"] == "STATE":
            for partition, value in bookmarks(message["value"]).get(stream, {}).items():
                context = dict(partition)
                for day in (dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(121)):
                    if bucket_order(day.isoformat()) <= bucket_order(value):
                        key = (context["event_name"], context["app_id"], day.isoformat())
                        assert key in emitted_so_far, (partition, value, key)


def test_resuming_a_stream_that_failed_half_way_completes_it(failing_mid_partition):
    sb = failing_mid_partition["sb"]
    failed, resumed = failing_mid_partition["failed"], failing_mid_partition["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stream = "event_data_series"
    want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
    union: dict = {}
    for run in (failed, resumed):
        for record in run.records[stream]:
            key = record_key(stream, record)
            assert record["count"] == want[key]["count"], key
            union[key] = record
    assert union.keys() == want.keys()
    by_partition: dict = defaultdict(set)
    for key in union:
        by_partition[context_key(stream, dict(zip(keys_of(stream), key, strict=True)))].add(key)
    assert len(by_partition) == 2 * len(sb.workspace.events)


def test_401_is_not_retried():
    with sandbox(now=NOW, api_key=KEY) as sb:
        config = tap_config(
            sb.url, "not-the-" + KEY, NOW, "2024-03-01", max_retries=5, max_workers=4
        )
        run = run_tap(config, streams=["canvas_data_series", "session_data_series"])
        line = error_line(run)
        assert "401" in line
        assert "not-the-" not in run.stderr
        attempts = Counter(identity(r.path, r.params) for r in sb.request_log)
        assert attempts
        assert set(attempts.values()) == {1}, attempts
        assert {r.status for r in sb.request_log} == {401}


def test_403_is_not_retried():
    streams = ["event_data_series", "segment_data_series", "session_data_series"]
    with sandbox(now=NOW, api_key=KEY, denied_permissions={"events.data_series"}) as sb:
        config = tap_config(
            sb.url, KEY, NOW, START.isoformat(), app_ids=APPS, max_retries=5, max_workers=4
        )
        run = run_tap(config, streams=streams)
        line = error_line(run)
        assert "403" in line
        assert "events.data_series" in line
        assert "event_data_series" in line
        refused = Counter(identity(r.path, r.params) for r in sb.request_log if r.status == 403)
        assert refused
        assert set(refused.values()) == {1}, refused
        assert not [r for r in sb.request_log if r.path == "/sessions/data_series"], (
            "the run stopped at the refused stream"
        )
