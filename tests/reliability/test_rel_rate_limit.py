"""A tiny rate limit: the tap paces itself from Braze's headers, and survives others' use."""

from __future__ import annotations

import datetime as dt
import math
import re
import resource
import threading
import time
from collections import Counter

import pytest
import requests

from tests.harness.expected import assert_matches, oracle
from tests.harness.messages import keyed, keys_of
from tests.harness.running import catalog_for, run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2024, 3, 1)
APPS = ["app_ios"]
# All in the "default" pool but the events list.
STREAMS = [
    "canvas_data_series",
    "event_data_series",
    "segment_data_series",
    "session_data_series_hourly",
]
WORKERS = 3


@pytest.fixture(scope="module")
def sb():
    with sandbox(now=NOW) as sb:
        yield sb


@pytest.fixture(scope="module")
def config(sb):
    config = tap_config(
        sb.url, sb.api_key, NOW, START.isoformat(), app_ids=APPS, max_workers=WORKERS
    )
    catalog_for(config, STREAMS)  # discovery before any limit is set (it sends nothing)
    return config


@pytest.fixture(scope="module")
def unlimited(sb, config):
    sb.set_rate_limits(None)
    run = run_tap(config, streams=STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def assert_same_output(run, reference, streams=STREAMS):
    for stream in streams:
        keys = keys_of(stream)
        assert keyed(run.records[stream], keys) == keyed(reference.records[stream], keys), stream
    assert run.state == reference.state


def run_limited(sb, limits, config, streams):
    """A run under the sandbox's `limits` (then none again), and the requests it sent."""
    sb.set_rate_limits(limits)
    sb.clear_log()
    try:
        run = run_tap(config, streams=streams)
    finally:
        log = sb.request_log.snapshot()
        sb.set_rate_limits(None)
    return run, log


def test_unlimited_run_equals_the_oracle(sb, unlimited):
    for stream in STREAMS:
        want = oracle(sb.workspace, stream, first=START, last=NOW.date(), now=NOW, app_ids=APPS)
        assert_matches(stream, keyed(unlimited.records[stream], keys_of(stream)), want)


def test_tiny_limit_is_respected_without_a_single_429(sb, config, unlimited):
    run, log = run_limited(sb, {"default": (25, 2.0)}, config, STREAMS)
    assert run.returncode == 0, run.stderr[-3000:]
    default_pool = [r for r in log if r.pool == "default"]
    assert len(default_pool) >= 2 * 25, "the run must span several rate-limit windows"
    assert not [r for r in log if r.status == 429]
    per_window = Counter(math.floor(r.started / 2) for r in default_pool)
    assert max(per_window.values()) <= 25, per_window
    assert_same_output(run, unlimited)


class Hog(threading.Thread):
    """Another integration of the same workspace: uses up the pool at each window start."""

    def __init__(self, sb, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.sb, self.stop_event = sb, stop
        self.exhausted = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.sb.api_key}"
        deadline = time.monotonic() + 30
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            response = session.get(
                self.sb.url + "/sessions/data_series", params={"length": 1, "hog": 1}, timeout=10
            )
            if response.status_code == 429:
                self.exhausted.set()
                reset = float(response.headers["X-RateLimit-Reset"])
                self.stop_event.wait(max(0.0, reset - time.time()))
        session.close()


def test_pool_exhausted_by_someone_else_gets_429_waits_and_completes(sb, config, unlimited):
    window = 3
    sb.set_rate_limits({"default": (25, float(window))})
    sb.clear_log()
    stop = threading.Event()
    hog = Hog(sb, stop)
    hog.start()
    # The tap stops competing once it has seen a 429 (then only the tap uses the pool).
    watcher_done = threading.Event()

    def watch() -> None:
        while not watcher_done.is_set():
            if any(r.status == 429 and "hog" not in r.params for r in sb.request_log):
                stop.set()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        assert hog.exhausted.wait(15), "the other client could not exhaust the pool"
        watcher.start()
        run = run_tap(config, streams=STREAMS, env={"TAP_BRAZE_SERIES_LOGLEVEL": "INFO"})
    finally:
        stop.set()
        watcher_done.set()
        hog.join(15)
        if watcher.is_alive():
            watcher.join(5)
        log = sb.request_log.snapshot()
        sb.set_rate_limits(None)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    tap_requests = [r for r in log if "hog" not in r.params]
    refused = [r for r in tap_requests if r.status == 429]
    assert refused, "the tap never met the exhausted pool"
    # It says why it waits, and its summary counts every 429 Braze sent it.
    assert "Braze answered 429 (rate limited)" in run.stderr, run.stderr[-3000:]
    counted = re.search(r"\(\d[\d,]* retr(?:y|ies), ([\d,]+) 429 answers?\)", run.stderr)
    assert counted, run.stderr[-3000:]
    assert int(counted.group(1).replace(",", "")) == len(refused), (counted.group(0), len(refused))
    # It waited for the reset instead of hammering: in any window, at most the requests
    # already in flight when the first 429 came back were refused.
    per_window = Counter(math.floor(r.started / window) for r in refused)
    assert max(per_window.values()) <= WORKERS + 1, per_window
    # Every refused request was sent again, and answered, in a later window.
    answered = {(r.path, tuple(sorted(r.params.items()))) for r in tap_requests if r.status == 200}
    for r in refused:
        assert (r.path, tuple(sorted(r.params.items()))) in answered, r
    assert_same_output(run, unlimited)


def test_tiny_limits_on_the_small_pools_hold_back_only_their_endpoints(sb):
    """/campaigns/data_series and the purchase series have pools of their own (Braze's).

    The limits are below max_workers: the first request to a pool goes alone, since
    until Braze answers nothing says how little of the pool is left.
    """
    streams = ["campaign_data_series", "purchase_quantity_series", "session_data_series"]
    config = tap_config(
        sb.url,
        sb.api_key,
        NOW,
        "2024-01-01",
        app_ids=APPS,
        product_names=[sb.workspace.products[0]],
        max_workers=WORKERS,
    )
    reference = run_tap(config, streams=streams)
    assert reference.returncode == 0, reference.stderr[-3000:]
    limit = WORKERS - 1
    limits = {"campaigns_data_series": (limit, 2.0), "lists_1000": (limit, 2.0)}
    run, log = run_limited(sb, limits, config, streams)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [r for r in log if r.status == 429]
    for pool in ("campaigns_data_series", "lists_1000"):
        assert len([r for r in log if r.pool == pool]) > limit, f"{pool} spans windows"
    assert_same_output(run, reference, streams)


def test_three_taps_sharing_a_pool_pace_themselves_and_all_complete(sb, config, unlimited):
    """Three taps of one workspace at once (30 requests per 2 s): few 429s, all complete.

    Each tap sees from Braze's counts that it is not alone, and spreads what the pool
    has left over the time to its reset instead of bursting at each window start.
    """
    limit, window = 30, 2.0
    sb.set_rate_limits({"default": (limit, window)})
    sb.clear_log()
    runs: list = [None] * 3

    def run(n: int) -> None:
        runs[n] = run_tap(config, streams=STREAMS, env={"TAP_BRAZE_SERIES_LOGLEVEL": "INFO"})

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        log = sb.request_log.snapshot()
        sb.set_rate_limits(None)
    pool = [r for r in log if r.pool == "default"]
    refused = [r for r in pool if r.status == 429]
    assert len(pool) >= 4 * limit, "the taps must share the pool over several windows"
    assert len(refused) <= 0.05 * len(pool), f"{len(refused)} of {len(pool)} answered 429"
    per_window = Counter(math.floor(r.started / window) for r in pool if r.status == 200)
    assert max(per_window.values()) <= limit, per_window
    for tap in runs:
        assert tap is not None
        assert tap.returncode == 0, tap.stderr[-3000:]
        assert "pacing requests" in tap.stderr
        assert_same_output(tap, unlimited)


ODD_HEADERS = [
    "missing",
    "empty",
    "nan",
    "inf",
    "milliseconds",
    "far",
    "negative",
    "nan-remaining",
]


@pytest.mark.parametrize("mode", ODD_HEADERS)
def test_odd_rate_limit_headers_are_unknown_with_one_warning(sb, config, unlimited, mode):
    """Headers that cannot be right: no busy loop, no traceback, the same output.

    The pool is tight, so the run also meets 429s whose headers are odd.
    """
    sb.set_rate_limits({"default": (25, 2.0)})
    sb.set_rate_limit_headers(mode)
    sb.clear_log()
    cpu_before = _children_cpu()
    started = time.monotonic()
    try:
        run = run_tap(config, streams=STREAMS, timeout=120)
    finally:
        wall = time.monotonic() - started
        log = sb.request_log.snapshot()
        sb.set_rate_limit_headers("valid")
        sb.set_rate_limits(None)
    cpu = _children_cpu() - cpu_before
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    warnings = [line for line in run.stderr.splitlines() if "rate-limit headers" in line]
    assert len(warnings) == 1, warnings
    assert "taken as unknown" in warnings[0]
    assert any(r.status == 429 for r in log), "the run must meet the tight pool"
    # Waiting, not spinning: the tap's CPU is a fraction of the time it took.
    assert cpu < 0.5 * wall, (cpu, wall)
    assert_same_output(run, unlimited)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
