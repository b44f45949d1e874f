"""State: bookmarks per partition, lookback re-reads, restated buckets refreshed."""

from __future__ import annotations

import datetime as dt

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.harness.expected import days, expected_simple
from tests.harness.messages import keyed
from tests.harness.running import run_tap
from tests.harness.sandboxes import READINGS

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
    """(first day, last day) each logged request covered (`ending_at` is the next day)."""
    spans = []
    for r in sb.request_log:
        if r.path == path and r.status == 200:
            last = dt.date.fromisoformat(r.params["ending_at"]) - dt.timedelta(days=1)
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
            bookmarked=True,
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


# --- nightly runs carrying STATE, under each reading of Braze --------------------------

NIGHT = dt.datetime(2024, 5, 20, 6, 30, tzinfo=dt.timezone.utc)  # 02:30 in New York
NIGHTLY_STREAMS = {
    "event_data_series": ("/events/data_series", "count", "day", ("event_name", "app_id")),
    "event_data_series_hourly": ("/events/data_series", "count", "hour", ("event_name", "app_id")),
    "session_data_series": ("/sessions/data_series", "sessions", "day", ("app_id",)),
    "kpi_dau_data_series": ("/kpi/dau/data_series", "dau", "day", ("app_id",)),
    "canvas_data_series": ("/canvas/data_series", "entries", "day", ("canvas_id",)),
}
NIGHTS = 3


def nightly_expected(ws, stream: str, now: dt.datetime, first: dt.date) -> dict[tuple, object]:
    path, field, unit, identity = NIGHTLY_STREAMS[stream]
    if stream == "canvas_data_series":
        last = now.astimezone(ws.tz).date()
        if ws.config.ending_at_reading != "instant":
            last -= dt.timedelta(days=1)  # no partial day under this reading
        return {
            (c.id, d.isoformat()): ws.canvas_stats(c.id, d, now=now)["total_stats"]["entries"]
            for c in ws.canvases
            if not c.archived
            for d in days(first, last)
        }
    entities = [({"event_name": e}, e) for e in ws.events] if "event_name" in identity else None
    rows = expected_simple(
        ws,
        path,
        field,
        unit=unit,
        first=first,
        last=now.astimezone(ws.tz).date(),
        now=now,
        apps=("*", "app_ios"),
        **({"entities": entities} if entities else {}),
    )
    return {(*(r[k] for k in identity), r["time"]): r[field] for r in rows}


# The two readings under which the tap lost buckets; with zero-filled count series
# (the third reading) no bucket is ever left out, and the sync-value tests cover it.
@pytest.mark.parametrize("reading", ["recorded", "ends_by"])
def test_three_nightly_runs_carrying_state_deliver_every_bucket(reading):
    """Nightly runs, each from the last one's STATE: what a warehouse upserting the rows
    holds after the third equals what Braze shows then, with no partition held back."""
    tz = "America/New_York"
    config = SandboxConfig(
        **READINGS[reading],
        seed=5,
        n_canvases=2,
        n_events=6,
        n_segments=2,
        apps=("app_ios",),
        timezone=tz,
        now=NIGHT,
        restatement_days=3,
    )
    first_day = dt.date(2024, 4, 1)  # 7 hour windows, 4 canvas windows
    with Sandbox(config) as sb:
        warehouse: dict[str, dict[tuple, object]] = {s: {} for s in NIGHTLY_STREAMS}
        state = None
        for night in range(NIGHTS):
            now = NIGHT + dt.timedelta(days=night)
            sb.set_now(now)
            tap_config = {
                **config_for(sb, end_date=now.isoformat(), lookback_days=14),
                "start_date": first_day.isoformat(),
                "company_timezone": tz,
                "app_ids": ["app_ios"],
            }
            run = run_tap(tap_config, state=state, streams=list(NIGHTLY_STREAMS))
            assert run.returncode == 0, run.stderr[-2000:]
            held = [
                line
                for line in run.stderr.splitlines()
                if "asked twice" in line or "no point for" in line
            ]
            state = run.state
            for stream, (_, field, _, identity) in NIGHTLY_STREAMS.items():
                for r in run.records[stream]:
                    warehouse[stream][(*(r[k] for k in identity), r["time"])] = r[field]
        ws = sb.workspace
        figures = []
        wanted = {}
        for stream in NIGHTLY_STREAMS:
            wanted[stream] = want = nightly_expected(ws, stream, now, first_day)
            delivered = len(want.keys() & warehouse[stream].keys())
            figures.append(f"{stream}: {delivered} of {len(want)}")
        for stream, want in wanted.items():
            # The figures say how many buckets of each stream the warehouse holds.
            assert warehouse[stream] == want, (stream, "; ".join(figures))
        assert not held, held[:3]  # no partition held back, in the last run either
        zeros = sum(1 for v in warehouse["event_data_series"].values() if v == 0)
        assert zeros >= 20, "the sandbox's events have days without occurrences"


def test_zero_rows_off_writes_no_zero_row_and_bookmarks_alike():
    config = SandboxConfig(seed=5, n_canvases=1, n_events=6, n_segments=1, now=NIGHT)
    with Sandbox(config) as sb:
        # 'search & filter' has no occurrence on 05-13 and 05-14, the run's last days.
        tap_config = config_for(sb, end_date="2024-05-14", start_date="2024-04-01")
        dense = run_tap(tap_config, streams=["event_data_series"])
        sparse = run_tap({**tap_config, "zero_rows": False}, streams=["event_data_series"])
    assert dense.returncode == sparse.returncode == 0, sparse.stderr[-2000:]
    rows = dense.records["event_data_series"]
    zeros = [r for r in rows if r["count"] == 0]
    assert len(zeros) >= 10, "the sandbox's events have days without occurrences"
    assert sparse.records["event_data_series"] == [r for r in rows if r["count"] != 0]
    assert sparse.state == dense.state
    # Events whose last written row is before their last day: their bookmarks passed
    # the zero days after it all the same.
    marks = {
        p["context"]["event_name"]: p.get("replication_key_value")
        for p in sparse.state["bookmarks"]["event_data_series"]["partitions"]
    }
    last_written = {r["event_name"]: r["time"] for r in sparse.records["event_data_series"]}
    assert last_written["search & filter"] == "2024-05-12"
    assert marks["search & filter"] == "2024-05-14"
