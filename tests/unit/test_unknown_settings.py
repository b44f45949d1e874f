"""A setting nothing reads (a typo, most often) is named at start, with the closest known one.

Known: the tap's own settings (CONFIG_SCHEMA, where every new setting goes), the ones
the SDK reads itself (stream maps, flattening, batch files, ACTIVATE_VERSION), and so
every setting meltano.yml declares and Meltano passes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tap_braze_series.config import CONFIG_SCHEMA, SDK_SETTINGS, unknown_settings
from tests.harness.running import run_tap

ROOT = Path(__file__).resolve().parents[2]


def test_a_misspelt_setting_is_named_with_the_closest_known_one():
    assert unknown_settings({"api_key": "k", "lookback_day": 3}) == [
        "Unknown setting 'lookback_day' (ignored): did you mean lookback_days?"
    ]


def test_a_setting_like_no_other_says_where_the_settings_are_listed():
    [warning] = unknown_settings({"qqqq": 1})
    assert warning.startswith("Unknown setting 'qqqq' (ignored)")
    assert "tap-braze-series --about" in warning


def test_the_sdks_own_settings_are_known_from_the_sdk():
    assert {
        "stream_maps",
        "stream_map_config",
        "faker_config",
        "flattening_enabled",
        "flattening_max_depth",
        "flattening_max_key_length",
        "flattening_separator",
        "batch_config",
    } <= SDK_SETTINGS
    every = dict.fromkeys([*CONFIG_SCHEMA["properties"], *SDK_SETTINGS], None)
    assert unknown_settings(every) == []


def test_every_setting_meltano_passes_is_known():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-braze-series"]
    declared = {setting["name"]: None for setting in tap["settings"]}
    assert unknown_settings(declared) == []


def test_the_tap_warns_at_start_and_runs_on():
    config = {"api_url": "http://127.0.0.1:9", "api_key": "k", "start_date": "2024-03-01"}
    run = run_tap({**config, "lookback_day": 3}, args=["--discover"], timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    warnings = [line for line in run.stderr.splitlines() if "Unknown setting" in line]
    assert len(warnings) == 1, run.stderr
    assert "WARNING" in warnings[0]
    assert "'lookback_day' (ignored): did you mean lookback_days?" in warnings[0]
    assert json.loads(run.stdout)["streams"]
    # A config without typos says nothing of the kind, and no SDK set-up chatter.
    quiet = run_tap(config, args=["--discover"], timeout=60)
    assert "Unknown setting" not in quiet.stderr
    assert "env var" not in quiet.stderr, quiet.stderr
