"""Rate limits, fault injection, latency and concurrency."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
import requests

from tap_braze_series.sandbox.faults import FaultInjector
from tap_braze_series.sandbox.rate_limits import RateLimiter

# ------------------------------------------------------------------- rate limits


def test_rate_limiter_unit():
    rl = RateLimiter({"default": (3, 2.0), "lists_1000": (1, 1.5)})
    t = 1_000_000.25  # window [1_000_000, 1_000_002)
    results = [rl.hit("default", now=t + 0.1 * i) for i in range(4)]
    assert [ok for ok, _ in results] == [True, True, True, False]
    assert [h["X-RateLimit-Remaining"] for _, h in results] == ["2", "1", "0", "0"]
    assert {h["X-RateLimit-Reset"] for _, h in results} == {"1000002"}
    assert all(h["X-RateLimit-Limit"] == "3" for _, h in results)
    ok, h = rl.hit("default", now=1_000_002.0)  # new window
    assert ok
    assert h["X-RateLimit-Remaining"] == "2"
    assert h["X-RateLimit-Reset"] == "1000004"
    # fractional windows are rounded up to whole seconds and aligned: Reset is exact
    ok, h = rl.hit("lists_1000", now=1_000_001.5)
    assert ok
    assert h["X-RateLimit-Reset"] == "1000002"
    assert rl.peek("lists_1000", now=1_000_001.9)["X-RateLimit-Remaining"] == "0"


def test_default_headers_and_pools(client):
    resp = client.get("/kpi/dau/data_series", length=1)
    assert resp.headers["X-RateLimit-Limit"] == "250000"
    reset = int(resp.headers["X-RateLimit-Reset"])
    assert reset % 3600 == 0
    assert 0 < reset - time.time() <= 3600 + 1
    resp = client.get("/events/list")
    assert resp.headers["X-RateLimit-Limit"] == "1000"
    resp = client.get("/purchases/revenue_series", length=1)
    assert resp.headers["X-RateLimit-Limit"] == "1000"
    camp = client.sandbox.workspace.campaigns[0].id
    resp = client.get("/campaigns/data_series", campaign_id=camp, length=1)
    assert resp.headers["X-RateLimit-Limit"] == "50000"
    assert int(resp.headers["X-RateLimit-Reset"]) % 60 == 0
    for r in (client.get("/nope"), client.get("/kpi/dau/data_series")):
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(r.headers)


def test_rate_limit_429_and_honest_reset(fresh):
    sb, client = fresh(rate_limits={"default": (5, 2.0)})
    by_window: dict[str, list[requests.Response]] = defaultdict(list)
    saw_429 = None
    for _ in range(20):
        resp = client.get("/kpi/dau/data_series", length=1)
        by_window[resp.headers["X-RateLimit-Reset"]].append(resp)
        if resp.status_code == 429:
            saw_429 = resp
            break
    assert saw_429 is not None
    assert saw_429.json() == {"message": "rate limit exceeded"}
    assert saw_429.headers["X-RateLimit-Remaining"] == "0"
    assert saw_429.headers["X-RateLimit-Limit"] == "5"
    for responses in by_window.values():
        statuses = [r.status_code for r in responses]
        assert statuses[:5] == [200] * min(5, len(statuses))
        assert all(s == 429 for s in statuses[5:])
        assert [int(r.headers["X-RateLimit-Remaining"]) for r in responses[:5]] == list(
            range(4, 4 - min(5, len(responses)), -1)
        )
    # other pools are unaffected
    assert client.get("/events/list").status_code == 200
    # honest reset: once the announced epoch second has passed, the budget is back
    reset = int(saw_429.headers["X-RateLimit-Reset"])
    assert 0 < reset - time.time() <= 2.0 + 0.5
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    resp = client.get("/kpi/dau/data_series", length=1)
    assert resp.status_code == 200
    assert resp.headers["X-RateLimit-Remaining"] == "4"
    assert int(resp.headers["X-RateLimit-Reset"]) > reset - 0.001
    # 429s are logged
    assert any(r.status == 429 for r in sb.request_log)


def test_set_rate_limits(fresh):
    sb, client = fresh()
    sb.set_rate_limits({"lists_1000": (1, 3600)})
    assert client.get("/events/list").status_code == 200
    assert client.get("/purchases/product_list").status_code == 429
    assert client.get("/canvas/list").status_code == 200
    sb.set_rate_limits(None)
    assert client.get("/events/list").headers["X-RateLimit-Limit"] == "1000"


# ------------------------------------------------------------------- faults


def test_fault_injector_is_deterministic_and_bounded():
    def run(seed: int) -> list:
        fi = FaultInjector(seed, 0.5, ("500", "drop", "slow"), 2)
        out = []
        for i in range(50):
            ident = FaultInjector.identity("/x", {"i": str(i % 10)})
            out.append(fi.decide(ident))
        return out

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c
    assert any(a)
    assert not all(a)
    fi = FaultInjector(3, 1.0, ("503",), 2)
    ident = FaultInjector.identity("/y", {"b": "2", "a": "1"})
    assert ident == FaultInjector.identity("/y", {"a": "1", "b": "2"})
    assert [fi.decide(ident) for _ in range(5)] == ["503", "503", None, None, None]


KINDS = ["500", "502", "503", "504", "drop", "slow", "truncated"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_kind_then_recovery(fresh, kind):
    sb, client = fresh(fault_rate=1.0, fault_kinds=(kind,), fault_max_repeats=2, slow_seconds=1.0)
    params = {"length": 2, "ending_at": "2024-03-05"}

    def observe() -> str:
        t0 = time.monotonic()
        try:
            resp = client.get(
                "/sessions/data_series", timeout=0.25 if kind == "slow" else 10, **params
            )
        except requests.exceptions.ReadTimeout:
            return "timeout"
        except requests.exceptions.ConnectionError:
            return "connection-error"
        if resp.status_code != 200:
            ctype = resp.headers["Content-Type"]
            if resp.status_code in (502, 504):
                assert ctype.startswith("text/html")
                assert "Bad Gateway" in resp.text or "Gateway Time-out" in resp.text
            else:
                assert ctype.startswith("application/json")
                assert "message" in resp.json()
            assert "X-RateLimit-Remaining" in resp.headers
            return str(resp.status_code)
        assert int(resp.headers["Content-Length"]) == len(resp.content)
        try:
            body = resp.json()
        except requests.exceptions.JSONDecodeError:
            return "truncated"
        assert body["message"] == "success"
        assert len(body["data"]) == 2
        return "slow-ok" if time.monotonic() - t0 >= 1.0 else "ok"

    expected = {"drop": "connection-error", "slow": "timeout"}.get(kind, kind)
    assert [observe(), observe()] == [expected, expected]
    assert observe() == "ok"
    assert observe() == "ok"
    # a different request has its own budget
    params["length"] = 3
    assert observe() == expected
    # records are appended when a request finishes; stalled "slow" ones finish later
    deadline = time.monotonic() + 10
    while len([r for r in sb.request_log if r.fault]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    faults = [r for r in sb.request_log if r.fault]
    assert [r.fault for r in faults] == [kind] * 3
    if kind == "drop":
        assert all(r.status == 0 for r in faults)


def test_slow_fault_answers_after_the_stall(fresh):
    sb, client = fresh(fault_rate=1.0, fault_kinds=("slow",), fault_max_repeats=1, slow_seconds=0.3)
    t0 = time.monotonic()
    resp = client.get("/kpi/mau/data_series", length=1)
    assert resp.status_code == 200
    assert resp.json()["message"] == "success"
    assert time.monotonic() - t0 >= 0.3
    assert sb.request_log[-1].duration >= 0.3


def test_set_faults_and_mixed_faults_recover(fresh):
    sb, client = fresh()
    sb.set_faults(rate=0.6, kinds=("500", "503", "truncated"), max_repeats=2)
    events = sb.workspace.events[:10]
    for name in events:
        for _attempt in range(3):
            resp = client.get("/events/data_series", event=name, length=3)
            if resp.status_code == 200:
                try:
                    resp.json()
                    break
                except requests.exceptions.JSONDecodeError:
                    continue
        else:
            pytest.fail(f"{name!r} never succeeded within max_repeats + 1 attempts")
    assert any(r.fault for r in sb.request_log)
    sb.set_faults(rate=0.0)
    sb.clear_log()
    assert client.get("/canvas/list").status_code == 200
    assert [r.fault for r in sb.request_log] == [None]


# ------------------------------------------------------------------- latency, log


def test_latency_and_in_flight(fresh):
    sb, _client = fresh(latency=0.4)
    n = 4
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def worker(i: int) -> None:
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {sb.api_key}"
            barrier.wait()
            r = s.get(sb.url + "/kpi/new_users/data_series", params={"length": i + 1}, timeout=10)
            statuses.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * n
    log = sb.request_log.snapshot()
    assert len(log) == n
    assert all(r.duration >= 0.4 for r in log)
    assert max(r.in_flight for r in log) >= 2
    # intervals overlap: served in parallel, not one after another
    first_end = min(r.ended for r in log)
    assert sum(r.started < first_end for r in log) >= 2
    assert {r.path for r in log} == {"/kpi/new_users/data_series"}
    assert sorted(r.params["length"] for r in log) == ["1", "2", "3", "4"]
    sb.clear_log()
    assert len(sb.request_log) == 0


def test_keep_alive_reuses_connections(fresh):
    sb, client = fresh()
    for _ in range(5):
        assert client.get("/kpi/dau/data_series", length=1).status_code == 200
    log = sb.request_log.snapshot()
    assert len(log) == 5
    assert all(r.status == 200 and r.in_flight == 1 for r in log)
    assert len({r.client_port for r in log}) == 1  # one keep-alive connection


# ------------------------------------------------------------------- latency tail


def test_a_latency_tail_slows_the_same_requests_every_time_and_logs_their_latency(fresh):
    sb, client = fresh(latency=0.01, tail_rate=0.3, tail_latency=0.15)
    for _ in range(2):
        for length in range(1, 21):
            assert client.get("/kpi/dau/data_series", length=length).status_code == 200
    log = sb.request_log.snapshot()
    slow = [r.params["length"] for r in log if r.latency > 0.1]
    assert sorted({round(r.latency, 6) for r in log}) == [0.01, 0.16]
    assert all(r.duration >= r.latency for r in log)
    # The same requests are slow on each pass (a hash of the request, not a draw).
    assert slow[: len(slow) // 2] == slow[len(slow) // 2 :]
    assert 0 < len(slow) // 2 < 20
    sb.set_latency(tail_rate=0.0)
    sb.clear_log()
    client.get("/kpi/dau/data_series", length=1)
    assert [r.latency for r in sb.request_log] == [0.01]


def test_the_latency_tail_on_the_command_line():
    from tap_braze_series.sandbox.__main__ import build_parser, config_from_args

    args = build_parser().parse_args(["--tail-rate", "0.05", "--tail-latency", "2"])
    cfg = config_from_args(args)
    assert (cfg.tail_rate, cfg.tail_latency) == (0.05, 2.0)
    with pytest.raises(ValueError, match="tail_rate"):
        config_from_args(build_parser().parse_args(["--tail-rate", "1.5"]))


# ------------------------------------------------------------------- point faults


def _days(body):
    return [p["time"] for p in body["data"]]


def test_point_faults_reorder_duplicate_and_leave_out_points(fresh):
    sb, client = fresh()
    params = {"length": 30, "ending_at": "2024-03-10T23:59:59+00:00"}
    clean = client.ok("/kpi/dau/data_series", **params)
    sb.set_point_faults(point_order="desc")
    assert _days(client.ok("/kpi/dau/data_series", **params)) == _days(clean)[::-1]
    sb.set_point_faults(point_order="shuffled", duplicate_rate=0.3, duplicate_values="different")
    body = client.ok("/kpi/dau/data_series", **params)
    assert sorted(set(_days(body))) == _days(clean)
    assert len(body["data"]) > 30
    right = {p["time"]: p for p in clean["data"]}
    last: dict = {}
    for point in body["data"]:
        last[point["time"]] = point
    assert last == right  # the right value is the last one given for its bucket
    assert sb.request_log[-1].point_faults == ("duplicate", "reordered")
    # Points go missing in the zero-filled series only (a count series' missing bucket
    # is a 0): segment sizes here; a count series stays whole.
    segment = next(s.id for s in sb.workspace.segments if s.analytics_tracking_enabled)
    path, params = "/segments/data_series", {**params, "segment_id": segment}
    sb.set_point_faults(point_order="asc", duplicate_rate=0.0)
    clean = client.ok(path, **params)
    sb.set_point_faults(missing_rate=0.2, missing_repeats=1)
    assert client.ok("/kpi/dau/data_series", length=30, ending_at=params["ending_at"])["data"]
    holed = _days(client.ok(path, **params))
    assert holed[0] == _days(clean)[0]
    assert holed[-1] == _days(clean)[-1]
    assert 0 < 30 - len(holed) < 15
    # The same request asked again is whole; another window misses the same buckets.
    assert _days(client.ok(path, **params)) == _days(clean)
    other = _days(client.ok(path, length=29, ending_at=params["ending_at"], segment_id=segment))
    assert set(_days(clean)[1:]) - set(other) == set(_days(clean)) - set(holed)


def test_point_fault_settings_are_checked():
    from tap_braze_series.sandbox import SandboxConfig
    from tap_braze_series.sandbox.__main__ import build_parser, config_from_args

    for bad, words in (
        ({"point_order": "sideways"}, "point_order"),
        ({"duplicate_rate": 2}, "duplicate_rate"),
        ({"duplicate_copies": 0}, "duplicate_copies"),
        ({"missing_repeats": 0}, "missing_repeats"),
    ):
        with pytest.raises(ValueError, match=words):
            SandboxConfig(**bad)
    args = build_parser().parse_args(
        [
            "--point-order",
            "desc",
            "--duplicate-rate",
            "0.1",
            "--missing-rate",
            "0.05",
            "--missing-repeats",
            "2",
            "--duplicate-values",
            "different",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.point_order, cfg.duplicate_rate, cfg.missing_rate, cfg.missing_repeats) == (
        "desc",
        0.1,
        0.05,
        2,
    )
