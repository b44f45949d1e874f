"""Client-side rate governor: stay inside our share of Braze's budget, never over it.

Two limits apply to every request:

- our own budget, `max_requests_per_hour`, over any rolling hour and across all
  endpoints (the workspace's budget is shared with the customer's other
  integrations, so the tap takes only its configured share);
- what Braze announces per pool in `X-RateLimit-Remaining` / `-Reset`: when a
  pool has nothing left for the requests we already have in flight, workers
  wait until the announced reset instead of collecting 429s. Until a pool has
  answered once, one request goes alone: what remains of a pool that the
  customer's other integrations share is unknown until Braze says it.

Once a pool's counts show requests that are not ours (another tap, another
integration of the workspace), requests to it are paced: what remains is spread
over the time left until the reset, one request every (time left) / (remaining)
seconds. Clients that all burst at the start of a window empty it together and
then collect 429s for what they had in flight; clients that pace see the pool
shrink and slow down together. A pool only we use is not paced: bursting costs
nothing there.

Thread-safe; workers call `acquire(pool)` before a request and `release(...)`
after it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tap_braze_series.stopping import Stop

ROLLING_WINDOW = 3600.0
# Braze's Reset is a whole epoch second; a short margin avoids arriving a hair early.
RESET_MARGIN = 0.25
# How long to wait for in-flight responses when a pool's new window is already full.
IN_FLIGHT_WAIT = 0.05
# At most this many requests of a shared pool's window are left to the other clients.
MAX_RESERVE = 4

logger = logging.getLogger("tap-braze-series.ratelimit")


@dataclass
class _PoolState:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # wall-clock epoch seconds
    in_flight: int = 0
    answered: bool = False  # a request to it has ended (answered or not)
    ours: int = 0  # our requests Braze counted in the current window
    shared: bool = False  # Braze's counts showed requests that were not ours
    others: int = 0  # requests not ours Braze counted in the current window (at least)
    next_at: float = 0.0  # clock time before which a paced request waits


@dataclass
class GovernorStats:
    """Counters the benchmarks and the end-of-run summary read."""

    requests: int = 0
    rate_limited: int = 0  # 429 responses seen
    waits: int = 0
    waited_seconds: float = 0.0
    by_pool: dict[str, int] = field(default_factory=dict)


class RateGovernor:
    """Budget and pool gate shared by all worker threads."""

    def __init__(
        self,
        max_requests_per_hour: int,
        *,
        window: float = ROLLING_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        stop: Stop | None = None,
    ) -> None:
        self._stop = stop or Stop()
        self._stop.on_stop(self._wake)
        self._budget = max_requests_per_hour
        self._window = window
        self._clock = clock
        self._wall = wall_clock
        self._cond = threading.Condition()
        # Requests sent in the rolling window, counted per whole second so that
        # memory stays bounded (at most `window` entries) whatever the budget.
        self._sent: collections.deque[list[float]] = collections.deque()
        self._sent_total = 0
        self._pools: dict[str, _PoolState] = {}
        self.stats = GovernorStats()

    def acquire(self, pool: str) -> None:
        """Block until a request to `pool` fits both limits, then count it.

        Raises RunStopped, at once, when the run is stopped (before or while waiting).
        """
        with self._cond:
            while True:
                self._stop.check()
                delay, reason = self._delay(pool)
                if delay <= 0:
                    break
                if delay >= 1.0:
                    logger.info("Rate governor: %s; waiting %.1f s.", reason, delay)
                self.stats.waits += 1
                started = self._clock()
                self._cond.wait(timeout=delay)
                self.stats.waited_seconds += self._clock() - started
            now = self._clock()
            second = float(int(now))
            if self._sent and self._sent[-1][0] == second:
                self._sent[-1][1] += 1
            else:
                self._sent.append([second, 1])
            self._sent_total += 1
            state = self._pools.setdefault(pool, _PoolState())
            state.next_at = now + self._pace(state)
            state.in_flight += 1
            self.stats.requests += 1
            self.stats.by_pool[pool] = self.stats.by_pool.get(pool, 0) + 1

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def release(self, pool: str, headers: Mapping[str, str] | None, status: int | None) -> None:
        """Record a finished request and what Braze said about the pool."""
        with self._cond:
            state = self._pools.setdefault(pool, _PoolState())
            state.in_flight = max(state.in_flight - 1, 0)
            if status == 429:
                self.stats.rate_limited += 1
            # A request that got no answer at all (the server hangs or drops it) says
            # nothing about the pool either; holding the others back behind it would
            # make a stalled server take max_workers times longer to give up on.
            state.answered = True
            if headers is not None:
                self._observe(pool, state, headers, status)
            self._cond.notify_all()

    def _observe(
        self, pool: str, state: _PoolState, headers: Mapping[str, str], status: int | None
    ) -> None:
        limit = _int_header(headers, "X-RateLimit-Limit")
        remaining = _int_header(headers, "X-RateLimit-Remaining")
        reset = _float_header(headers, "X-RateLimit-Reset")
        if status == 429:
            remaining = 0
            if reset is None:
                # No reset announced: hold the pool briefly rather than hammer it.
                reset = self._wall() + 1.0
        if reset is None or remaining is None:
            return
        if limit is not None:
            state.limit = limit
        counted = status != 429  # a refused request is not counted against the pool
        if state.reset_at is None or reset > state.reset_at + 0.5:
            # A new window: its count replaces the old one.
            state.reset_at = reset
            state.remaining = remaining
            state.ours = int(counted)
            state.others = 0
        elif abs(reset - state.reset_at) <= 0.5:
            # Responses of one window arrive out of order: the smallest count is the newest.
            state.remaining = (
                remaining if state.remaining is None else min(state.remaining, remaining)
            )
            state.ours += counted
        else:
            return  # a late answer from a window already over
        if counted and state.limit is not None:
            # What Braze counted, less ours: those answered, and at most those in flight.
            others = state.limit - remaining - state.ours - state.in_flight
            state.others = max(state.others, others)
            if others > 0 and not state.shared:
                state.shared = True
                logger.info(
                    "Rate governor: others use Braze pool '%s' too (%d of its %d requests this "
                    "window); pacing requests to it until each reset.",
                    pool,
                    others,
                    state.limit,
                )

    def _delay(self, pool: str) -> tuple[float, str]:
        now = self._clock()
        horizon = now - self._window
        while self._sent and self._sent[0][0] + 1.0 <= horizon:
            self._sent_total -= int(self._sent.popleft()[1])
        if self._sent_total >= self._budget and self._sent:
            delay = self._sent[0][0] + 1.0 - horizon
            return delay, f"max_requests_per_hour ({self._budget}) reached"
        state = self._pools.get(pool)
        if state is None:
            return 0.0, ""
        if not state.answered and state.in_flight > 0:
            # The first request of a pool tells what remains of it; sending the
            # others blind could overrun a pool that other integrations emptied.
            return IN_FLIGHT_WAIT, f"waiting for Braze to announce pool '{pool}'s limit"
        if state.remaining is None:
            return 0.0, ""
        if state.reset_at is not None and self._wall() >= state.reset_at:
            # The announced window is over: a new one starts with the pool's full limit,
            # and the next response tells its reset.
            state.reset_at = None
            state.remaining = state.limit
            if state.remaining is None:
                return 0.0, ""
        if state.remaining - state.in_flight - self._reserve(state) > 0:
            wait = state.next_at - now if state.shared else 0.0
            return wait, "pacing a shared pool"
        if state.reset_at is None:
            if state.in_flight == 0:
                return 0.0, ""  # nothing in flight will tell us more: ask
            # A new window whose limit our in-flight requests already fill: their
            # responses announce what remains.
            return IN_FLIGHT_WAIT, f"Braze pool '{pool}' is full with requests in flight"
        delay = state.reset_at - self._wall() + RESET_MARGIN
        return delay, f"Braze pool '{pool}' has no requests left until its reset"

    def sent_in_window(self) -> int:
        """Requests sent in the current rolling window (progress lines' ETA)."""
        with self._cond:
            horizon = self._clock() - self._window
            return sum(int(count) for second, count in self._sent if second + 1.0 > horizon)

    def _pace(self, state: _PoolState) -> float:
        """Seconds until the next request to a shared pool: its remainder spread to the reset."""
        if not state.shared or state.reset_at is None or state.remaining is None:
            return 0.0
        left = state.reset_at + RESET_MARGIN - self._wall()
        available = state.remaining - state.in_flight - self._reserve(state)
        if left <= 0 or available <= 0:
            return 0.0  # the window is over, or _delay holds the pool until it is
        return left / available

    @staticmethod
    def _reserve(state: _PoolState) -> int:
        """Requests of a shared pool left to the others.

        What we last heard of the pool is a request or so old for each other client
        pacing on it: about as many clients as the others' share of the pool to
        ours. Leaving them that many avoids several clients taking the last request.
        """
        if not state.shared:
            return 0
        return min(max(1, round(state.others / max(state.ours, 1))), MAX_RESERVE)

    def pool_snapshot(self, pool: str) -> tuple[int | None, int | None, float | None]:
        """(limit, remaining, reset) last announced for a pool, for logs and tests."""
        with self._cond:
            state = self._pools.get(pool, _PoolState())
            return state.limit, state.remaining, state.reset_at


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = _float_header(headers, name)
    return None if value is None else int(value)


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        raw = headers.get(name.lower())
    if raw is None:
        return None
    try:
        return float(str(raw).strip())
    except ValueError:
        return None
