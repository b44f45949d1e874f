"""`meltano config test tap-braze-series`: it runs the tap until its first RECORD.

On a large workspace it must not list every entity first, and with a bad key it
must fail with the tap's own one-line error, not a stray Singer message.
"""

from __future__ import annotations

import json
import time

import pytest

from tap_braze_series.sandbox import Sandbox
from tests.harness.running import PLUGIN
from tests.harness.sandboxes import MELTANO_NOW, sandbox_config

pytestmark = pytest.mark.e2e


def config_env(sb: Sandbox, key: str) -> dict[str, str]:
    return {
        "TAP_BRAZE_SERIES_API_URL": sb.url,
        "TAP_BRAZE_SERIES_API_KEY": key,
        "TAP_BRAZE_SERIES_START_DATE": "2024-05-01",
        "TAP_BRAZE_SERIES_END_DATE": MELTANO_NOW.date().isoformat(),
    }


def test_a_good_key_passes_without_listing_the_whole_workspace(meltano):
    # Every stream is selected: the first to sync is a campaign series. The other
    # families' lists (80 pages of canvases, 20 of events, 20 of segments) wait
    # for their own turn.
    cfg = sandbox_config(
        "meltano", n_campaigns=250, n_canvases=8000, n_events=5000, n_segments=2000
    )
    with Sandbox(cfg) as sb:
        started = time.monotonic()
        proc = meltano("config", "test", PLUGIN, extra_env=config_env(sb, sb.api_key))
        took = time.monotonic() - started
        paths = [r.path for r in sb.request_log]
    assert "Plugin configuration is valid" in proc.stdout + proc.stderr
    assert "/canvas/list" not in paths
    assert "/events/list" not in paths
    assert "/segments/list" not in paths
    assert paths.count("/campaigns/list") == 3
    assert len(paths) <= 3 + 16, paths  # the list, then the requests ahead of the first record
    print(f"meltano config test: {took:.1f} s, {len(paths)} requests")


def test_a_bad_key_fails_with_the_401_line(meltano):
    with Sandbox(sandbox_config("meltano")) as sb:
        proc = meltano("config", "test", PLUGIN, extra_env=config_env(sb, "wrong-key"), check=False)
        statuses = {r.status for r in sb.request_log}
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Plugin configuration is invalid" in output
    # Meltano shows the tap's last output line: the error, not a SCHEMA message. With
    # structured logging (meltano.yml) it is the SDK's JSON record of level "error".
    reason = output.split("Plugin configuration is invalid", 1)[1].strip().splitlines()[0]
    record = json.loads(reason)
    assert record["level"] == "error", reason
    message = record["message"]
    assert message.startswith("tap-braze-series: error: Braze rejected the API key (401)"), reason
    assert "wrong-key" not in output
    assert statuses == {401}
