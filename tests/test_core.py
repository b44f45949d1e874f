"""The SDK's standard tap tests, offline against the sandbox."""

from __future__ import annotations

import atexit
import datetime as dt

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tap_braze_series.tap import TapBrazeSeries

# Attribute checks warn when a column holds only nulls in the sample (e.g. extra_metrics
# of a stream whose responses carry no undocumented metric): that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No records were available to test.:UserWarning")

NOW = dt.datetime(2024, 3, 31, 12, tzinfo=dt.timezone.utc)

# The generated tests need the config when the class is built, so the sandbox starts
# with the module and stops with the interpreter.
_SANDBOX = Sandbox(
    SandboxConfig(
        seed=2, n_canvases=2, n_campaigns=2, n_events=3, n_segments=3, n_products=2, now=NOW
    )
).start()
atexit.register(_SANDBOX.stop)

CONFIG = {
    "api_key": _SANDBOX.api_key,
    "api_url": _SANDBOX.url,
    "start_date": "2024-03-01",
    "end_date": NOW.isoformat(),
    "app_ids": ["app_ios"],
    "product_names": [_SANDBOX.workspace.products[0]],
    "max_workers": 4,
}

TestTapBrazeSeries = get_tap_test_class(
    tap_class=TapBrazeSeries,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=500),
)
