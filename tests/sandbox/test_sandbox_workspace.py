"""The workspace: entities, determinism and the value oracle (no HTTP)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tap_braze_series.sandbox import SandboxConfig, Workspace
from tap_braze_series.sandbox.channels import CANVAS_CHANNEL_METRICS, CHANNELS
from tap_braze_series.sandbox.endpoints import SERIES
from tap_braze_series.sandbox.timeutil import UTC
from tap_braze_series.sandbox.workspace import CONVERSION_COUNTERS

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NOW = datetime(2024, 3, 15, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def big() -> Workspace:
    return Workspace(
        SandboxConfig(
            n_canvases=300, n_campaigns=200, n_segments=200, n_events=1000, n_products=50, now=NOW
        )
    )


def test_counts_and_ids(big: Workspace):
    assert len(big.canvases) == 300
    assert len(big.campaigns) == 200
    assert len(big.segments) == 200
    assert len(big.events) == 1000
    assert len(set(big.events)) == 1000
    assert len(big.products) == 50
    ids = (
        [c.id for c in big.canvases] + [c.id for c in big.campaigns] + [s.id for s in big.segments]
    )
    assert len(set(ids)) == len(ids)
    assert all(UUID_RE.match(i) for i in ids)
    assert big.apps == ["app_ios", "app_android"]


def test_deterministic_and_seed_dependent():
    a = Workspace(SandboxConfig(seed=7, now=NOW))
    b = Workspace(SandboxConfig(seed=7, now=NOW))
    c = Workspace(SandboxConfig(seed=8, now=NOW))
    assert a.canvases == b.canvases
    assert a.campaigns == b.campaigns
    assert a.segments == b.segments
    assert a.events == b.events
    assert [x.id for x in a.canvases] != [x.id for x in c.canvases]
    day = date(2024, 3, 1)
    assert a.canvas_stats(a.canvases[0].id, day, now=NOW) == b.canvas_stats(
        b.canvases[0].id, day, now=NOW
    )


def test_canvas_shapes(big: Workspace):
    archived = sum(c.archived for c in big.canvases)
    assert 0.1 < archived / len(big.canvases) < 0.35
    steps = [s for c in big.canvases for s in c.steps]
    assert all(1 <= len(c.variants) <= 3 for c in big.canvases)
    assert all(1 <= len(c.steps) <= 5 for c in big.canvases)
    assert any(len(s.channels) > 1 for s in steps)
    assert any(s.channels == () for s in steps)
    deleted = sum(s.deleted for s in steps)
    assert 0.03 < deleted / len(steps) < 0.2
    assert {ch for s in steps for ch in s.channels} <= set(CHANNELS)
    hs = big.history_start.isoformat()
    old = [c for c in big.canvases if c.last_edited < hs]
    assert old, "some canvases were last edited before history_start"
    # ... and still have data
    assert any(
        big.canvas_stats(c.id, date(2024, 3, 1), now=NOW)["total_stats"]["entries"] > 0 for c in old
    )
    for c in big.canvases:
        datetime.fromisoformat(c.last_edited)
        assert c.created_at <= c.last_edited


def test_campaign_and_segment_shapes(big: Workspace):
    assert any(v.is_control for c in big.campaigns for v in c.variations)
    assert any(len(c.channels) > 1 for c in big.campaigns)
    assert any(c.is_api_campaign for c in big.campaigns)
    assert all(1 <= len([v for v in c.variations if not v.is_control]) <= 3 for c in big.campaigns)
    disabled = sum(not s.analytics_tracking_enabled for s in big.segments)
    assert 0.1 < disabled / len(big.segments) < 0.35


def test_event_and_product_names():
    ws = Workspace(SandboxConfig(n_events=30))
    names = ws.events
    for needle in (" ", "/", "&", "=", "?", "%", "+", "#"):
        assert any(needle in n for n in names), needle
    assert "café ouvert" in names
    assert any(ord(ch) > 0xFFFF for n in names for ch in n), "an emoji"
    assert any(re.fullmatch(r"[a-z_]+_\d+", n) for n in names)
    assert any(" " in p for p in ws.products)
    assert any("&" in p for p in ws.products)


@pytest.mark.parametrize("path", sorted(SERIES))
def test_series_values_vary_and_are_non_negative(big: Workspace, path: str):
    spec = SERIES[path]
    entity = {
        "event": big.events[40],
        "segment_id": next(s.id for s in big.segments if s.analytics_tracking_enabled),
        "product": big.products[3],
        None: None,
    }[spec.entity_param]
    values = [
        big.series_value(path, date(2024, 2, 1) + timedelta(days=i), entity=entity, now=NOW)
        for i in range(30)
    ]
    assert all(v >= 0 for v in values)
    assert len(set(values)) > 5
    for v in values:
        assert isinstance(v, float if spec.is_float else int)
        if spec.is_float:
            assert round(v, 2) == v


def test_filters_change_values(big: Workspace):
    day = date(2024, 2, 5)
    event = big.events[100]
    seg = next(s.id for s in big.segments if s.analytics_tracking_enabled)
    full = [
        big.series_value("/events/data_series", day + timedelta(days=i), entity=event, now=NOW)
        for i in range(10)
    ]
    by_app = [
        big.series_value(
            "/events/data_series", day + timedelta(days=i), entity=event, app_id="app_ios", now=NOW
        )
        for i in range(10)
    ]
    by_seg = [
        big.series_value(
            "/events/data_series", day + timedelta(days=i), entity=event, segment_id=seg, now=NOW
        )
        for i in range(10)
    ]
    assert full != by_app != by_seg
    assert sum(by_app) < sum(full)
    assert sum(by_seg) < sum(full)


def test_history_start_and_future(big: Workspace):
    before = date(2022, 12, 31)
    assert big.series_value("/sessions/data_series", before, now=NOW) == 0
    assert big.series_value("/purchases/revenue_series", before, now=NOW) == 0.0
    stats = big.canvas_stats(big.canvases[0].id, before, now=NOW)
    assert stats["total_stats"] == {
        "revenue": 0.0,
        "conversions": 0,
        "conversions_by_entry_time": 0,
        "entries": 0,
    }
    assert big.series_value("/sessions/data_series", date(2023, 1, 1), now=NOW) > 0
    with pytest.raises(ValueError, match="after now"):
        big.series_value("/sessions/data_series", date(2024, 3, 16), now=NOW)


def test_restatement_oracle(big: Workspace):
    path, day = "/sessions/data_series", date(2024, 3, 13)  # ends 03-14 00:00; age 1 at NOW
    later = [big.series_value(path, day, now=NOW + timedelta(days=k)) for k in range(5)]
    # ages 1, 2 -> still moving; age >= 3 -> frozen
    assert later[0] < later[1] < later[2]
    assert later[2] == later[3] == later[4]
    # the bucket containing now is partial and grows during the day
    today = date(2024, 3, 15)
    a = big.series_value(path, today, now=NOW)
    b = big.series_value(path, today, now=NOW + timedelta(hours=6))
    assert a < b < big.series_value(path, today, now=NOW + timedelta(days=10))


def test_restatement_zero_days():
    ws = Workspace(SandboxConfig(restatement_days=0, now=NOW))
    day = date(2024, 3, 14)
    assert ws.series_value("/kpi/dau/data_series", day, now=NOW) == ws.series_value(
        "/kpi/dau/data_series", day, now=NOW + timedelta(days=30)
    )


def test_bucket_start_dst():
    ws = Workspace(SandboxConfig(timezone="America/New_York"))
    ny = ZoneInfo("America/New_York")

    def hours_of(day: date) -> list[str]:
        start = ws.day_start(day)
        end = ws.day_start(day + timedelta(days=1))
        out, cur = [], start
        while cur.astimezone(UTC) < end.astimezone(UTC):
            out.append(ws.bucket_label(cur, "hour"))
            cur = ws.next_bucket(cur, "hour")
        return out

    spring = hours_of(date(2024, 3, 10))
    fall = hours_of(date(2024, 11, 3))
    assert len(spring) == 23
    assert "2024-03-10T01:00:00-05:00" in spring
    assert "2024-03-10T03:00:00-04:00" in spring
    assert len(fall) == 25
    assert fall[1:3] == ["2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00"]
    assert len(hours_of(date(2024, 3, 11))) == 24
    # bucket_start of an instant in the repeated hour
    inst = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # 01:30 EST (second occurrence)
    assert ws.bucket_start(inst, "hour").isoformat() == "2024-11-03T01:00:00-05:00"
    assert ws.bucket_start(inst, "day") == datetime(2024, 11, 3, tzinfo=ny)


def test_canvas_stats_breakdowns(big: Workspace):
    canvas = next(c for c in big.canvases if c.name.startswith("Showcase"))
    day = date(2024, 3, 1)
    full = big.canvas_stats(canvas.id, day, now=NOW)
    assert full["time"] == "2024-03-01"
    assert set(full) == {"time", "total_stats", "variant_stats", "step_stats"}
    assert set(full["variant_stats"]) == {v.id for v in canvas.variants}
    assert set(full["step_stats"]) == {s.id for s in canvas.steps}
    tot = full["total_stats"]
    assert tot["entries"] == sum(v["entries"] for v in full["variant_stats"].values())
    bare = big.canvas_stats(
        canvas.id, day, now=NOW, include_variant_breakdown=False, include_step_breakdown=False
    )
    assert bare["variant_stats"] == {}
    assert bare["step_stats"] == {}
    assert bare["total_stats"] == tot
    no_deleted = big.canvas_stats(canvas.id, day, now=NOW, include_deleted_step_data=False)
    assert set(no_deleted["step_stats"]) == {s.id for s in canvas.steps if not s.deleted}
    for step in full["step_stats"].values():
        assert set(step) == {
            "name",
            "revenue",
            "conversions",
            "conversions_by_entry_time",
            "messages",
        }
        for channel, entries in step["messages"].items():
            for entry in entries:
                assert list(entry) == [m[0] for m in CANVAS_CHANNEL_METRICS[channel]]
                assert all(isinstance(v, int) and v >= 0 for v in entry.values())


def test_empty_channel_arrays_and_extra_metric(big: Workspace):
    seen_empty = seen_extra = False
    for canvas in big.canvases[:40]:
        for k in range(7):
            stats = big.canvas_stats(canvas.id, date(2024, 3, 1) + timedelta(days=k), now=NOW)
            for step in stats["step_stats"].values():
                for channel, entries in step["messages"].items():
                    seen_empty |= entries == []
                    seen_extra |= (
                        channel == "email" and bool(entries) and ("machine_open" in entries[0])
                    )
    assert seen_empty
    assert seen_extra


def test_campaign_stats_shape(big: Workspace):
    camp = next(c for c in big.campaigns if c.name.startswith("Showcase"))
    stats = big.campaign_stats(camp.id, date(2024, 3, 1), now=NOW)
    assert stats["time"] == "2024-03-01"
    assert len(CONVERSION_COUNTERS) == 8
    for key in ("unique_recipients", *CONVERSION_COUNTERS, "revenue", "messages"):
        assert key in stats
    assert set(stats["messages"]) == set(camp.channels)
    first = stats["messages"][camp.channels[0]]
    control = [e for e in first if "enrolled" in e]
    assert len(control) == 1
    assert control[0]["variation_name"] == "Control Group"
    regular = [e for ch in camp.channels for e in stats["messages"][ch] if "enrolled" not in e]
    assert stats["unique_recipients"] == sum(e["unique_recipients"] for e in regular)
    assert all({"variation_api_id", "variation_name", "sent"} <= set(e) for e in regular)
    ids = {e["variation_api_id"] for e in regular}
    assert len(ids) == len(regular)  # per (variation, channel) message ids


def test_window_oracle():
    ws = Workspace(SandboxConfig())
    now = datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
    w = ws.window(now=now, length=3, ending_at=datetime(2024, 3, 5, 23, 59, 59, tzinfo=UTC))
    assert [ws.bucket_label(b) for b in w] == ["2024-03-03", "2024-03-04", "2024-03-05"]
    w = ws.window(now=now, length=2, ending_at=datetime(2024, 3, 5, tzinfo=UTC))
    assert [ws.bucket_label(b) for b in w] == ["2024-03-03", "2024-03-04"]
    w = ws.window(now=now, length=1, ending_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert [ws.bucket_label(b) for b in w] == ["2024-03-15"]
