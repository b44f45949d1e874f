"""Responses that contradict the docs: skipped and logged, never a crash, never a lost record.

A proxy between the tap and the sandbox rewrites one chosen response (one
window of one partition) per case, and the tap's second ask of it when the
rewrite leaves a bucket missing. Each case states which records it may
remove or change (`affected`); everything else must equal a clean run. Cases
that drop a whole window also check the state: the bookmark of that partition
stays at or before the last bucket the run emitted for it.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.harness.messages import bookmarks, bucket_order, context_key, keyed, keys_of
from tests.harness.proxy import Proxy
from tests.harness.running import catalog_for, run_tap
from tests.harness.sandboxes import sandbox, tap_config

NOW = dt.datetime(2024, 4, 30, 12, tzinfo=dt.timezone.utc)
START = "2024-01-01"  # events: windows of 100 + 21 days; canvases: 8 x 14 + 9 days
APPS = ["app_ios"]
CANVAS = [
    "canvas_data_series",
    "canvas_variant_data_series",
    "canvas_step_data_series",
    "canvas_step_message_data_series",
]
STREAMS = [*CANVAS, "event_data_series", "session_data_series"]
# `ending_at` of a window is the day after its last.
EVENT_FIRST_WINDOW = "2024-04-10"  # ending_at of the first 100-day window
CANVAS_WINDOW_3 = "2024-02-12"  # ending_at of the canvas window 2024-01-29..02-11


@dataclass
class Case:
    """One contradiction of the docs."""

    path: str
    target: Callable[[dict[str, str], Any], bool]  # which request of `path` to rewrite
    mutate: Callable[[dict, Any], None]  # rewrites the body in place
    affected: Callable[[Any], set[tuple[str, tuple]]]  # (stream, key) it may remove/change
    # Words a WARNING about the path must show (None: nothing was skipped, no warning due).
    logged: tuple[str, ...] | None = None
    window_dropped: bool = False  # the rest of the partition's window is skipped
    added: Callable[[Any], dict[tuple[str, tuple], dict]] = field(
        default=lambda _ctx: {}
    )  # records it adds: (stream, key) -> fields
    # Requests the case rewrites: a window left with a missing bucket is asked again once.
    asks: int = 1


class Ctx:
    """Names of the targeted entities, from the sandbox's workspace."""

    def __init__(self, ws) -> None:
        self.event = ws.events[0]
        self.canvas = next(c for c in ws.canvases if not c.archived)
        self.step = next(s for s in self.canvas.steps if s.channels)
        self.ws = ws


def event_window(ending_day: str) -> Callable[[dict, Ctx], bool]:
    def target(params: dict, ctx: Ctx) -> bool:
        return (
            params.get("event") == ctx.event
            and "app_id" not in params
            and params.get("unit", "day") == "day"
            and params["ending_at"].startswith(ending_day)
        )

    return target


def canvas_window(ending_day: str) -> Callable[[dict, Ctx], bool]:
    def target(params: dict, ctx: Ctx) -> bool:
        return params.get("canvas_id") == ctx.canvas.id and params.get("ending_at", "").startswith(
            ending_day
        )

    return target


def event_keys(*times: str) -> Callable[[Ctx], set]:
    return lambda ctx: {("event_data_series", (ctx.event, "*", t)) for t in times}


def event_days(first: str, last: str) -> list[str]:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def canvas_keys(streams: list[str], times: list[str], clean_keys: dict) -> Callable[[Ctx], set]:
    """Every clean record of the target canvas on those days, in those streams."""

    def affected(ctx: Ctx) -> set:
        return {
            (s, k)
            for s in streams
            for k in clean_keys[s]
            if k[0] == ctx.canvas.id and k[2 if s != "canvas_data_series" else 1] in times
        }

    return affected


def _point(body: dict, index: int) -> dict:
    return body["data"][index]


def _set(index: int, name: str, value: Any) -> Callable[[dict, Ctx], None]:
    def mutate(body: dict, _ctx: Ctx) -> None:
        _point(body, index)[name] = value

    return mutate


def _drop(index: int, name: str) -> Callable[[dict, Ctx], None]:
    def mutate(body: dict, _ctx: Ctx) -> None:
        del _point(body, index)[name]

    return mutate


def _stat(body: dict, day: str) -> dict:
    return next(s for s in body["data"]["stats"] if s["time"] == day)


def _unknown_channel(body: dict, ctx: Ctx) -> None:
    step = _stat(body, "2024-02-01")["step_stats"][ctx.step.id]
    step["messages"]["carrier_pigeon"] = [{"sent": 3, "delivered": 2, "lost_feathers": 1}]


def _extra_metrics(body: dict, ctx: Ctx) -> None:
    stat = _stat(body, "2024-02-01")
    stat["total_stats"]["brand_new_metric"] = 5
    stat["step_stats"][ctx.step.id]["brand_new_step_metric"] = 6


def _variant_stats_not_an_object(body: dict, _ctx: Ctx) -> None:
    _stat(body, "2024-02-01")["variant_stats"] = ["not", "an", "object"]


def _step_stats_not_an_object(body: dict, _ctx: Ctx) -> None:
    _stat(body, "2024-02-01")["step_stats"] = "oops"


def _messages_not_an_object(body: dict, ctx: Ctx) -> None:
    _stat(body, "2024-02-01")["step_stats"][ctx.step.id]["messages"] = ["email"]


def _set_body(**changes: Any) -> Callable[[dict, Ctx], None]:
    def mutate(body: dict, _ctx: Ctx) -> None:
        body.update(copy.deepcopy(changes))

    return mutate


def _empty_stats(body: dict, _ctx: Ctx) -> None:
    body["data"]["stats"] = []


def _outside(body: dict, _ctx: Ctx) -> None:
    body["data"][5]["time"] = "2023-12-01"  # long before the window's first day


def cases(clean_keys: dict) -> dict[str, Case]:
    ev = "/events/data_series"
    cv = "/canvas/data_series"
    first = event_window(EVENT_FIRST_WINDOW)
    last = event_window("2024-05-01")  # the last window ends on 04-30
    window3 = canvas_window(CANVAS_WINDOW_3)
    feb1 = ["2024-02-01"]
    after_w3 = event_days("2024-01-29", "2024-04-30")

    def hole(mutate: Callable[[dict, Any], None], logged: tuple[str, ...]) -> Case:
        return Case(
            ev,
            first,
            mutate,
            event_keys("2024-01-06"),
            (*logged, "2024-01-06"),
            asks=2,
        )

    return {
        # A point without a usable time leaves its bucket missing: the window is asked
        # again (rewritten again); the bucket is older than the lookback re-reads, so
        # the run moves past it (a bucket in the lookback stops the partition before
        # it: tests/reliability/test_rel_points.py).
        "point without time": hole(_drop(5, "time"), ("time",)),
        "time null": hole(_set(5, "time", None), ("time",)),
        "time garbage": hole(_set(5, "time", "the sixth of January"), ("time",)),
        "time a number": hole(_set(5, "time", 20240106), ("time",)),
        "value field missing": Case(
            ev, first, _drop(7, "count"), event_keys("2024-01-08"), ("count",)
        ),
        "value null": Case(ev, first, _set(7, "count", None), event_keys("2024-01-08"), ("count",)),
        "value garbage": Case(
            ev, first, _set(7, "count", "many"), event_keys("2024-01-08"), ("count",)
        ),
        # Events are a count series: a bucket without a point is a 0 (Braze leaves out
        # zero buckets), so the bucket whose point went outside the window gets a 0.
        "bucket outside the window": Case(
            ev, first, _outside, event_keys("2024-01-06"), ("outside",)
        ),
        "unknown channel in step messages": Case(
            cv,
            window3,
            _unknown_channel,
            lambda _ctx: set(),
            added=lambda ctx: {
                (
                    "canvas_step_message_data_series",
                    (ctx.canvas.id, ctx.step.id, "2024-02-01", "carrier_pigeon", 0),
                ): {"sent": 3, "delivered": 2, "lost_feathers": 1}
            },
        ),
        "extra metrics": Case(
            cv,
            window3,
            _extra_metrics,
            canvas_keys(["canvas_data_series", "canvas_step_data_series"], feb1, clean_keys),
            added=lambda ctx: {
                ("canvas_data_series", (ctx.canvas.id, "2024-02-01")): {"brand_new_metric": 5},
                ("canvas_step_data_series", (ctx.canvas.id, ctx.step.id, "2024-02-01")): {
                    "brand_new_step_metric": 6
                },
            },
        ),
        "variant_stats not an object": Case(
            cv,
            window3,
            _variant_stats_not_an_object,
            canvas_keys(["canvas_variant_data_series"], feb1, clean_keys),
            ("variant_stats",),
        ),
        "step_stats not an object": Case(
            cv,
            window3,
            _step_stats_not_an_object,
            canvas_keys(
                ["canvas_step_data_series", "canvas_step_message_data_series"], feb1, clean_keys
            ),
            ("step_stats",),
        ),
        "step messages not an object": Case(
            cv,
            window3,
            _messages_not_an_object,
            lambda ctx: {
                (s, k)
                for s, k in canvas_keys(["canvas_step_message_data_series"], feb1, clean_keys)(ctx)
                if k[1] == ctx.step.id
            },
            ("messages",),
        ),
        # A count series' empty window is what Braze answers for days without activity:
        # rows with 0 once the entity had points (nothing to warn of), none before.
        "empty data list, last window": Case(
            ev,
            last,
            _set_body(data=[]),
            event_keys(*event_days("2024-04-10", "2024-04-30")),
        ),
        "empty data list, first window of a backfill": Case(
            ev,
            first,
            _set_body(data=[]),
            event_keys(*event_days("2024-01-01", "2024-04-09")),
        ),
        # Once the entity had points, an empty window is a glitch: asked again, and,
        # older than the lookback re-reads, moved past.
        "empty stats, canvas window": Case(
            cv,
            window3,
            _empty_stats,
            canvas_keys(CANVAS, event_days("2024-01-29", "2024-02-11"), clean_keys),
            logged=("2024-01-29",),
            asks=2,
        ),
        "message not success, event window": Case(
            ev,
            first,
            _set_body(message="internal error"),
            event_keys(*event_days("2024-01-01", "2024-04-30")),
            ("internal error",),
            window_dropped=True,
        ),
        "message not success, canvas window": Case(
            cv,
            window3,
            _set_body(message="partial failure"),
            canvas_keys(CANVAS, after_w3, clean_keys),
            ("partial failure",),
            window_dropped=True,
        ),
        "message missing": Case(
            ev,
            last,
            lambda body, _ctx: body.pop("message"),
            event_keys(*event_days("2024-04-10", "2024-04-30")),
            ("message",),
            window_dropped=True,
        ),
        "data not a list": Case(
            ev,
            last,
            _set_body(data={"time": "2024-04-10", "count": 1}),
            event_keys(*event_days("2024-04-10", "2024-04-30")),
            ("data",),
            window_dropped=True,
        ),
        "canvas data not an object": Case(
            cv,
            window3,
            _set_body(data=[{"time": "2024-01-29"}]),
            canvas_keys(CANVAS, after_w3, clean_keys),
            ("data",),
            window_dropped=True,
        ),
    }


def _run_case(sb, config: dict, case: Case, ctx: Ctx):
    def mutate(path: str, params: dict, body: dict) -> dict | None:
        if path == case.path and case.target(params, ctx):
            case.mutate(body, ctx)
            return body
        return None

    with Proxy(sb.url, mutate=mutate) as proxy:
        run = run_tap({**config, "api_url": proxy.url}, streams=STREAMS)
        mutated = [entry for entry in proxy.log if entry.mutated]
    return case, run, mutated


@pytest.fixture(scope="module")
def world():
    """The sandbox, a clean run, and every case's run (three at a time)."""
    with sandbox(now=NOW) as sb:
        config = tap_config(sb.url, sb.api_key, NOW, START, app_ids=APPS, max_workers=2)
        catalog_for(config, STREAMS)
        clean = run_tap(config, streams=STREAMS)
        assert clean.returncode == 0, clean.stderr[-3000:]
        clean_keyed = {s: keyed(clean.records[s], keys_of(s)) for s in STREAMS}
        ctx = Ctx(sb.workspace)
        with ThreadPoolExecutor(max_workers=3) as pool:
            jobs = {
                name: pool.submit(_run_case, sb, config, case, ctx)
                for name, case in cases(clean_keyed).items()
            }
            runs = {name: job.result() for name, job in jobs.items()}
        yield sb, config, clean, clean_keyed, ctx, runs


def run_case(world, name: str):
    return world[5][name]


ALL = list(cases({s: {} for s in STREAMS}))
LOGGED = [name for name, case in cases({s: {} for s in STREAMS}).items() if case.logged is not None]


@pytest.mark.parametrize("name", ALL)
def test_contradiction_neither_crashes_nor_loses_other_records(world, name):
    _, _, _, clean_keyed, ctx, _ = world
    case, run, mutated = run_case(world, name)
    assert len(mutated) == case.asks, f"{len(mutated)} responses rewritten, not {case.asks}"
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    affected = case.affected(ctx)
    added = case.added(ctx)
    for stream in STREAMS:
        got = keyed(run.records[stream], keys_of(stream))
        for key, record in clean_keyed[stream].items():
            if (stream, key) in affected:
                continue
            assert got.get(key) == record, (stream, key, got.get(key), record)
        unexpected = [k for k in got if k not in clean_keyed[stream] and (stream, k) not in added]
        assert not unexpected, (stream, unexpected[:5])
        for key in got:
            if (stream, key) in added:
                row = got[key]
                for metric, value in added[(stream, key)].items():
                    assert row.get(metric, (row.get("extra_metrics") or {}).get(metric)) == value
    for stream, key in added:
        assert key in keyed(run.records[stream], keys_of(stream)), ("not kept", stream, key)


@pytest.mark.parametrize("name", LOGGED)
def test_what_was_skipped_is_logged(world, name):
    case, run, _ = run_case(world, name)
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and case.path in line]
    assert warnings, run.stderr[-3000:]
    for word in case.logged or ():
        assert any(word in line for line in warnings), (word, warnings)


@pytest.mark.parametrize("name", ALL)
def test_state_never_claims_a_bucket_the_run_did_not_emit(world, name):
    _, _, clean, clean_keyed, ctx, _ = world
    case, run, _ = run_case(world, name)
    emitted: dict[tuple[str, tuple], list] = {}
    for stream in STREAMS:
        for record in run.records[stream]:
            emitted.setdefault((stream, context_key(stream, record)), []).append(
                bucket_order(record["time"])
            )
    marks = bookmarks(run.state)
    for stream in STREAMS:
        for partition, value in marks.get(stream, {}).items():
            times = emitted.get((stream, partition))
            assert times, (stream, partition, "bookmarked but nothing emitted")
            assert bucket_order(value) <= max(times), (stream, partition, value)
    if case.window_dropped:
        # Nothing skipped lies at or before its partition's bookmark.
        for stream, key in case.affected(ctx):
            record = clean_keyed[stream][key]
            value = marks.get(stream, {}).get(context_key(stream, record))
            if value is not None:
                assert bucket_order(record["time"]) > bucket_order(value), (
                    stream,
                    key,
                    "skipped but covered by bookmark",
                    value,
                )
    # Partitions untouched by the case end where the clean run ends.
    clean_marks = bookmarks(clean.state)
    touched = {(s, context_key(s, clean_keyed[s][k])) for s, k in case.affected(ctx)}
    for stream, partitions in clean_marks.items():
        for partition, value in partitions.items():
            if (stream, partition) not in touched:
                assert marks[stream][partition] == value, (stream, partition)
