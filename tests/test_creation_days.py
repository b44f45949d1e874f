"""Canvases and campaigns are read from the day they were created, not from start_date.

Braze answers zeros for the days before an entity existed; the tap learns the day
from the entity's details (`created_at`, in the company time zone), shares those
requests with the details streams, and asks them only where they save requests.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter

import pytest

from tap_braze_series.sandbox import Sandbox, SandboxConfig
from tests.harness.expected import assert_matches, entity_days, oracle
from tests.harness.messages import keyed, keys_of
from tests.harness.proxy import Proxy
from tests.harness.running import run_tap

NOW = dt.datetime(2024, 6, 30, 12, tzinfo=dt.timezone.utc)
START = dt.date(2023, 1, 1)
END = dt.date(2024, 6, 30)  # the run ends inside it (05:00 in Los Angeles)
TZ = "America/Los_Angeles"
SERIES = ["canvas_data_series", "canvas_step_data_series", "campaign_data_series"]


@pytest.fixture(scope="module")
def sb():
    # Entities created before, across and after the start of the backfill.
    config = SandboxConfig(
        seed=41,
        n_canvases=10,
        n_campaigns=8,
        n_events=1,
        n_segments=1,
        n_products=0,
        apps=("app_ios",),
        timezone=TZ,
        now=NOW,
        history_start=START,
    )
    with Sandbox(config) as sb:
        yield sb


def config(sb, **extra):
    return {
        "api_key": sb.api_key,
        "api_url": sb.url,
        "start_date": START.isoformat(),
        "end_date": NOW.isoformat(),
        "company_timezone": TZ,
        **extra,
    }


def served(sb, path):
    return [r for r in sb.request_log if r.path == path and r.status == 200]


def windows_from_creation(ws, entities, max_length):
    return sum(math.ceil(len(entity_days(ws, e, START, END)) / max_length) for e in entities)


def test_the_workspace_has_entities_created_inside_the_backfill(sb):
    ws = sb.workspace
    created = [ws.created_day(c) for c in ws.active_canvases + ws.active_campaigns]
    assert sum(START < day <= END for day in created) >= 4, created
    assert any(day <= START for day in created), created


def test_each_entity_is_read_from_its_creation_day_exactly(sb):
    ws = sb.workspace
    sb.clear_log()
    run = run_tap(config(sb), streams=SERIES)
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in SERIES:
        want = oracle(ws, stream, first=START, last=END, now=NOW)
        assert_matches(stream, keyed(run.records[stream], keys_of(stream)), want)
    first_day = {}
    for record in run.records["canvas_data_series"]:
        first_day.setdefault(record["canvas_id"], record["time"])
    for canvas in ws.active_canvases:
        assert first_day[canvas.id] == max(START, ws.created_day(canvas)).isoformat()
    # Series requests: the windows from each entity's creation, no more.
    assert len(served(sb, "/canvas/data_series")) == windows_from_creation(
        ws, ws.active_canvases, 14
    )
    assert len(served(sb, "/campaigns/data_series")) == windows_from_creation(
        ws, ws.active_campaigns, 100
    )
    # Details only where the day could save two windows or more: an entity is created
    # by its last edit at the latest.
    for path, param, entities, max_length in (
        ("/canvas/details", "canvas_id", ws.active_canvases, 14),
        ("/campaigns/details", "campaign_id", ws.active_campaigns, 100),
    ):
        asked = {r.params[param] for r in served(sb, path)}
        assert asked == {e.id for e in entities if may_save(ws, e, max_length)}, path
    assert served(sb, "/campaigns/details"), "some campaigns are worth asking"


def may_save(ws, entity, max_length):
    edited = dt.datetime.fromisoformat(entity.last_edited).astimezone(ws.tz).date()
    from_start = math.ceil(((END - START).days + 1) / max_length)
    at_best = math.ceil(((END - max(START, min(edited, END))).days + 1) / max_length)
    return from_start - at_best >= 2


def test_details_are_asked_once_when_the_details_streams_sync_too(sb):
    ws = sb.workspace
    sb.clear_log()
    streams = [*SERIES, "canvas_details", "campaign_details"]
    run = run_tap(config(sb), streams=streams)
    assert run.returncode == 0, run.stderr[-3000:]
    for path, entities in (
        ("/canvas/details", ws.active_canvases),
        ("/campaigns/details", ws.active_campaigns),
    ):
        asked = Counter(
            r.params.get("canvas_id") or r.params["campaign_id"] for r in served(sb, path)
        )
        assert asked == Counter(e.id for e in entities), path
    assert {r["canvas_id"] for r in run.records["canvas_details"]} == {
        c.id for c in ws.active_canvases
    }
    assert {r["campaign_id"] for r in run.records["campaign_details"]} == {
        c.id for c in ws.active_campaigns
    }
    # Every campaign's day is known for free: each is read from it.
    assert len(served(sb, "/campaigns/data_series")) == windows_from_creation(
        ws, ws.active_campaigns, 100
    )
    want = oracle(ws, "campaign_data_series", first=START, last=END, now=NOW)
    got = keyed(run.records["campaign_data_series"], keys_of("campaign_data_series"))
    assert_matches("campaign_data_series", got, want)


def test_without_the_details_permission_every_entity_starts_at_start_date(sb):
    ws = sb.workspace
    sb.set_denied_permissions({"canvas.details"})
    sb.clear_log()
    try:
        run = run_tap(config(sb), streams=["canvas_data_series"])
    finally:
        sb.set_denied_permissions(set())
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "'canvas.details' permission" in line]
    assert len(warnings) == 1, warnings
    assert "Traceback" not in run.stderr
    days_read = (END - START).days + 1
    assert len(served(sb, "/canvas/data_series")) == len(ws.active_canvases) * math.ceil(
        days_read / 14
    )
    # Every day from start_date, the zeros before an entity's creation included.
    assert len(run.records["canvas_data_series"]) == len(ws.active_canvases) * days_read


def test_an_entity_with_a_bookmark_is_unchanged_and_asks_no_details(sb):
    ws = sb.workspace
    canvas = max(ws.active_canvases, key=ws.created_day)
    assert ws.created_day(canvas) > START + dt.timedelta(days=60)
    bookmark = (START + dt.timedelta(days=20)).isoformat()  # before it was created
    others = [c for c in ws.active_canvases if c.id != canvas.id]
    state = {
        "bookmarks": {
            "canvas_data_series": {
                "partitions": [
                    {
                        "context": {"canvas_id": c.id},
                        "replication_key": "time",
                        "replication_key_value": bookmark,
                    }
                    for c in [canvas, *others]
                ]
            }
        }
    }
    sb.clear_log()
    run = run_tap(config(sb, lookback_days=0), streams=["canvas_data_series"], state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not served(sb, "/canvas/details")
    rows = [r for r in run.records["canvas_data_series"] if r["canvas_id"] == canvas.id]
    assert rows[0]["time"] == bookmark  # re-read from its bookmark, as before


def test_a_details_answer_that_fails_costs_only_its_entity_its_creation_day(sb):
    ws = sb.workspace
    new = [c for c in ws.active_canvases if may_save(ws, c, 14) and ws.created_day(c) > START]
    gone, odd = new[:2]  # a 404 (deleted since the list); an answer without created_at

    def fail(path, params):
        return 404 if path == "/canvas/details" and params.get("canvas_id") == gone.id else None

    def mutate(path, params, body):
        if path == "/canvas/details" and params.get("canvas_id") == odd.id:
            return {k: v for k, v in body.items() if k != "created_at"}
        return None

    with Proxy(sb.url, mutate=mutate, fail=fail) as proxy:
        run = run_tap({**config(sb), "api_url": proxy.url}, streams=["canvas_data_series"])
    assert run.returncode == 0, run.stderr[-3000:]  # a details request never stops the run
    [warning] = [line for line in run.stderr.splitlines() if "created_at" in line]
    assert "2 entities" in warning
    first_day = {}
    for record in run.records["canvas_data_series"]:
        first_day.setdefault(record["canvas_id"], record["time"])
    for canvas in ws.active_canvases:
        expected = START if canvas in (gone, odd) else max(START, ws.created_day(canvas))
        assert first_day[canvas.id] == expected.isoformat(), canvas.id
