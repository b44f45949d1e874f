"""The rate governor: our hourly budget, and Braze's announced pool limits."""

from __future__ import annotations

import itertools
import threading

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
    before = clock.now
    governor.acquire("default")
    assert clock.now >= before + 30  # waited until the reset
    governor.release("default", {}, 200)


def test_in_flight_requests_count_against_what_remains():
    clock = FakeClock()
    governor = make(1_000, clock)
    headers = {"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": str(int(clock.now) + 10)}
    governor.acquire("default")
    governor.release("default", headers, 200)
    governor.acquire("default")
    governor.acquire("default")  # 2 in flight now: nothing left
    start = clock.now
    governor.acquire("default")
    assert clock.now >= start + 10


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


def test_a_429_holds_the_pool_until_its_reset_and_is_counted():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("lists_1000")
    governor.release("lists_1000", {"X-RateLimit-Reset": str(int(clock.now) + 5)}, 429)
    assert governor.stats.rate_limited == 1
    start = clock.now
    governor.acquire("lists_1000")
    assert clock.now >= start + 5
    # Other pools are not held.
    start = clock.now
    governor.acquire("default")
    assert clock.now == start


def test_lower_case_headers_of_http2_are_read():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release(
        "default", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 3)}, 200
    )
    start = clock.now
    governor.acquire("default")
    assert clock.now >= start + 3


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
    start = clock.now
    governor.acquire("default")
    assert clock.now == start


def test_a_pool_that_answers_without_headers_is_not_held():
    clock = FakeClock()
    governor = make(1_000, clock)
    governor.acquire("default")
    governor.release("default", {"Content-Type": "text/html"}, 502)
    start = clock.now
    for _ in range(8):
        governor.acquire("default")  # all at once: nothing announced, nothing to wait for
    assert clock.now == start


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
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 19, reset)  # 11 counted, 1 of them ours: others are here
    sent = []
    for remaining in (17, 15, 13, 11):  # the others keep taking one for each of ours
        governor.acquire("default")
        sent.append(clock.now)
        _announce(governor, clock, remaining, reset)
    # What is left is spread over the time to the reset, not sent at once.
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap > 0.5 for gap in gaps), gaps
    assert sent[-1] < reset


def test_a_shared_pool_leaves_its_last_requests_to_the_others():
    clock = FakeClock()
    governor = make(1_000, clock)
    reset = int(clock.now) + 20
    governor.acquire("default")
    _announce(governor, clock, 10, reset)  # 20 counted, 1 ours
    governor.acquire("default")
    _announce(governor, clock, 1, reset)  # one left: more clients than that pace on it
    before = clock.now
    governor.acquire("default")
    assert clock.now >= reset  # waited for the new window instead of racing for the last one
    assert clock.now > before
