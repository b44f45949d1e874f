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
integration of the workspace), requests to it are paced, but only while what
the run still plans for the pool (`plan()`: each family's windows, each details
read) could not be served by what Braze says remains before the reset, less the
share left to the others: then what remains is spread over the time left until
the reset, one request every (time left) / (remaining) seconds. Clients that
all burst at the start of a window empty it together and then collect 429s for
what they had in flight; clients that pace see the pool shrink and slow down
together. A pool only we use, or one with room for all the run still plans, is
not paced: bursting costs nothing there (and in a real workspace the
customer's own integrations always use the pool).

Rate-limit headers that cannot be right (missing on an answer, empty as on a
401, not a finite number, negative, a limit below one, a remainder above the
limit, a reset more than a day away such as one in epoch milliseconds) are
taken as unknown, with one warning per run.

Thread-safe; workers call `acquire(pool)` before a request and `release(...)`
after it.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tap_braze_series.progress import plural
from tap_braze_series.stopping import Stop

ROLLING_WINDOW = 3600.0
# Braze's Reset is a whole epoch second; a short margin avoids arriving a hair early.
RESET_MARGIN = 0.25
# How long to wait for in-flight responses when a pool's new window is already full.
IN_FLIGHT_WAIT = 0.05
# At most this many requests of a shared pool's window are left to the other clients.
MAX_RESERVE = 4
# Braze's windows are an hour at most: a reset further than this from the clock is not
# one (epoch milliseconds, a count of seconds, garbage), and neither is a limit above
# MAX_LIMIT requests per window.
MAX_RESET_DISTANCE = 86_400.0
MAX_LIMIT = 1_000_000_000
# A pool's waiting and pacing lines come at most once per this many seconds.
LOG_EVERY = 60.0
HEADER_NAMES = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

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
    others_before: int = 0  # ... in the window before it: what they may use again
    next_at: float = 0.0  # clock time before which a paced request waits
    planned: int = 0  # requests the run still plans for it (see RateGovernor.plan)
    pacing: bool = False  # whether requests to it are paced now
    logged_at: float | None = None  # clock time of its last waiting line
    quiet_waits: int = 0  # waits since then that wrote no line


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
        self._warned_headers = False

    def plan(self, pool: str, requests: int) -> None:
        """The run will send `requests` more requests to `pool` (each request sent counts down).

        What the run still plans decides whether a pool others use must be paced.
        """
        if requests <= 0:
            return
        with self._cond:
            self._pools.setdefault(pool, _PoolState()).planned += requests

    def planned(self, pool: str) -> int:
        """Requests the run still plans for `pool`."""
        with self._cond:
            state = self._pools.get(pool)
            return state.planned if state is not None else 0

    def acquire(self, pool: str) -> None:
        """Block until a request to `pool` fits both limits, then count it.

        Raises RunStopped, at once, when the run is stopped (before or while waiting).
        """
        with self._cond:
            while True:
                self._stop.check()
                delay, reason = self._delay(pool)
                if not delay > 0:
                    break
                # Every input is checked (see _announced): this only bounds a wait.
                delay = min(delay, MAX_RESET_DISTANCE)
                if delay >= 1.0:
                    self._log_wait(pool, reason, delay)
                self._cond.wait(timeout=delay)
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
            state.planned = max(state.planned - 1, 0)

    def _log_wait(self, pool: str, reason: str, delay: float) -> None:
        """A waiting line naming the pool, at most one per pool per LOG_EVERY seconds."""
        state = self._pools.setdefault(pool, _PoolState())
        now = self._clock()
        if state.logged_at is not None and now - state.logged_at < LOG_EVERY:
            state.quiet_waits += 1
            return
        more = (
            f" ({plural(state.quiet_waits, 'more wait', 'more waits')} since its last such line)"
            if state.quiet_waits
            else ""
        )
        logger.info("Rate governor: pool '%s': %s; waiting %.1f s%s.", pool, reason, delay, more)
        state.logged_at = now
        state.quiet_waits = 0

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def release(self, pool: str, headers: Mapping[str, str] | None, status: int | None) -> None:
        """Record a finished request and what Braze said about the pool."""
        with self._cond:
            state = self._pools.setdefault(pool, _PoolState())
            state.in_flight = max(state.in_flight - 1, 0)
            # A request that got no answer at all (the server hangs or drops it) says
            # nothing about the pool either; holding the others back behind it would
            # make a stalled server take max_workers times longer to give up on.
            state.answered = True
            if headers is not None:
                self._observe(pool, state, headers, status)
            if status == 429:
                reset = state.reset_at
                wait = max(reset - self._wall(), 0.0) + RESET_MARGIN if reset else 1.0
                self._log_wait(pool, "Braze answered 429 (rate limited)", wait)
            self._cond.notify_all()

    def _observe(
        self, pool: str, state: _PoolState, headers: Mapping[str, str], status: int | None
    ) -> None:
        limit, remaining, reset = self._announced(pool, headers, status)
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
            state.others_before = state.others
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
                    "window); pacing requests to it whenever this run plans more than remains "
                    "before its reset.",
                    pool,
                    others,
                    state.limit,
                )

    def _announced(
        self, pool: str, headers: Mapping[str, str], status: int | None
    ) -> tuple[int | None, int | None, float | None]:
        """(limit, remaining, reset) as announced, each None where it cannot be right."""
        values: dict[str, float | None] = {}
        odd: list[str] = []
        for name in HEADER_NAMES:
            raw = headers.get(name)
            if raw is None:
                raw = headers.get(name.lower())
            value, problem = _header_value(raw)
            if problem is None and value is not None:
                problem = self._implausible(name, value)
            if problem is not None:
                odd.append(f"{name} {problem}")
                value = None
            values[name] = value
        limit, remaining, reset = (values[name] for name in HEADER_NAMES)
        if limit is not None and remaining is not None and remaining > limit:
            odd.append(f"X-RateLimit-Remaining {remaining:g} is above X-RateLimit-Limit {limit:g}")
            remaining = None
        # Only a served or a refused request speaks of the pool: Braze answers a 401
        # with empty headers, and errors of a proxy carry none.
        if odd and status in (200, 429) and not self._warned_headers:
            self._warned_headers = True
            logger.warning(
                "Rate governor: Braze's rate-limit headers for pool '%s' are not usable (%s); "
                "they are taken as unknown (this run warns once): requests go by "
                "max_requests_per_hour and wait after a 429.",
                pool,
                "; ".join(odd),
            )
        return (
            None if limit is None else int(limit),
            None if remaining is None else int(remaining),
            reset,
        )

    def _implausible(self, name: str, value: float) -> str | None:
        if name == "X-RateLimit-Reset":
            wall = self._wall()
            if value > wall + MAX_RESET_DISTANCE:
                return f"{value:.0f} is more than a day away (epoch milliseconds?)"
            if value < wall - MAX_RESET_DISTANCE:
                return f"{value:.0f} is more than a day ago"
            return None
        if name == "X-RateLimit-Limit" and not 1 <= value <= MAX_LIMIT:
            return f"{value:g} is not a request count"
        if value > MAX_LIMIT:
            return f"{value:g} is not a request count"
        return None

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
        available = state.remaining - state.in_flight - self._reserve(state)
        if available > 0:
            if not self._paced(pool, state, available):
                return 0.0, ""
            return state.next_at - now, (
                f"pacing: this run plans {state.planned:,} more requests, Braze says "
                f"{state.remaining:,} remain before its reset and others use it"
            )
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

    def _paced(self, pool: str, state: _PoolState, available: int) -> bool:
        """Whether requests to a pool are paced now: shared, and too little left for the plan.

        What remains must serve what the run still plans and what the others may still
        send this window: as much as they sent in the last one, less what they already
        did, and at least as much again as they did so far in this one.
        """
        others_to_come = max(state.others_before - state.others, state.others)
        paced = state.shared and state.planned + others_to_come > available
        now = self._clock()
        if (
            paced
            and not state.pacing
            and (state.logged_at is None or now - state.logged_at >= LOG_EVERY)
        ):
            state.logged_at = now
            logger.info(
                "Rate governor: pool '%s': this run plans %d more requests and Braze says %d "
                "remain before its reset for everyone using it; pacing requests to it.",
                pool,
                state.planned,
                state.remaining,
            )
        state.pacing = paced
        return paced

    def _pace(self, state: _PoolState) -> float:
        """Seconds until the next request to a shared pool: its remainder spread to the reset."""
        if not state.pacing or state.reset_at is None or state.remaining is None:
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


def _header_value(raw: object) -> tuple[float | None, str | None]:
    """(value, None), (None, None) when absent, or (None, what is wrong with it)."""
    if raw is None:
        return None, "missing"
    text = str(raw).strip()
    if not text:
        return None, "empty"
    try:
        value = float(text)
    except ValueError:
        return None, f"{text[:20]!r} is not a number"
    if not math.isfinite(value):
        return None, f"{text[:20]!r} is not a finite number"
    if value < 0:
        return None, f"{text[:20]!r} is negative"
    return value, None
