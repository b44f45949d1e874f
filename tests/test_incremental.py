"""State: bookmarks per partition, lookback re-reads, restated buckets refreshed."""

from __future__ import annotations

import datetime as dt

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.tapkit import days, expected_simple, keyed, run_tap

NOW1 = dt.datetime(2024, 5, 20, 12, tzinfo=dt.timezone.utc)
NOW2 = NOW1 + dt.timedelta(days=6)
STREAMS = [
    "canvas_data_series",
    "canvas_step_data_series",
    "event_data_series",
    "segment_data_series",
]


@pytest.fixture
def sandbox():
    config = SandboxConfig(
        seed=5,
        n_canvases=3,
        n_events=4,
        n_segments=3,
        apps=("app_ios",),
        now=NOW1,
        restatement_days=4,
    )
    with Sandbox(config) as sb:
        yield sb


def config_for(sb, **extra):
    return {
        "api_key": sb.api_key,
        "api_url": sb.url,
        "start_date": "2024-03-01",
        "lookback_days": 7,
        **extra,
    }


def ending_days(sb, path):
    """(first day, last day) each logged request covered."""
    spans = []
    for r in sb.request_log:
        if r.path == path and r.status == 200:
            last = dt.date.fromisoformat(r.params["ending_at"][:10])
            spans.append((last - dt.timedelta(days=int(r.params["length"]) - 1), last))
    return spans


def test_second_run_reads_only_lookback_and_new_days_and_refreshes_restated(sandbox):
    sb = sandbox
    # The tap's clock is not the sandbox's: an end_date at the sandbox's "now" stands
    # in for the default (now), today's partial bucket included.
    first = run_tap(config_for(sb, end_date=NOW1.isoformat()), streams=STREAMS)
    assert first.returncode == 0, first.stderr[-2000:]
    for partition in first.state["bookmarks"]["event_data_series"]["partitions"]:
        assert partition["replication_key_value"] == "2024-05-20"

    sb.clear_log()
    sb.set_now(NOW2)
    second = run_tap(config_for(sb, end_date=NOW2.isoformat()), state=first.state, streams=STREAMS)
    assert second.returncode == 0, second.stderr[-2000:]

    # Every series request starts at bookmark - lookback_days and ends today.
    for path in ("/canvas/data_series", "/events/data_series", "/segments/data_series"):
        spans = ending_days(sb, path)
        assert spans, path
        assert min(s[0] for s in spans) == dt.date(2024, 5, 13), path
        assert max(s[1] for s in spans) == dt.date(2024, 5, 26), path
    events = keyed(second.records["event_data_series"], ["event_name", "time"])
    assert {k[1] for k in events} == {
        d.isoformat() for d in days(dt.date(2024, 5, 13), dt.date(2024, 5, 26))
    }

    # Restated buckets carry the values Braze shows now, not those of the first run.
    ws = sb.workspace
    expected = keyed(
        expected_simple(
            ws,
            "/events/data_series",
            "count",
            unit="day",
            first=dt.date(2024, 5, 13),
            last=dt.date(2024, 5, 26),
            now=NOW2,
            entities=[({"event_name": e}, e) for e in ws.events],
        ),
        ["event_name", "time"],
    )
    assert {k: r["count"] for k, r in events.items()} == {
        k: r["count"] for k, r in expected.items()
    }
    before = keyed(first.records["event_data_series"], ["event_name", "time"])
    changed = [k for k in events if k in before and before[k]["count"] != events[k]["count"]]
    assert changed, "the sandbox restated recent days; the lookback must pick them up"


def test_new_entity_backfills_and_vanished_entity_is_tolerated(sandbox):
    sb = sandbox
    canvas_ids = [c.id for c in sb.workspace.canvases if not c.archived]
    first = run_tap(
        config_for(sb, end_date="2024-05-19", canvas_ids=canvas_ids[:1]),
        streams=["canvas_data_series"],
    )
    assert first.returncode == 0, first.stderr[-2000:]
    state = first.state
    # A partition of a canvas that no longer exists stays harmless.
    state["bookmarks"]["canvas_data_series"]["partitions"].append(
        {
            "context": {"canvas_id": "deleted-canvas"},
            "replication_key": "time",
            "replication_key_value": "2024-05-01",
        }
    )
    sb.clear_log()
    second = run_tap(
        config_for(sb, end_date="2024-05-19", canvas_ids=canvas_ids[:2]),
        state=state,
        streams=["canvas_data_series"],
    )
    assert second.returncode == 0, second.stderr[-2000:]
    rows = keyed(second.records["canvas_data_series"], ["canvas_id", "time"])
    old = {t for c, t in rows if c == canvas_ids[0]}
    new = {t for c, t in rows if c == canvas_ids[1]}
    assert min(old) == "2024-05-12"  # bookmark 05-19 minus 7 days
    assert min(new) == "2024-03-01"
    assert max(new) == "2024-05-19"
    assert not any(r.params.get("canvas_id") == "deleted-canvas" for r in sb.request_log)


def test_up_to_date_run_requests_only_the_lookback(sandbox):
    sb = sandbox
    config = config_for(sb, end_date="2024-05-19", lookback_days=0)
    first = run_tap(config, streams=["segment_data_series"])
    sb.clear_log()
    second = run_tap(config, state=first.state, streams=["segment_data_series"])
    assert second.returncode == 0
    # lookback 0 still re-reads the bookmarked (possibly partial) day itself.
    assert {r["time"] for r in second.records["segment_data_series"]} == {"2024-05-19"}
    assert all(
        r.params["length"] == "1" for r in sb.request_log if r.path == "/segments/data_series"
    )
