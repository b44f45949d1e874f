"""Error paths: one clear line, no traceback, no key; transient failures retried."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.harness.messages import keyed
from tests.harness.running import run_tap
from tests.harness.sandboxes import tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
KEY = "sandbox-key-7f3a9c"  # distinctive, to grep for leaks


def make_sandbox(**overrides):
    base = dict(
        seed=3, n_canvases=3, n_events=3, n_segments=3, apps=("app_ios",), now=NOW, api_key=KEY
    )
    return Sandbox(SandboxConfig(**{**base, **overrides}))


def tap_settings(sb, **extra):
    return tap_config(sb.url, KEY, dt.date(2024, 4, 30), "2024-03-01", **extra)


def assert_clean_failure(run, *fragments):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert KEY not in run.stderr
    assert KEY not in run.stdout
    error_lines = [line for line in run.stderr.splitlines() if "tap-braze-series: error:" in line]
    assert len(error_lines) == 1, run.stderr[-2000:]
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, error_lines[0])
    return error_lines[0]


def test_wrong_key_stops_with_401_naming_api_url_not_the_key():
    with make_sandbox() as sb:
        run = run_tap(
            {**tap_settings(sb), "api_key": "wrong-" + KEY}, streams=["session_data_series"]
        )
        line = assert_clean_failure(run, "401", sb.url, "api_key")
        assert "wrong-" not in line
        # 401 is not retried.
        assert len([r for r in sb.request_log if r.status == 401]) == 1


def test_missing_permission_names_it_and_the_streams_to_deselect():
    with make_sandbox(denied_permissions={"segments.data_series"}) as sb:
        run = run_tap(tap_settings(sb), streams=["segment_data_series", "session_data_series"])
        assert_clean_failure(run, "403", "segments.data_series", "segment_data_series")
        # Not retried: concurrent requests of other partitions may also see 403, but
        # no request is repeated.
        refused = [tuple(sorted(r.params.items())) for r in sb.request_log if r.status == 403]
        assert refused
        assert len(refused) == len(set(refused))


def test_other_4xx_shows_brazes_message_path_and_parameters():
    with make_sandbox() as sb:
        run = run_tap(tap_settings(sb, app_ids=["no_such_app"]), streams=["session_data_series"])
        line = assert_clean_failure(run, "400", "/sessions/data_series", "app_id=no_such_app")
        assert "app_id" in line


def test_transient_faults_are_retried_and_the_output_is_unchanged():
    streams = ["canvas_data_series", "event_data_series", "session_data_series_hourly"]
    with make_sandbox() as sb:
        clean = run_tap(tap_settings(sb), streams=streams)
        assert clean.returncode == 0, clean.stderr[-2000:]
    with make_sandbox(
        fault_rate=0.3,
        fault_max_repeats=2,
        slow_seconds=3.0,
        fault_kinds=("500", "502", "503", "504", "drop", "slow", "truncated"),
    ) as sb:
        faulty = run_tap(tap_settings(sb, request_timeout=1.0, max_retries=5), streams=streams)
        assert faulty.returncode == 0, faulty.stderr[-3000:]
        statuses = {r.status for r in sb.request_log}
        assert statuses & {500, 502, 503, 504}, statuses
    for stream, keys in (
        ("canvas_data_series", ["canvas_id", "time"]),
        ("event_data_series", ["event_name", "time"]),
        ("session_data_series_hourly", ["time"]),
    ):
        assert keyed(faulty.records[stream], keys) == keyed(clean.records[stream], keys), stream
    assert faulty.state == clean.state
    assert KEY not in faulty.stderr


def test_persistent_failure_ends_with_a_clear_error_after_bounded_retries():
    with make_sandbox(fault_rate=1.0, fault_max_repeats=1000, fault_kinds=("503",)) as sb:
        run = run_tap(tap_settings(sb, max_retries=3), streams=["session_data_series"])
        assert_clean_failure(run, "/sessions/data_series", "4 times")
        assert len(sb.request_log) == 4


def test_rate_limited_run_completes_without_429():
    with make_sandbox(rate_limits={"default": (15, 1.0)}) as sb:
        run = run_tap(
            tap_settings(sb, max_workers=4), streams=["canvas_data_series", "event_data_series"]
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert not [r for r in sb.request_log if r.status == 429]
        assert run.records["canvas_data_series"]


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"api_key": None}, "api_key"),
        ({"api_url": "https://sdk.iad-01.braze.com"}, "api_url"),
        ({"api_url": "http://rest.iad-01.braze.com"}, "api_url"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2024-01-01"}, "end_date"),
        ({"company_timezone": "Mars/Olympus"}, "company_timezone"),
        ({"lookback_days": -1}, "lookback_days"),
        ({"max_workers": 0}, "max_workers"),
    ],
)
def test_bad_config_is_one_clear_line_before_any_request(change, setting):
    with make_sandbox() as sb:
        config = {k: v for k, v in {**tap_settings(sb), **change}.items() if v is not None}
        run = run_tap(config)
        assert run.returncode != 0
        assert "Traceback" not in run.stderr
        assert setting in run.stderr
        assert KEY not in run.stderr
        assert len(sb.request_log) == 0


@pytest.mark.parametrize(
    "state",
    [
        ["not", "an", "object"],
        {"bookmarks": []},
        {"bookmarks": {"event_data_series": {"partitions": {}}}},
        {
            "bookmarks": {
                "event_data_series": {"partitions": [{"replication_key_value": "2024-01-01"}]}
            }
        },
        {
            "bookmarks": {
                "session_data_series": {
                    "partitions": [
                        {
                            "context": {"app_id": "*"},
                            "replication_key": "time",
                            "replication_key_value": "not-a-date",
                        }
                    ]
                }
            }
        },
    ],
)
def test_malformed_state_is_a_clear_error(state):
    with make_sandbox() as sb:
        run = run_tap(
            tap_settings(sb), state=state, streams=["session_data_series", "event_data_series"]
        )
        assert_clean_failure(run, "State")
        assert not [r for r in sb.request_log if r.path.endswith("data_series")]


def test_state_that_is_not_json_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    with make_sandbox() as sb:
        config = tmp_path / "config.json"
        config.write_text(json.dumps(tap_settings(sb)))
        state = tmp_path / "state.json"
        state.write_text("{not json")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tap_braze_series.tap",
                "--config",
                str(config),
                "--state",
                str(state),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert "not valid JSON" in proc.stderr
