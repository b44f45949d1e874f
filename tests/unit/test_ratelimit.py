"""The rate governor: our hourly budget, and Braze's announced pool limits."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable

import pytest

from tap_braze_series.ratelimit import RateGovernor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(budget: int, clock: FakeClock, window: float = 3600.0) -> RateGovernor:
    governor = RateGovernor(budget, window=window, clock=clock, wall_clock=clock)
    # Waiting advances the fake clock instead of sleeping.
    governor._cond = _AdvancingCondition(clock)
    return governor


class _AdvancingCondition:
    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._lock = threading.RLock()  # release() may run inside wait(), as a worker would
        self.waited: list[float] = []
        self.on_wait = None  # called once at the next wait, as another thread would act

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def wait(self, timeout: float) -> None:
        self.waited.append(timeout)
        self._clock.now += timeout
        if self.on_wait is not None:
            callback, self.on_wait = self.on_wait, None
            callback()

    def notify_all(self) -> None:
        pass


def test_budget_is_never_exceeded_in_any_rolling_window():
    clock = FakeClock()
    governor = make(10, clock, window=60.0)
    sent = []
    for _ in range(35):
        governor.acquire("default")
        sent.append(clock.now)
        governor.release("default", {}, 200)
        clock.now += 0.5
    for t in sent:
        assert sum(1 for s in sent if t - 60.0 < s <= t) <= 10
    # ... and it is used fully: the 31st request goes out once 3 windows have passed.
    assert sent[-1] - sent[0] < 3 * 60.0 + 10


def test_waits_for_the_reset_when_the_pool_is_exhausted():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release(
        "default",
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(clock.now) + 30),
        },
        200,
    )
    assert _waited(governor, clock, "default") >= 30  # waited until the reset
    governor.release("default", {}, 200)


def test_in_flight_requests_count_against_what_remains():
    clock = FakeClock()
    governor = make(1_000, clock)
    headers = {"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": str(int(clock.now) + 10)}
    governor.acquire("default")
    governor.release("default", headers, 200)
    governor.acquire("default")
    governor.acquire("default")  # 2 in flight now: nothing left
    assert _waited(governor, clock, "default") >= 10


def test_out_of_order_responses_keep_the_smallest_remaining():
    clock = FakeClock()
    governor = make(1_000, clock)
    reset = str(int(clock.now) + 10)
    for remaining in ("7", "3", "9"):
        governor.acquire("default")
        governor.release(
            "default", {"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}, 200
        )
    assert governor.pool_snapshot("default")[1] == 3


def test_a_429_holds_the_pool_until_its_reset():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("lists_1000")
    governor.release("lists_1000", {"X-RateLimit-Reset": str(int(clock.now) + 5)}, 429)
    assert governor.pool_snapshot("lists_1000")[1] == 0  # nothing remains until the reset
    assert _waited(governor, clock, "lists_1000") >= 5
    # Other pools are not held.
    assert _waited(governor, clock, "default") == 0


def test_lower_case_headers_of_http2_are_read():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release(
        "default", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 3)}, 200
    )
    assert _waited(governor, clock, "default") >= 3


def test_memory_is_bounded_whatever_the_budget():
    clock = FakeClock()
    governor = make(10_000_000, clock)
    for _ in range(50_000):
        governor.acquire("default")
        governor.release("default", None, 200)
        clock.now += 0.01
    assert len(governor._sent) <= 3601


def test_a_new_window_starts_with_the_known_limit_not_blind():
    clock = FakeClock()
    governor = make(1_000, clock)
    reset = int(clock.now) + 2
    headers = {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Reset": str(reset),
    }
    governor.acquire("campaigns_data_series")
    governor.release("campaigns_data_series", headers, 200)
    clock.now = reset + 1  # the window is over
    governor.acquire("campaigns_data_series")
    governor.acquire("campaigns_data_series")  # the limit (2) is now in flight
    new_window = {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Reset": str(int(clock.now) + 2),
    }
    # A third waits for a response (here: one arrives while it waits), it is not sent blind.
    governor._cond.on_wait = lambda: governor.release("campaigns_data_series", new_window, 200)
    waits_before = len(governor._cond.waited)
    governor.acquire("campaigns_data_series")
    assert len(governor._cond.waited) > waits_before


def test_a_pool_not_yet_heard_from_gets_one_request_at_a_time():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("lists_1000")  # the probe
    nearly_empty = {
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Reset": str(int(clock.now) + 60),
    }
    # A second request waits for the probe's answer instead of going out blind ...
    governor._cond.on_wait = lambda: governor.release("lists_1000", nearly_empty, 200)
    start = clock.now
    governor.acquire("lists_1000")
    assert governor._cond.waited, "the second request went out before the pool answered"
    # ... and, that answer having left one request of a pool others use (999 of its
    # 1000 went to them), it leaves that one to them and waits for the reset.
    assert clock.now >= start + 59
    # Other pools are not held by this one.
    assert _waited(governor, clock, "default") == 0


def test_a_pool_that_answers_without_headers_is_not_held():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release("default", {"Content-Type": "text/html"}, 502)
    start = clock.now
    for _ in range(8):
        governor.acquire("default")  # all at once: nothing announced, nothing to wait for
    assert clock.now == start


def _waited(governor: RateGovernor, clock: FakeClock, pool: str) -> float:
    """How long (fake) time one acquire of `pool` waited."""
    start = clock.now
    governor.acquire(pool)
    return clock.now - start


def _sends_announcing(
    governor: RateGovernor, clock: FakeClock, remainings: Iterable[int], reset: float
) -> list[float]:
    """When each request went out, each answered announcing the next of `remainings`."""
    sent = []
    for remaining in remainings:
        governor.acquire("default")
        sent.append(clock.now)
        _announce(governor, clock, remaining, reset)
    return sent


def _announce(governor: RateGovernor, clock: FakeClock, remaining: int, reset: float) -> None:
    governor.release(
        "default",
        {
            "X-RateLimit-Limit": "30",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        },
        200,
    )


def test_a_pool_only_we_use_is_not_paced():
    clock = FakeClock()
    governor = make(1_000, clock)
    reset = int(clock.now) + 20
    for remaining in range(29, 9, -1):  # each of our requests takes one: nobody else
        governor.acquire("default")
        _announce(governor, clock, remaining, reset)
    assert not governor._cond.waited


def test_a_pool_others_use_is_paced_to_last_until_its_reset():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.plan("default", 100)  # more than the pool holds until its reset
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 19, reset)  # 11 counted, 1 of them ours: others are here
    # The others keep taking one for each of ours.
    sent = _sends_announcing(governor, clock, (17, 15, 13, 11), reset)
    # What is left is spread over the time to the reset, not sent at once.
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap > 0.5 for gap in gaps), gaps
    assert sent[-1] < reset


def test_a_shared_pool_leaves_its_last_requests_to_the_others():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.plan("default", 100)
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 10, reset)  # 20 counted, 1 ours
    governor.acquire("default")
    _announce(governor, clock, 1, reset)  # one left: more clients than that pace on it
    before = clock.now
    governor.acquire("default")
    assert clock.now >= reset  # waited for the new window instead of racing for the last one
    assert clock.now > before


def test_a_shared_pool_with_room_for_the_whole_plan_is_not_paced():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.plan("default", 5)
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 19, reset)  # others took 10: the pool is shared
    start = clock.now
    # 4 planned requests left, 18 remain: room for all, and for as many again from the
    # others as they sent so far.
    for remaining in (18, 17, 16, 15):
        governor.acquire("default")
        _announce(governor, clock, remaining, reset)
    assert clock.now == start, "a pool with room for all the run plans was paced"
    assert governor.planned("default") == 0


def test_pacing_starts_once_the_plan_outgrows_what_remains():
    clock = FakeClock()
    governor = make(1_000, clock)
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 19, reset)  # shared
    governor.acquire("default")
    _announce(governor, clock, 17, reset)
    assert not governor._cond.waited  # nothing planned: nothing to pace for
    governor.plan("default", 40)  # a family starts with more than the 17 left
    sent = _sends_announcing(governor, clock, (15, 13, 11), reset)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap > 0.5 for gap in gaps), gaps


def _waiting_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]


def test_waiting_lines_name_the_pool_at_most_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger="tap-braze-series.ratelimit")
    clock = FakeClock()
    governor = make(1_000, clock)
    for _ in range(30):  # a pool that is empty for 5 s at every answer, for 150 s
        governor.acquire("lists_1000")
        governor.release(
            "lists_1000",
            {
                "X-RateLimit-Limit": "10",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(clock.now) + 5),
            },
            200,
        )
    lines = _waiting_lines(caplog)
    assert 2 <= len(lines) <= 3, lines  # 29 waits over ~150 s
    assert all("pool 'lists_1000'" in line for line in lines), lines
    assert "more waits since its last such line" in lines[-1]


def test_the_hourly_budget_line_names_the_pool(caplog):
    caplog.set_level(logging.INFO, logger="tap-braze-series.ratelimit")
    clock = FakeClock()
    governor = make(2, clock, window=60.0)
    for _ in range(3):
        governor.acquire("default")
        governor.release("default", None, 200)
    [line] = _waiting_lines(caplog)
    assert "pool 'default'" in line
    assert "max_requests_per_hour (2)" in line


ODD_HEADERS = {
    "nan reset": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "5",
        "X-RateLimit-Reset": "nan",
    },
    "inf reset": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "inf",
    },
    "reset in ms": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(FakeClock().now + 30) * 1000),
    },
    "reset days away": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(FakeClock().now) + 3 * 86400),
    },
    "reset long past": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "3600",
    },
    "nan remaining, inf limit": {
        "X-RateLimit-Limit": "inf",
        "X-RateLimit-Remaining": "nan",
        "X-RateLimit-Reset": str(int(FakeClock().now) + 30),
    },
    "negative remaining": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "-4",
        "X-RateLimit-Reset": str(int(FakeClock().now) + 30),
    },
    "remaining above limit": {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "31",
        "X-RateLimit-Reset": str(int(FakeClock().now) + 30),
    },
    "empty": {"X-RateLimit-Limit": "", "X-RateLimit-Remaining": "", "X-RateLimit-Reset": ""},
    "missing": {"Content-Type": "application/json"},
    "not numbers": {
        "X-RateLimit-Limit": "lots",
        "X-RateLimit-Remaining": "0x10",
        "X-RateLimit-Reset": "soon",
    },
}


@pytest.mark.parametrize("case", sorted(ODD_HEADERS))
def test_odd_headers_are_unknown_with_one_warning(case, caplog):
    caplog.set_level(logging.INFO, logger="tap-braze-series.ratelimit")
    clock = FakeClock()
    governor = make(1_000, clock)
    start = clock.now
    for _ in range(20):
        governor.acquire("default")
        governor.release("default", ODD_HEADERS[case], 200)
    # Unknown: nothing announced to wait for, and nothing remembered of the pool.
    assert clock.now == start, governor._cond.waited
    _limit, remaining, reset = governor.pool_snapshot("default")
    assert remaining is None
    assert reset is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "pool 'default'" in warnings[0].getMessage()


def test_odd_headers_on_a_429_hold_the_pool_briefly_not_forever():
    clock = FakeClock()
    governor = make(1_000, clock)
    for _ in range(5):
        governor.acquire("default")
        governor.release("default", ODD_HEADERS["reset in ms"], 429)
    # Each 429 without a usable reset holds the pool about a second: no busy loop, no
    # wait of years either.
    assert 4 <= clock.now - 1_000_000.0 <= 10
    assert all(0 < wait <= 2 for wait in governor._cond.waited), governor._cond.waited


def test_empty_headers_of_a_401_warn_of_nothing(caplog):
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release("default", ODD_HEADERS["empty"], 401)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_usable_answer_after_odd_ones_is_used():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release("default", ODD_HEADERS["nan reset"], 200)
    governor.acquire("default")
    governor.release(
        "default",
        {
            "X-RateLimit-Limit": "30",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(clock.now) + 7),
        },
        200,
    )
    assert _waited(governor, clock, "default") >= 7


def test_others_still_sending_count_against_what_remains():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.plan("default", 8)
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 29, reset)
    governor.acquire("default")
    _announce(governor, clock, 16, reset)  # others took 12 since: they may take as many again
    sent = _sends_announcing(governor, clock, (14, 12, 10), reset)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap > 0.5 for gap in gaps), gaps
