"""Transient faults on 20% of requests change nothing in the output or the final state."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest

from tap_braze_series.sandbox import FAULT_KINDS
from tests.harness.expected import assert_matches, oracle
from tests.harness.messages import keyed, keys_of
from tests.harness.running import run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2024, 3, 1)
SERIES = [
    "canvas_data_series",
    "canvas_variant_data_series",
    "canvas_step_data_series",
    "canvas_step_message_data_series",
    "campaign_data_series",
    "campaign_message_data_series",
    "event_data_series",
    "event_data_series_hourly",
    "segment_data_series",
    "session_data_series",
]
ENTITIES = ["canvases", "campaigns", "segments", "events"]
STREAMS = [*ENTITIES, *SERIES]
APPS = ["app_ios", "app_android"]


@pytest.fixture(scope="module")
def runs():
    """(sandbox, clean run, faulty run, requests of the faulty run)."""
    with sandbox(n_events=6, apps=tuple(APPS), now=NOW, slow_seconds=2.5) as sb:
        config = tap_config(
            sb.url,
            sb.api_key,
            NOW,
            START.isoformat(),
            app_ids=APPS,
            max_workers=4,
            request_timeout=1.0,
            max_retries=6,
        )
        clean = run_tap(config, streams=STREAMS)
        assert clean.returncode == 0, clean.stderr[-3000:]
        sb.clear_log()
        sb.set_faults(rate=0.2, kinds=FAULT_KINDS, max_repeats=3, slow_seconds=2.5)
        faulty = run_tap(config, streams=STREAMS)
        # A `slow` request the tap gave up on is logged when its stall ends.
        time.sleep(2.6)
        yield sb, clean, faulty, sb.request_log.snapshot()


def test_the_fault_free_run_equals_the_oracle(runs):
    sb, clean, _, _ = runs
    for stream in SERIES:
        want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
        assert_matches(stream, keyed(clean.records[stream], keys_of(stream)), want)


def test_every_fault_kind_happened_and_was_retried(runs):
    _, _, faulty, log = runs
    assert faulty.returncode == 0, faulty.stderr[-3000:]
    kinds = Counter(r.fault for r in log if r.fault)
    assert set(kinds) == set(FAULT_KINDS), kinds
    total = len(log)
    assert 0.1 < sum(kinds.values()) / total < 0.35, (kinds, total)
    # 502/504 really were HTML, drops really had no status.
    assert {r.status for r in log if r.fault == "502"} == {502}
    assert {r.status for r in log if r.fault == "drop"} == {0}
    assert "retry" in faulty.stderr
    assert "Traceback" not in faulty.stderr


def test_faults_lose_nothing_and_duplicate_nothing(runs):
    _, clean, faulty, _ = runs
    assert faulty.returncode == 0, faulty.stderr[-3000:]
    for stream in STREAMS:
        keys = keys_of(stream)
        assert len(faulty.records[stream]) == len(clean.records[stream]), stream
        assert keyed(faulty.records[stream], keys) == keyed(clean.records[stream], keys), stream


def test_faults_leave_the_same_final_state(runs):
    _, clean, faulty, _ = runs
    assert faulty.state == clean.state
    assert set(faulty.state["bookmarks"]) >= set(SERIES)


def test_every_request_was_eventually_answered(runs):
    """Each distinct request that was faulted got a 200 later (the tap retried it)."""
    _, _, _, log = runs
    ok = {(r.path, tuple(sorted(r.params.items()))) for r in log if r.status == 200 and not r.fault}
    faulted = {(r.path, tuple(sorted(r.params.items()))) for r in log if r.fault}
    assert faulted
    assert faulted <= ok, faulted - ok
