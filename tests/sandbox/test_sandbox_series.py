"""Data-series endpoints over HTTP: shapes and equality with the oracle."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tap_braze_series.sandbox.endpoints import SERIES
from tap_braze_series.sandbox.timeutil import UTC

NOW = datetime(2024, 3, 15, 14, 30, tzinfo=UTC)  # the shared sandbox's now
END = "2024-03-10T23:59:59+00:00"
END_DT = datetime.fromisoformat(END)


def _params(ws, spec, **params):
    """The series' entity (None for those without) and `params` naming it."""
    entity = _entity(ws, spec.entity_param)
    if entity is not None:
        params[spec.entity_param] = entity
    return entity, params


def _entity(ws, param):
    if param == "event":
        return ws.events[5]
    if param == "segment_id":
        return next(s.id for s in ws.segments if s.analytics_tracking_enabled)
    if param == "product":
        return ws.products[2]
    return None


@pytest.mark.parametrize("path", sorted(SERIES))
def test_simple_series_shape_and_oracle(client, ws, path):
    spec = SERIES[path]
    entity, params = _params(ws, spec, length=7, ending_at=END)
    body = client.ok(path, **params)
    assert set(body) == {"message", "data"}
    data = body["data"]
    assert [row["time"] for row in data] == [f"2024-03-{d:02d}" for d in range(4, 11)]
    for row in data:
        assert set(row) == {"time", spec.value_field}
        assert isinstance(row[spec.value_field], float if spec.is_float else int)
    expected = [
        ws.series_value(path, date(2024, 3, d), entity=entity, now=NOW) for d in range(4, 11)
    ]
    assert [row[spec.value_field] for row in data] == expected
    assert data == ws.series(path, now=NOW, length=7, ending_at=END_DT, entity=entity)
    assert any(v for v in expected)


@pytest.mark.parametrize("path", sorted(p for p, s in SERIES.items() if "hour" in s.units))
def test_hourly_series(client, ws, path):
    spec = SERIES[path]
    entity, params = _params(ws, spec, length=30, unit="hour", ending_at="2024-03-10T05:00:00Z")
    data = client.ok(path, **params)["data"]
    assert len(data) == 30
    assert data[-1]["time"] == "2024-03-10T04:00:00+00:00"
    assert data[0]["time"] == "2024-03-08T23:00:00+00:00"
    expected = ws.series(
        path,
        now=NOW,
        length=30,
        unit="hour",
        ending_at=datetime.fromisoformat("2024-03-10T05:00:00+00:00"),
        entity=entity,
    )
    assert data == expected


@pytest.mark.parametrize("path", sorted(p for p, s in SERIES.items() if s.app_filter))
def test_app_filter(client, ws, path):
    spec = SERIES[path]
    entity, base = _params(ws, spec, length=10, ending_at=END)
    full = client.ok(path, **base)["data"]
    ios = client.ok(path, app_id="app_ios", **base)["data"]
    android = client.ok(path, app_id="app_android", **base)["data"]
    assert full != ios != android
    field = spec.value_field
    assert [r[field] for r in ios] == [
        ws.series_value(path, date(2024, 3, d), entity=entity, app_id="app_ios", now=NOW)
        for d in range(1, 11)
    ]


@pytest.mark.parametrize("path", sorted(p for p, s in SERIES.items() if s.segment_filter))
def test_segment_filter(client, ws, path):
    spec = SERIES[path]
    entity, base = _params(ws, spec, length=10, ending_at=END)
    seg = [s.id for s in ws.segments if s.analytics_tracking_enabled][3]
    full = client.ok(path, **base)["data"]
    filtered = client.ok(path, segment_id=seg, **base)["data"]
    assert full != filtered
    assert filtered == ws.series(
        path, now=NOW, length=10, ending_at=END_DT, entity=entity, segment_id=seg
    )


def _totals_only(ws, canvas_id, day):
    """A canvas day as the oracle has it without breakdowns (the default request)."""
    return ws.canvas_stats(
        canvas_id,
        date.fromisoformat(day),
        now=NOW,
        include_variant_breakdown=False,
        include_step_breakdown=False,
    )


def test_canvas_series_default_has_empty_breakdowns(client, ws):
    canvas = ws.canvases[3]
    body = client.ok("/canvas/data_series", canvas_id=canvas.id, length=3, ending_at=END)
    assert set(body) == {"message", "data"}
    assert body["data"]["name"] == canvas.name
    stats = body["data"]["stats"]
    assert [s["time"] for s in stats] == ["2024-03-08", "2024-03-09", "2024-03-10"]
    for s in stats:
        assert s["variant_stats"] == {}
        assert s["step_stats"] == {}
        assert set(s["total_stats"]) == {
            "revenue",
            "conversions",
            "conversions_by_entry_time",
            "entries",
        }
        assert s == _totals_only(ws, canvas.id, s["time"])


def test_canvas_series_breakdowns(client, ws):
    canvas = next(c for c in ws.canvases if c.name.startswith("Showcase"))
    deleted = {s.id for s in canvas.steps if s.deleted}
    assert deleted
    common = {"canvas_id": canvas.id, "length": 14, "ending_at": END}
    with_all = client.ok(
        "/canvas/data_series",
        include_variant_breakdown="true",
        include_step_breakdown="true",
        include_deleted_step_data="true",
        **common,
    )["data"]["stats"]
    assert len(with_all) == 14
    for s in with_all:
        assert s == ws.canvas_stats(canvas.id, date.fromisoformat(s["time"]), now=NOW)
        assert set(s["variant_stats"]) == {v.id for v in canvas.variants}
        assert deleted <= set(s["step_stats"])
    no_deleted = client.ok("/canvas/data_series", include_step_breakdown="true", **common)["data"][
        "stats"
    ]
    for s in no_deleted:
        assert s["variant_stats"] == {}
        assert set(s["step_stats"]) == {x.id for x in canvas.steps if not x.deleted}
    # channel arrays: undocumented extra metric present, empty arrays present somewhere
    entries = [
        (ch, e)
        for s in with_all
        for st in s["step_stats"].values()
        for ch, e in st["messages"].items()
    ]
    assert any(e == [] for _, e in entries)
    assert any(ch == "email" and e and "machine_open" in e[0] for ch, e in entries)
    assert any(
        ch == "sms" and e and {"sent_to_carrier", "opt_out", "help"} <= set(e[0])
        for ch, e in entries
    )


def test_canvas_series_starting_at(client, ws):
    canvas = ws.canvases[0]
    body = client.ok(
        "/canvas/data_series",
        canvas_id=canvas.id,
        starting_at="2024-03-01",
        ending_at="2024-03-05T23:59:59Z",
    )
    assert [s["time"] for s in body["data"]["stats"]] == [f"2024-03-0{d}" for d in range(1, 6)]
    body = client.ok(
        "/canvas/data_series",
        canvas_id=canvas.id,
        starting_at="2024-02-21T10:00:00Z",
        ending_at="2024-03-05T23:59:59Z",
    )
    assert len(body["data"]["stats"]) == 14


def test_campaign_series(client, ws):
    camp = next(c for c in ws.campaigns if c.name.startswith("Showcase"))
    body = client.ok("/campaigns/data_series", campaign_id=camp.id, length=5, ending_at=END)
    assert [d["time"] for d in body["data"]] == [f"2024-03-{d:02d}" for d in range(6, 11)]
    for d in body["data"]:
        assert d == ws.campaign_stats(camp.id, date.fromisoformat(d["time"]), now=NOW)
        assert isinstance(d["revenue"], float)
        assert set(d["messages"]) == set(camp.channels)


def test_archived_entities_still_serve_their_history(client, ws):
    canvas = next(c for c in ws.canvases if c.archived)
    camp = next(c for c in ws.campaigns if c.archived)
    body = client.ok("/canvas/data_series", canvas_id=canvas.id, length=2, ending_at=END)
    assert body["data"]["name"] == canvas.name
    stats = body["data"]["stats"]
    assert [s["time"] for s in stats] == ["2024-03-09", "2024-03-10"]
    for s in stats:
        assert s == _totals_only(ws, canvas.id, s["time"])
    data = client.ok("/campaigns/data_series", campaign_id=camp.id, length=2, ending_at=END)["data"]
    assert [d["time"] for d in data] == ["2024-03-09", "2024-03-10"]
    for d in data:
        assert d == ws.campaign_stats(camp.id, date.fromisoformat(d["time"]), now=NOW)
    assert any(s["total_stats"]["entries"] for s in stats) or any(d["messages"] for d in data)
