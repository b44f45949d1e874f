"""Sandbox configurations, the readings of Braze, tap configurations for a sandbox."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Sequence
from typing import Any

import requests

from tap_braze_series.sandbox import Sandbox, SandboxConfig

#: The readings of Braze the tap must be right under (docs/braze.md), as sandbox
#: settings: as recorded (count series leave out their zero buckets; a datetime
#: `ending_at` names the bucket holding the instant just before it), a datetime
#: `ending_at` naming the last bucket that ends by it, and zero-filled count series.
READINGS: dict[str, dict[str, str]] = {
    "recorded": {},
    "ends_by": {"ending_at_reading": "ends_by"},
    "zero_filled": {"count_zero_buckets": "filled"},
}

#: The fixed "now" of the Meltano workspace (mid-day: today's bucket is partial).
MELTANO_NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.timezone.utc)
#: The fixed "now" of the large workspace the sandbox's HTTP tests share.
LARGE_NOW = dt.datetime(2024, 3, 15, 14, 30, tzinfo=dt.timezone.utc)

#: The workspaces tests start sandboxes with, by name.
WORKSPACES: dict[str, dict[str, Any]] = {
    # A few entities of each kind, one app: the tap's runs in seconds.
    "small": {
        "seed": 3,
        "n_canvases": 3,
        "n_campaigns": 2,
        "n_events": 3,
        "n_segments": 3,
        "n_products": 1,
        "apps": ("app_ios",),
    },
    # Meltano's end-to-end runs: special event names included.
    "meltano": {
        "seed": 11,
        "n_canvases": 3,  # the third is archived: two are synced
        "n_campaigns": 1,
        "n_segments": 4,  # the second has no analytics tracking: no size series
        "n_events": 4,  # 'app opened', 'checkout/completed', 'search & filter', 'utm=summer'
        "n_products": 1,
        "now": MELTANO_NOW,
        "restatement_days": 3,
    },
    # The sandbox's own HTTP tests: many entities, to count pages and buckets.
    "large": {
        "seed": 7,
        "n_canvases": 230,
        "n_campaigns": 120,
        "n_segments": 130,
        "n_events": 600,
        "n_products": 120,
        "now": LARGE_NOW,
        "history_start": dt.date(2023, 1, 1),
        # Most sandbox tests count points per bucket; the omitted zero buckets of count
        # series (the default, as recorded) have tests of their own.
        "count_zero_buckets": "filled",
    },
}


def sandbox_config(workspace: str = "small", **overrides: Any) -> SandboxConfig:
    """The named workspace's sandbox configuration, with `overrides`."""
    return SandboxConfig(**{**WORKSPACES[workspace], **overrides})


def sandbox(workspace: str = "small", **overrides: Any) -> Sandbox:
    """A sandbox (not started: use it as a context manager) of the named workspace."""
    return Sandbox(sandbox_config(workspace, **overrides))


def tap_config(
    url: str, api_key: str, now: dt.datetime | dt.date, start: str, **extra: Any
) -> dict:
    """The tap's config for the sandbox at `url`, reading from `start` to `now`."""
    return {
        "api_key": api_key,
        "api_url": url,
        "start_date": start,
        # The tap's clock is real time; the sandbox's "now" is fixed: bound the run by it.
        "end_date": now.isoformat(),
        "retry_backoff_seconds": 0.01,
        **extra,
    }


def tap_env(
    sandbox: Sandbox,
    *,
    start: dt.date,
    end: dt.date | dt.datetime,
    streams: Sequence[str],
    **settings: object,
) -> dict[str, str]:
    """Environment configuring tap-braze-series under Meltano for `sandbox`, selecting
    `streams` (the settings of `tap_config`, as Meltano's environment variables)."""
    config = {
        "api_url": sandbox.url,
        "api_key": sandbox.api_key,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        **settings,
    }
    env = {
        f"TAP_BRAZE_SERIES_{name.upper()}": (
            json.dumps(value) if isinstance(value, list | dict) else str(value)
        )
        for name, value in config.items()
    }
    env["TAP_BRAZE_SERIES__SELECT"] = json.dumps([f"{s}.*" for s in streams])
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A tiny authenticated client: ``client.get(path, **params) -> requests.Response``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.api_key}"

    def get(self, path: str, timeout: float = 10, **params: object) -> requests.Response:
        return self.session.get(self.sandbox.url + path, params=params, timeout=timeout)

    def ok(self, path: str, **params: object) -> dict:
        resp = self.get(path, **params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["message"] == "success"
        return body

    def close(self) -> None:
        self.session.close()
