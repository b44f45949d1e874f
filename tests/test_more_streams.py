"""Campaigns, KPIs, purchases and the details dimensions equal the sandbox's values."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.harness.expected import assert_values_equal, entity_days, expected_simple
from tests.harness.messages import keyed
from tests.harness.running import run_tap

NOW = dt.datetime(2024, 4, 15, 9, tzinfo=dt.timezone.utc)
START, END = dt.date(2024, 1, 1), dt.date(2024, 4, 15)
STREAMS = [
    "campaigns",
    "products",
    "canvas_details",
    "campaign_details",
    "campaign_data_series",
    "campaign_message_data_series",
    "kpi_dau_data_series",
    "kpi_mau_data_series",
    "kpi_new_users_data_series",
    "kpi_uninstalls_data_series",
    "purchase_quantity_series",
    "purchase_revenue_series",
]


@pytest.fixture(scope="module")
def synced():
    config = SandboxConfig(
        seed=23,
        n_canvases=3,
        n_campaigns=5,
        n_products=4,
        n_events=2,
        n_segments=2,
        apps=("app_ios", "app_android"),
        now=NOW,
    )
    with Sandbox(config) as sb:
        product = sb.workspace.products[1]
        campaign_ids = [c.id for c in sb.workspace.campaigns if not c.archived][:4]
        tap_config = {
            "api_key": sb.api_key,
            "api_url": sb.url,
            "start_date": START.isoformat(),
            "end_date": NOW.isoformat(),
            "app_ids": ["app_android"],
            "product_names": [product],
            "campaign_ids": campaign_ids,
        }
        run = run_tap(tap_config, streams=STREAMS)
        assert run.returncode == 0, run.stderr[-3000:]
        yield sb, run, product, campaign_ids


def test_campaign_rows_equal_the_oracle(synced):
    sb, run, _, campaign_ids = synced
    ws = sb.workspace
    assert [r["id"] for r in run.records["campaigns"]] == campaign_ids
    expected_total, expected_messages = {}, {}
    for cid in campaign_ids:
        for day in entity_days(ws, ws.campaign(cid), START, END):
            stat = ws.campaign_stats(cid, day, now=NOW)
            expected_total[(cid, day.isoformat())] = stat
            for channel, entries in stat["messages"].items():
                for entry in entries:
                    expected_messages[
                        (cid, day.isoformat(), channel, entry["variation_api_id"])
                    ] = entry
    total = keyed(run.records["campaign_data_series"], ["campaign_id", "time"])
    assert total.keys() == expected_total.keys()
    for key, stat in expected_total.items():
        for metric, value in stat.items():
            if metric not in ("time", "messages"):
                assert total[key][metric] == value, (key, metric)
    messages = keyed(
        run.records["campaign_message_data_series"],
        ["campaign_id", "time", "channel", "variation_api_id"],
    )
    assert messages.keys() == expected_messages.keys()
    enrolled = 0
    for key, entry in expected_messages.items():
        row = messages[key]
        assert row["variation_name"] == entry.get("variation_name")
        for metric, value in entry.items():
            if metric in ("variation_api_id", "variation_name"):
                continue
            got = row[metric] if metric in row else (row["extra_metrics"] or {}).get(metric)
            assert got == value, (key, metric)
        enrolled += "enrolled" in entry
    assert enrolled, "control groups carry `enrolled`, kept as a column"


def test_campaign_series_is_one_request_per_window_for_both_streams(synced):
    sb, _, _, campaign_ids = synced
    by_path = Counter(r.path for r in sb.request_log if r.status == 200)
    ws = sb.workspace
    # Each campaign from the day it was created: campaign_details (synced) tells it.
    assert by_path["/campaigns/data_series"] == sum(
        math.ceil(len(entity_days(ws, ws.campaign(cid), START, END)) / 100) for cid in campaign_ids
    )
    assert by_path["/campaigns/details"] == len(campaign_ids)  # asked once, for both uses


@pytest.mark.parametrize(
    ("stream", "path", "field"),
    [
        ("kpi_dau_data_series", "/kpi/dau/data_series", "dau"),
        ("kpi_mau_data_series", "/kpi/mau/data_series", "mau"),
        ("kpi_new_users_data_series", "/kpi/new_users/data_series", "new_users"),
        ("kpi_uninstalls_data_series", "/kpi/uninstalls/data_series", "uninstalls"),
        ("purchase_quantity_series", "/purchases/quantity_series", "purchase_quantity"),
        ("purchase_revenue_series", "/purchases/revenue_series", "revenue"),
    ],
)
def test_kpi_and_purchase_rows_equal_the_oracle_for_all_and_per_app_and_product(
    synced, stream, path, field
):
    sb, run, product, _ = synced
    by_product = stream.startswith("purchase_")
    # KPIs have no entity; purchases are asked for all products and the one configured.
    entities = (
        [({"product": "*"}, None), ({"product": product}, product)] if by_product else [({}, None)]
    )
    expected = expected_simple(
        sb.workspace,
        path,
        field,
        unit="day",
        first=START,
        last=END,
        now=NOW,
        entities=entities,
        apps=("*", "app_android"),
    )
    keys = ["product", "app_id", "time"] if by_product else ["app_id", "time"]
    assert_values_equal(stream, run.records[stream], expected, keys, field)
    if by_product:
        assert [r["product_name"] for r in run.records["products"]] == [product]


def test_purchase_requests_stay_in_the_small_pool(synced):
    sb, _, _, _ = synced
    pools = {r.path: r.pool for r in sb.request_log}
    assert pools["/purchases/quantity_series"] == "lists_1000"
    assert pools["/purchases/product_list"] == "lists_1000"


def test_details_dimensions_join_series_rows_to_names_and_structure(synced):
    sb, run, _, campaign_ids = synced
    ws = sb.workspace
    canvases = keyed(run.records["canvas_details"], ["canvas_id"])
    assert canvases.keys() == {(c.id,) for c in ws.canvases if not c.archived}
    for (cid,), row in canvases.items():
        canvas = ws.canvas(cid)
        assert row["name"] == canvas.name
        assert {v["id"] for v in row["variants"]} == {v.id for v in canvas.variants}
        live_steps = {s.id for s in canvas.steps if not s.deleted}
        assert live_steps <= {s["id"] for s in row["steps"]}
        for step in row["steps"]:
            assert isinstance(step["messages"], list)  # no map keyed by ids
            assert all("message_id" in m for m in step["messages"])
    campaigns = keyed(run.records["campaign_details"], ["campaign_id"])
    assert campaigns.keys() == {(c,) for c in campaign_ids}
    variation_ids = {
        (row["campaign_id"], m["message_variation_id"])
        for row in run.records["campaign_details"]
        for m in row["messages"]
    }
    series_ids = {
        (r["campaign_id"], r["variation_api_id"])
        for r in run.records["campaign_message_data_series"]
    }
    assert series_ids <= variation_ids, "every campaign message row joins to a details message"
