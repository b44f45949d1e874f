"""What the benchmark runs: the sandbox's clock, the families measured, the sizes per
mode, the tap's config for a workload, and the fewest requests that can read it."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from tap_braze_series.config import DEFAULT_RETRY_BACKOFF
from tap_braze_series.sandbox import SandboxConfig, Workspace
from tests.harness import sandboxes

# The sandbox's fixed "now" and the tap's end_date (a date includes its whole day).
# The tap's clock is real time; end_date <= sandbox now keeps both in agreement.
SANDBOX_NOW = "2025-01-01T12:00:00+00:00"
END_DATE = dt.date(2024, 12, 31)
HISTORY_START = "2022-12-01"

CANVAS_STREAMS = (
    "canvas_data_series",
    "canvas_variant_data_series",
    "canvas_step_data_series",
    "canvas_step_message_data_series",
)
FAMILIES: dict[str, dict[str, Any]] = {
    # streams selected, entity kind, list page size, max length, unit
    "canvas": {
        "streams": CANVAS_STREAMS,
        "entity": "canvases",
        "page": 100,
        "max": 14,
        "unit": "day",
        "series_path": "/canvas/data_series",
    },
    "events": {
        "streams": ("event_data_series",),
        "entity": "events",
        "page": 250,
        "max": 100,
        "unit": "day",
        "series_path": "/events/data_series",
    },
    "events_hourly": {
        "streams": ("event_data_series_hourly",),
        "entity": "events",
        "page": 250,
        "max": 100,
        "unit": "hour",
        "series_path": "/events/data_series",
    },
}

SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "tail_canvases": 10,
        "tail_events_hourly": 3,
        "tail_events": 100,
        "big_canvases": 100,
        "scale_entities": [10, 100],
        "canvas_days": 56,
        "event_days": 365,
        "thr_events": 20,
        "thr_days": 365,
        "thr_repeat": 1,
        "mem_canvases": 20,
        "mem_events": 5,
        "mem_days": [30, 730],
        "state_entities": [100, 1000],
        "state_days": 3,
        "state_repeat": 1,
        "rl_events": 100,
        "rl_days": 365,
        "creation_canvases": 20,
        "creation_campaigns": 10,
        "rerun_events": 100,
    },
    "default": {
        "tail_canvases": 38,
        "tail_events_hourly": 10,
        "tail_events": 1000,
        "big_canvases": 1000,
        "scale_entities": [10, 100, 1000],
        "canvas_days": 56,
        "event_days": 365,
        "thr_events": 100,
        "thr_days": 365,
        "thr_repeat": 3,
        "mem_canvases": 100,
        "mem_events": 10,
        "mem_days": [30, 730],
        "state_entities": [100, 1000, 10000],
        "state_days": 3,
        "state_repeat": 3,
        "rl_events": 250,
        "rl_days": 365,
        "creation_canvases": 50,
        "creation_campaigns": 25,
        "rerun_events": 250,
    },
}
# The default sizes, larger where a figure needs a longer run to settle or to show scale.
SIZES["full"] = {
    **SIZES["default"],
    "canvas_days": 91,
    "thr_events": 1000,
    "thr_repeat": 2,
    "mem_canvases": 500,
    "mem_events": 100,
    "rl_events": 500,
    "rerun_events": 1000,
}
ALL_CASES = (
    "scaling",
    "throughput",
    "memory",
    "state",
    "ratelimit",
    "tail",
    "creation",
    "rerun",
    "memory_large",
)
DEFAULT_CASES = ALL_CASES[:-1]  # memory_large takes minutes of both cores: on request only
# Response-time distributions of the tail cases: (label, tail_rate, tail_latency s).
TAILS: tuple[tuple[str, float, float], ...] = (
    ("uniform", 0.0, 0.0),
    ("1 in 10 +1 s", 0.1, 1.0),
    ("1 in 20 +2 s", 0.05, 2.0),
)


def tap_config(url: str, api_key: str, days: int, workers: int, **extra: Any) -> dict:
    """The tests' tap config for the `days` up to END_DATE, with the benchmark's own
    differences: the tap's default retry backoff (the tests shorten it), a whole last
    day (not the sandbox's now), UTC and `workers` workers."""
    start = END_DATE - dt.timedelta(days=days - 1)
    return sandboxes.tap_config(
        url,
        api_key,
        dt.datetime.fromisoformat(SANDBOX_NOW),
        start.isoformat(),
        end_date=END_DATE.isoformat(),
        retry_backoff_seconds=DEFAULT_RETRY_BACKOFF,
        company_timezone="UTC",
        max_workers=workers,
        **extra,
    )


def entity_count(family: str, counts: dict[str, int]) -> int:
    return counts["active_canvases"] if family == "canvas" else counts["events"]


def minimum_requests(family: str, counts: dict[str, int], days: int) -> dict[str, int]:
    """The fewest requests that read the workload: list pages + windows per entity.

    A paged list needs n // page + 1 pages (the client learns the end from a short
    page); a series needs ceil(buckets / max length) windows per partition.
    """
    fam = FAMILIES[family]
    n = entity_count(family, counts)
    buckets = days * (24 if fam["unit"] == "hour" else 1)  # UTC: no DST
    per_entity = math.ceil(buckets / fam["max"])
    pages = n // fam["page"] + 1
    return {
        "list": pages,
        "series": n * per_entity,
        "total": pages + n * per_entity,
        "per_entity": per_entity,
        "entities": n,
    }


def canvas_minimum(minimum: dict[str, int], spec: dict[str, Any], days: int) -> dict[str, int]:
    """The fewest canvas requests: each canvas from the later of the run's first day and
    its creation day (Braze has zeros before it), plus one details request per canvas
    created after the first day, which only its details can tell."""
    ws = workspace(spec)
    start = END_DATE - dt.timedelta(days=days - 1)
    series = details = 0
    for canvas in ws.active_canvases:
        first = max(start, ws.created_day(canvas))
        series += math.ceil(max((END_DATE - first).days + 1, 0) / FAMILIES["canvas"]["max"])
        details += ws.created_day(canvas) > start
    total = minimum["list"] + series + details
    return {**minimum, "series": series, "details": details, "total": total}


def sandbox_config(spec: dict[str, Any]) -> SandboxConfig:
    """The sandbox a case asks for (a JSON spec, as the sandbox's process reads it)."""
    limits = spec.get("rate_limits")
    return SandboxConfig(
        seed=spec.get("seed", 7),
        n_canvases=spec.get("canvases", 0),
        n_campaigns=spec.get("campaigns", 0),
        n_segments=spec.get("segments", 0),
        n_events=spec.get("events", 0),
        n_products=spec.get("products", 0),
        now=dt.datetime.fromisoformat(spec.get("now", SANDBOX_NOW)),
        history_start=dt.date.fromisoformat(spec.get("history_start", HISTORY_START)),
        latency=spec.get("latency", 0.0),
        tail_rate=spec.get("tail_rate", 0.0),
        tail_latency=spec.get("tail_latency", 1.0),
        rate_limits={k: (int(v[0]), float(v[1])) for k, v in limits.items()} if limits else None,
        denied_permissions=frozenset(spec.get("denied", ())),
    )


def workspace(spec: dict[str, Any]) -> Workspace:
    """The workspace the sandbox process serves, rebuilt here for its oracle."""
    return Workspace(sandbox_config(spec))
