"""The API key never leaks: not at DEBUG, not in retries, not in errors, not in URLs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from tap_braze_series.sandbox import FAULT_KINDS
from tests.harness.running import CLI, catalog_for, run_cli, write_inputs
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
KEY = "LEAKCANARY-7c41d2e9b8a04f63-a1b2"
# Sessions are synced last (alphabetical order) and refused: the run ends on a 403.
STREAMS = ["canvas_data_series", "event_data_series", "segment_data_series", "session_data_series"]
DEBUG = {"TAP_BRAZE_SERIES_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}


def fragments(key: str) -> list[str]:
    """The key and pieces of it a careless mask or encoding would still show."""
    return [
        key,
        key[:16],
        key[-16:],
        base64.b64encode(key.encode()).decode()[:20],
        base64.b64encode(f"Bearer {key}".encode()).decode()[:20],
        key.encode().hex()[:24],
    ]


def assert_no_leak(text: str, key: str = KEY) -> None:
    for fragment in fragments(key):
        where = [line for line in text.splitlines() if fragment in line]
        assert not where, (fragment, where[:3])


def assert_not_in_urls(sb, key: str = KEY) -> None:
    for r in sb.request_log:
        assert "api_key" not in r.params, r
        assert key not in r.path
        for value in r.params.values():
            assert key not in value, r


@pytest.fixture(scope="module")
def faulty_run_ending_in_403():
    with sandbox(
        now=NOW,
        api_key=KEY,
        n_events=4,
        fault_rate=0.3,
        fault_kinds=FAULT_KINDS,
        fault_max_repeats=2,
        slow_seconds=1.5,
        denied_permissions={"sessions.data_series"},
    ) as sb:
        config = tap_config(
            sb.url,
            KEY,
            NOW,
            "2024-01-01",
            app_ids=["app_ios"],
            request_timeout=0.5,
            max_retries=6,
            max_workers=4,
        )
        catalog = catalog_for(config, STREAMS)
        run = run_cli(config, catalog=catalog, env=DEBUG)
        yield sb, run


def test_the_run_really_was_at_debug_with_retries_and_an_error(faulty_run_ending_in_403):
    sb, run = faulty_run_ending_in_403
    assert run.returncode != 0
    assert "| DEBUG" in run.stderr
    assert "retry" in run.stderr
    faults = [r.fault for r in sb.request_log if r.fault]
    assert len(faults) >= 8
    assert len(set(faults)) >= 3, faults
    errors = [line for line in run.stderr.splitlines() if "tap-braze-series: error:" in line]
    assert len(errors) == 1, errors
    assert "403" in errors[0], errors
    assert "Traceback" not in run.stderr


def test_the_key_is_nowhere_in_the_output_logs_or_error(faulty_run_ending_in_403):
    _, run = faulty_run_ending_in_403
    assert_no_leak(run.stdout)
    assert_no_leak(run.stderr)


def test_the_key_never_travelled_in_a_url(faulty_run_ending_in_403):
    sb, _ = faulty_run_ending_in_403
    assert len(sb.request_log) > 20
    assert_not_in_urls(sb)


def test_key_from_the_environment_does_not_leak_at_debug():
    """Meltano passes settings as TAP_BRAZE_SERIES_* variables (`--config ENV`)."""
    with sandbox(now=NOW, api_key=KEY, denied_permissions={"sessions.data_series"}) as sb:
        config = tap_config(sb.url, KEY, NOW, "2024-04-01")
        # Only the string settings: numbers in TAP_BRAZE_SERIES_* variables are refused
        # by the SDK's schema check (a separate finding).
        env = {
            **DEBUG,
            **{f"TAP_BRAZE_SERIES_{k.upper()}": v for k, v in config.items() if isinstance(v, str)},
        }
        catalog = catalog_for(config, ["event_data_series", "session_data_series"])
        run = run_cli(
            {"retry_backoff_seconds": 0.01},
            catalog=catalog,
            env=env,
            args=["--config", "ENV"],
        )
        assert run.returncode != 0
        assert "403" in run.stderr
        assert_no_leak(run.stdout)
        assert_no_leak(run.stderr)
        assert_not_in_urls(sb)


def test_a_wrong_key_does_not_leak_either():
    wrong = "WRONGCANARY-0f9e8d7c6b5a4-9z8y"
    with sandbox(now=NOW, api_key=KEY) as sb:
        config = tap_config(sb.url, wrong, NOW, "2024-04-01")
        run = run_cli(config, catalog=catalog_for(config, ["session_data_series"]), env=DEBUG)
        assert run.returncode != 0
        assert "401" in run.stderr
        assert_no_leak(run.stdout, wrong)
        assert_no_leak(run.stderr, wrong)
        assert_not_in_urls(sb, wrong)


# --- answers that repeat the key ------------------------------------------------------
# A recorded real 401 is `{"message": "Invalid API key: <the key sent>"}`, the sandbox's
# default; 400 and 403 messages repeat it when asked (`echo_key_statuses`).

ECHOES = {
    # status -> (sandbox settings, tap settings, stream)
    401: ({}, {"api_key": "WRONGCANARY-3d5e7f9a1b2c4d6e-88"}, "session_data_series"),
    400: ({}, {"app_ids": ["no_such_app"]}, "session_data_series"),
    403: ({"denied_permissions": {"sessions.data_series"}}, {}, "session_data_series"),
}


def _run_with_streams(
    tmp: Path, config: dict, catalog: dict | None, *, stderr_closed: bool, args=()
):
    """The console script at DEBUG; with stderr closed (`2>&-`) if asked."""
    command = write_inputs(tmp, config, catalog=catalog, executable=[CLI])
    return subprocess.run(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if stderr_closed else subprocess.PIPE,
        text=True,
        timeout=120,
        env={**os.environ, **DEBUG},
        preexec_fn=(lambda: os.close(2)) if stderr_closed else None,
    )


@pytest.mark.parametrize("stderr_closed", [False, True], ids=["stderr", "stderr-closed"])
@pytest.mark.parametrize("status", sorted(ECHOES))
def test_an_answer_repeating_the_key_leaks_it_nowhere(tmp_path, status, stderr_closed):
    sandbox_extra, tap_extra, stream = ECHOES[status]
    with sandbox(now=NOW, api_key=KEY, echo_key_statuses={400, 403}, **sandbox_extra) as sb:
        config = {**tap_config(sb.url, KEY, NOW, "2024-04-01"), **tap_extra}
        sent = config["api_key"]
        proc = _run_with_streams(
            tmp_path, config, catalog_for(config, [stream]), stderr_closed=stderr_closed
        )
        assert any(r.status == status for r in sb.request_log), sb.request_log
    assert proc.returncode != 0
    assert_no_leak(proc.stdout, sent)
    assert_no_leak(proc.stdout, KEY)
    # stdout holds only Singer messages, whatever happened to stderr.
    for line in proc.stdout.splitlines():
        assert json.loads(line)["type"] in {"SCHEMA", "STATE", "RECORD", "ACTIVATE_VERSION"}
    if not stderr_closed:
        assert_no_leak(proc.stderr, sent)
        assert_no_leak(proc.stderr, KEY)
        assert "| DEBUG" in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "tap-braze-series: error:" in line]
        assert len(errors) == 1, proc.stderr[-2000:]
        # Braze's message is kept, the key in it replaced.
        assert f"({status})" in errors[0], errors
        assert "<api_key redacted>" in errors[0], errors


@pytest.mark.parametrize("status", [401, 403])
def test_check_output_repeating_the_key_leaks_it_nowhere(tmp_path, status):
    sandbox_extra, tap_extra, _ = ECHOES[status]
    with sandbox(now=NOW, api_key=KEY, echo_key_statuses={403}, **sandbox_extra) as sb:
        config = {**tap_config(sb.url, KEY, NOW, "2024-04-01"), **tap_extra}
        proc = _run_with_streams(tmp_path, config, None, stderr_closed=False, args=["--check"])
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert "cannot sync" in proc.stdout
    assert "<api_key redacted>" in proc.stdout
    for text in (proc.stdout, proc.stderr):
        assert_no_leak(text, config["api_key"])


@pytest.mark.parametrize(
    "api_url",
    [
        "https://user:{key}@rest.iad-01.braze.com",
        "https://rest.iad-01.braze.com/?api_key={key}",
        "{key}",
        "https://{key}",  # a valid URL whose host is the key: a connection error
    ],
    ids=["userinfo", "query", "whole", "host"],
)
def test_a_key_pasted_into_api_url_is_not_repeated(tmp_path, api_url):
    """At DEBUG: the setting error (or, for a key read as the host, the failed
    connection and urllib3's debug lines) never shows it."""
    config = tap_config(api_url.format(key=KEY), KEY, NOW, "2024-04-01")
    as_host = api_url == "https://{key}"  # discovery sends nothing: nothing to fail on
    for args in ((),) if as_host else ((), ("--discover",)):
        proc = _run_with_streams(tmp_path, config, None, stderr_closed=False, args=args)
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if "tap-braze-series: error:" in line]
        assert len(errors) == 1, proc.stderr[-2000:]
        assert "api_url" in errors[0], errors
        if not as_host:
            assert "| ERROR" not in proc.stderr, proc.stderr[-2000:]
        for text in (proc.stdout, proc.stderr):
            assert_no_leak(text)
            assert_no_leak(text, KEY.lower())
