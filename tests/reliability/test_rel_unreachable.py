"""Braze cannot be reached: the run stops within seconds, with one line saying what to check.

A connection that cannot be made before Braze ever answered (refused, a name that
does not resolve) is a set-up problem that no retry fixes: the run must not spend
`max_retries` backoffs on it. The line names the host, the cause and what to check,
and says truthfully what the run's STATE messages allow.
"""

from __future__ import annotations

import time

import pytest

from tests.harness.running import run_cli

KEY = "unreachable-key-81b2"
HINTS = ("api_url", "HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE")


@pytest.mark.parametrize(
    ("api_url", "host", "cause"),
    [
        ("http://127.0.0.1:9", "127.0.0.1:9", "refused"),
        # .invalid never resolves (RFC 6761); the lookup fails locally, without a network.
        ("https://rest.no-such-instance.invalid", "rest.no-such-instance.invalid:443", "resolve"),
    ],
)
def test_an_unreachable_braze_stops_the_run_within_seconds(tmp_path, api_url, host, cause):
    config = {"api_url": api_url, "api_key": KEY, "start_date": "2024-03-01"}
    started = time.monotonic()
    run = run_cli(config, timeout=60)  # default retries: 8, backoff base 1 s
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "tap-braze-series: error:" in line]
    assert len(lines) == 1, run.stderr[-3000:]
    line = lines[0]
    assert host in line, line
    assert cause in line, line
    for hint in HINTS:
        assert hint in line, line
    assert "retry" not in run.stderr.lower()  # no backoff was spent on it
    assert KEY not in run.stderr + run.stdout
    # What it says of STATE is what happened.
    assert run.states == []
    assert "emitted no STATE message" in line, line
