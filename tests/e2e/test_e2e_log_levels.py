"""Under Meltano the tap's log lines keep their levels: warnings as warnings, errors as
errors (meltano.yml: `structured-logging` and `log_parser: singer-sdk`, so the tap
writes the SDK's JSON log lines and Meltano reads their level)."""

from __future__ import annotations

import re

import pytest

from tap_braze_series.sandbox import Sandbox
from tests.harness.running import PLUGIN, project_copy
from tests.harness.sandboxes import MELTANO_NOW, sandbox_config, tap_env

pytestmark = pytest.mark.e2e


def meltano_lines(output: str, level: str) -> list[str]:
    """The tap's lines Meltano logged at `level` (its console format)."""
    pattern = re.compile(rf"\[{level}\s*\] {PLUGIN} (.*)$")
    return [m.group(1) for line in output.splitlines() if (m := pattern.search(line))]


def test_a_runs_warning_and_error_reach_meltano_at_their_levels(meltano):
    start = MELTANO_NOW.date().replace(day=1)
    with Sandbox(sandbox_config("meltano")) as sb:
        env = tap_env(
            sb,
            start=start,
            end=MELTANO_NOW.date(),
            streams=["event_data_series"],
            series_segment_ids=["no-such-segment"],
        )
        ok = meltano.run(PLUGIN, "target-jsonl", extra_env=env)
        failed = meltano.run(
            PLUGIN,
            "target-jsonl",
            extra_env={**env, "TAP_BRAZE_SERIES_API_KEY": "wrong-key"},
            check=False,
        )
    warnings = meltano_lines(ok.stderr, "warning")
    assert any("series_segment_ids names 1 segment" in w for w in warnings), ok.stderr[-3000:]
    assert not any("series_segment_ids" in i for i in meltano_lines(ok.stderr, "info"))
    assert failed.returncode != 0
    errors = meltano_lines(failed.stderr, "error")
    assert any(
        e.startswith("tap-braze-series: error: Braze rejected the API key (401)") for e in errors
    ), failed.stderr[-3000:]
    assert not any("tap-braze-series: error:" in i for i in meltano_lines(failed.stderr, "info"))
    # The error is the tap's own line: no "unhandled error" from the SDK before it.
    assert "An unhandled error occurred" not in failed.stderr
    assert "wrong-key" not in failed.stdout + failed.stderr


def test_config_test_shows_an_unknown_setting_as_a_warning(meltano):
    with Sandbox(sandbox_config("meltano")) as sb:

        def with_typo(text: str) -> str:
            dev = "              api_url: http://127.0.0.1:8979\n"
            assert dev in text
            return text.replace(
                dev,
                f"              api_url: {sb.url}\n              lookback_day: 3\n",
                1,
            )

        project = project_copy(meltano, with_typo)
        proc = project(
            "--environment=dev",
            "config",
            "test",
            PLUGIN,
            extra_env={"TAP_BRAZE_SERIES_END_DATE": MELTANO_NOW.date().isoformat()},
        )
    output = proc.stdout + proc.stderr
    assert "Plugin configuration is valid" in output
    assert meltano_lines(output, "warning") == [
        "Unknown setting 'lookback_day' (ignored): did you mean lookback_days?"
    ], output[-3000:]
