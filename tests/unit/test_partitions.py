"""Partitions and request parameters follow the endpoints' axes and flags (endpoints.py)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tap_braze_series.catalog import SERIES
from tap_braze_series.config import Settings
from tap_braze_series.endpoints import ListEndpoint
from tap_braze_series.entities import EntityDirectory
from tap_braze_series.runtime import Runtime
from tap_braze_series.windows import Window

SPECS = {spec.name: spec for spec in SERIES}
LISTED: dict[str, list[Any]] = {
    "events": ["signup", "purchase"],
    "products": ["gold", "silver"],
    "segments": [
        {"id": "seg-paying", "name": "Paying", "analytics_tracking_enabled": True},
        {"id": "seg-quiet", "name": "Quiet", "analytics_tracking_enabled": False},
        {"id": "seg-web", "name": "Web", "analytics_tracking_enabled": True},
    ],
    "canvases": [{"id": "cv-1"}],
}
WINDOW = Window(
    first=dt.date(2024, 3, 1), last=dt.date(2024, 3, 2), length=2, ending_at="2024-03-02T23:59:59"
)


class Lists:
    """A client that answers only the entity lists, and counts them."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def paginate(self, endpoint: ListEndpoint, params: Mapping[str, Any]) -> Iterator[Any]:
        self.read.append(endpoint.kind)
        yield from LISTED[endpoint.kind]


def runtime(**config: Any) -> tuple[Runtime, Lists]:
    settings = Settings.parse(
        {"api_key": "k", "api_url": "http://127.0.0.1:9", "start_date": "2024-03-01", **config}
    )
    rt = Runtime(settings)
    lists = Lists()
    rt.directory = EntityDirectory(lists, settings)  # type: ignore[arg-type]
    return rt, lists


def rows(rt: Runtime, stream: str) -> list[tuple[dict, dict]]:
    return [(dict(p.context), dict(p.params)) for p in rt.partitions(SPECS[stream])]


def test_events_are_read_for_each_event_then_each_app_with_the_all_apps_row_first():
    rt, _ = runtime(app_ids=["ios"])
    assert rows(rt, "event_data_series") == [
        ({"event_name": "signup", "app_id": "*"}, {"event": "signup"}),
        ({"event_name": "signup", "app_id": "ios"}, {"event": "signup", "app_id": "ios"}),
        ({"event_name": "purchase", "app_id": "*"}, {"event": "purchase"}),
        ({"event_name": "purchase", "app_id": "ios"}, {"event": "purchase", "app_id": "ios"}),
    ]
    assert rows(rt, "session_data_series") == [
        ({"app_id": "*"}, {}),
        ({"app_id": "ios"}, {"app_id": "ios"}),
    ]


def test_products_are_the_all_products_row_unless_product_names_lists_some():
    rt, lists = runtime()
    assert rows(rt, "purchase_quantity_series") == [({"product": "*", "app_id": "*"}, {})]
    assert lists.read == [], "the product list is not read when no product is named"
    rt, lists = runtime(product_names=["silver", "bronze"])
    assert rows(rt, "purchase_revenue_series") == [
        ({"product": "*", "app_id": "*"}, {}),
        ({"product": "silver", "app_id": "*"}, {"product": "silver"}),
    ]
    assert lists.read == ["products"]


def test_segments_without_analytics_tracking_have_no_size_partition(caplog):
    rt, _ = runtime()
    with caplog.at_level(logging.INFO):
        contexts = [c for c, _ in rows(rt, "segment_data_series")]
        assert [c for c, _ in rows(rt, "segment_data_series")] == contexts
    assert contexts == [{"segment_id": "seg-paying"}, {"segment_id": "seg-web"}]
    skipped = [r for r in caplog.records if "seg-quiet" in r.getMessage()]
    assert len(skipped) == 1, "worked out once per run"
    assert "analytics tracking disabled" in skipped[0].getMessage()


@pytest.mark.parametrize(
    ("selected", "flags"),
    [
        ({"canvas_data_series"}, set()),
        ({"canvas_variant_data_series"}, {"include_variant_breakdown"}),
        (
            {"canvas_data_series", "canvas_step_message_data_series"},
            {"include_step_breakdown", "include_deleted_step_data"},
        ),
    ],
)
def test_canvas_breakdowns_are_asked_only_for_the_selected_streams_that_use_them(selected, flags):
    rt, _ = runtime()
    spec = SPECS["canvas_data_series"]
    [partition] = rt.partitions(spec)
    params = rt.params(spec, partition, WINDOW, selected)
    assert {k for k, v in params.items() if v is True} == flags
    assert params == {
        "canvas_id": "cv-1",
        "length": 2,
        "ending_at": "2024-03-02T23:59:59",
        **dict.fromkeys(flags, True),
    }


def test_unit_is_sent_only_to_endpoints_with_more_than_one_unit():
    rt, _ = runtime()
    hourly = SPECS["session_data_series_hourly"]
    assert rt.params(hourly, rt.partitions(hourly)[0], WINDOW, set())["unit"] == "hour"
    dau = SPECS["kpi_dau_data_series"]
    assert "unit" not in rt.params(dau, rt.partitions(dau)[0], WINDOW, set())


def test_series_segments_add_a_partition_per_app_and_segment_and_keep_old_contexts(caplog):
    rt, lists = runtime(app_ids=["ios"], series_segment_ids=["seg-web", "seg-quiet", "seg-gone"])
    with caplog.at_level(logging.INFO):
        sessions = rows(rt, "session_data_series")
        events = rows(rt, "event_data_series_hourly")
    # The all-users row keeps the context of releases before the setting: no segment_id.
    assert sessions == [
        ({"app_id": "*"}, {}),
        ({"app_id": "*", "segment_id": "seg-web"}, {"segment_id": "seg-web"}),
        ({"app_id": "ios"}, {"app_id": "ios"}),
        (
            {"app_id": "ios", "segment_id": "seg-web"},
            {"app_id": "ios", "segment_id": "seg-web"},
        ),
    ]
    assert len(events) == 2 * 2 * 2
    assert lists.read == ["segments", "events"]
    for gone in ("seg-quiet", "seg-gone"):
        named = [r for r in caplog.records if gone in r.getMessage()]
        assert len(named) == 1, "one warning per skipped segment, for all four streams"
        assert named[0].levelno == logging.WARNING
        assert "series_segment_ids" in named[0].getMessage()


def test_segment_ids_filter_does_not_hide_a_series_segment():
    rt, _ = runtime(segment_ids=["seg-paying"], series_segment_ids=["seg-web"])
    assert [c for c, _ in rows(rt, "segment_data_series")] == [{"segment_id": "seg-paying"}]
    assert [c for c, _ in rows(rt, "session_data_series")] == [
        {"app_id": "*"},
        {"app_id": "*", "segment_id": "seg-web"},
    ]
