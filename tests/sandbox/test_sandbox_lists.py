"""List and details endpoints over HTTP."""

from __future__ import annotations

from datetime import datetime

import pytest


def _all_pages(client, path: str, key: str, size: int, **params) -> list:
    rows, page = [], 0
    while True:
        body = client.ok(path, page=page, **params)
        assert set(body) == {key, "message"}
        chunk = body[key]
        assert len(chunk) <= size
        rows += chunk
        if len(chunk) < size:
            break
        page += 1
    # a page past the end is empty
    assert client.ok(path, page=page + 1, **params)[key] == []
    return rows


def test_canvas_list_paging_and_archived(client, ws):
    active = _all_pages(client, "/canvas/list", "canvases", 100)
    assert [r["id"] for r in active] == [c.id for c in ws.canvases if not c.archived]
    everything = _all_pages(client, "/canvas/list", "canvases", 100, include_archived="true")
    assert [r["id"] for r in everything] == [c.id for c in ws.canvases]
    assert len(everything) == 230 > len(active)
    row = everything[0]
    assert set(row) == {"id", "name", "last_edited", "tags"}
    c = ws.canvases[0]
    assert row == {"id": c.id, "name": c.name, "last_edited": c.last_edited, "tags": c.tags}
    first_page = client.ok("/canvas/list")["canvases"]
    assert len(first_page) == 100
    assert first_page == active[:100]


def test_canvas_list_sort_desc_and_last_edit_filter(client, ws):
    desc = _all_pages(
        client, "/canvas/list", "canvases", 100, include_archived="true", sort_direction="desc"
    )
    assert [r["id"] for r in desc] == [c.id for c in reversed(ws.canvases)]
    cutoff = "2023-06-01T00:00:00"
    filtered = _all_pages(
        client,
        "/canvas/list",
        "canvases",
        100,
        include_archived="true",
        **{"last_edit.time[gt]": cutoff},
    )
    expected = [
        c.id
        for c in ws.canvases
        if datetime.fromisoformat(c.last_edited) > datetime.fromisoformat(cutoff + "+00:00")
    ]
    assert [r["id"] for r in filtered] == expected
    assert 0 < len(filtered) < 230
    # the known trap: old-but-running canvases vanish under that filter
    hs = ws.history_start.isoformat()
    assert any(c.last_edited < hs for c in ws.canvases)


def test_campaigns_list(client, ws):
    rows = _all_pages(client, "/campaigns/list", "campaigns", 100, include_archived="true")
    assert [r["id"] for r in rows] == [c.id for c in ws.campaigns]
    assert set(rows[0]) == {"id", "name", "is_api_campaign", "last_edited", "tags"}
    assert any(r["is_api_campaign"] for r in rows)
    active = _all_pages(client, "/campaigns/list", "campaigns", 100)
    assert len(active) == sum(not c.archived for c in ws.campaigns)


def test_segments_list(client, ws):
    rows = _all_pages(client, "/segments/list", "segments", 100)
    assert len(rows) == 130
    assert [r["id"] for r in rows] == [s.id for s in ws.segments]
    assert set(rows[0]) == {"id", "name", "analytics_tracking_enabled", "tags"}
    assert any(not r["analytics_tracking_enabled"] for r in rows)


def test_events_list_and_odd_names_round_trip(client, ws):
    names = _all_pages(client, "/events/list", "events", 250)
    assert names == ws.events
    assert len(names) == 600
    odd = [n for n in names if any(ch in n for ch in " /&=?%+#") or not n.isascii()]
    assert len(odd) >= 10
    for name in odd:
        body = client.ok("/events/data_series", event=name, length=2)
        assert len(body["data"]) == 2, name
        assert client.sandbox.request_log[-1].params["event"] == name


def test_product_list(client, ws):
    products = _all_pages(client, "/purchases/product_list", "products", 100)
    assert products == ws.products
    assert len(products) == 120
    for name in ("Gift Card", "Salt & Pepper"):
        assert name in products
        body = client.ok("/purchases/quantity_series", product=name, length=1)
        assert "purchase_quantity" in body["data"][0]


# What /canvas/details and /campaigns/details both answer with.
_DETAILS_KEYS = (
    "name",
    "description",
    "created_at",
    "updated_at",
    "archived",
    "draft",
    "tags",
    "schedule_type",
    "channels",
    "conversion_behaviors",
)


def _assert_details_keys(body: dict, *own_keys: str) -> None:
    missing = [key for key in (*_DETAILS_KEYS, *own_keys) if key not in body]
    assert not missing, missing


def test_canvas_details(client, ws):
    canvas = next(c for c in ws.canvases if c.name.startswith("Showcase"))
    body = client.ok("/canvas/details", canvas_id=canvas.id)
    _assert_details_keys(body, "first_entry", "last_entry", "variants", "steps")
    assert body["name"] == canvas.name
    assert [v["id"] for v in body["variants"]] == [v.id for v in canvas.variants]
    live = [s for s in canvas.steps if not s.deleted]
    assert [s["id"] for s in body["steps"]] == [s.id for s in live]
    for step, s in zip(body["steps"], live, strict=True):
        assert step["channels"] == list(s.channels)
        assert {"id", "name", "type", "channels", "next_step_ids", "next_paths", "messages"} <= set(
            step
        )
        assert sorted(m["channel"] for m in step["messages"].values()) == sorted(s.channels)
    assert body == {**ws.canvas_details(canvas.id, now=client.sandbox.now()), "message": "success"}


def test_campaign_details(client, ws):
    camp = next(c for c in ws.campaigns if c.name.startswith("Showcase"))
    body = client.ok("/campaigns/details", campaign_id=camp.id)
    _assert_details_keys(body, "first_sent", "last_sent", "messages")
    assert body["channels"] == list(camp.channels)
    control = [m for m in body["messages"].values() if m.get("type") == "control"]
    assert len(control) == 1
    # every variation_api_id of the data series is a key of details.messages
    series = client.ok(
        "/campaigns/data_series", campaign_id=camp.id, length=1, ending_at="2024-03-01T23:59:59Z"
    )
    ids = {
        e["variation_api_id"] for entries in series["data"][0]["messages"].values() for e in entries
    }
    assert ids
    assert ids <= set(body["messages"])


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/canvas/list", {"page": "x"}, "page"),
        ("/canvas/list", {"page": "-1"}, "page"),
        ("/canvas/list", {"include_archived": "maybe"}, "include_archived"),
        ("/canvas/list", {"sort_direction": "up"}, "sort_direction"),
        ("/canvas/list", {"last_edit.time[gt]": "yesterday"}, "last_edit.time[gt]"),
        ("/events/list", {"page": "1.5"}, "page"),
        ("/canvas/details", {}, "canvas_id"),
        ("/canvas/details", {"canvas_id": "nope"}, "canvas_id"),
        ("/campaigns/details", {"campaign_id": "nope"}, "campaign_id"),
    ],
)
def test_list_and_details_validation(client, path, params, param):
    resp = client.get(path, **params)
    assert resp.status_code == 400
    assert param in resp.json()["message"]
