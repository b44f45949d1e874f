"""OrderedFetcher: plan order out, workers kept busy, a byte-bounded reorder buffer.

No timing: slow responses are fetches held on an event, and the tests wait for
what the fetcher reports (requests started, in flight, bytes buffered).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tap_braze_series.scheduler import OrderedFetcher

WORKERS = 4


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """A safety net against a hang, not a speed requirement."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


class Held:
    """A fetch whose calls can be held until released, one event per item."""

    def __init__(self, held: set[int] = frozenset(), fail: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.events = {i: threading.Event() for i in held}
        self.fail = fail
        self.called: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, item: int) -> bytes:
        with self.lock:
            self.called.append(item)
        if item in self.events:
            self.events[item].wait(30)
        if item in self.fail:
            raise ValueError(f"item {item} failed")
        return b"x" * 1000

    def release(self, item: int) -> None:
        self.events[item].set()

    def release_all(self) -> None:
        for event in self.events.values():
            event.set()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        yield pool


def consume(fetcher: OrderedFetcher, into: list) -> threading.Thread:
    def run() -> None:
        try:
            for item, result in fetcher:
                into.append((item, result))
        except Exception as exc:
            into.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_results_come_in_plan_order_whatever_order_responses_arrive(executor):
    items = list(range(40))
    fetch = Held(held=set(items))
    fetcher = OrderedFetcher(executor, fetch, items, workers=WORKERS)
    out: list = []
    thread = consume(fetcher, out)
    rng = random.Random(5)
    released: set[int] = set()
    while len(released) < len(items):
        wait_until(lambda: set(fetch.called) - released, "a request to answer")
        with fetch.lock:
            waiting = sorted(set(fetch.called) - released)
        item = rng.choice(waiting)  # answer any request in flight, not the oldest
        released.add(item)
        fetch.release(item)
    thread.join(30)
    assert [item for item, _ in out] == items
    assert all(result == b"x" * 1000 for _, result in out)


def test_a_slow_head_of_line_does_not_stop_other_requests(executor):
    items = list(range(60))
    fetch = Held(held={0})
    fetcher = OrderedFetcher(executor, fetch, items, workers=WORKERS, size=len)
    out: list = []
    thread = consume(fetcher, out)
    # While the first request hangs, the other workers go through the whole plan.
    wait_until(lambda: fetcher.started == len(items), "every request started")
    wait_until(lambda: fetcher.in_flight == 1, "all but the slow one answered")
    assert out == []  # nothing handed over before its turn
    assert fetcher.buffered_bytes == 1000 * (len(items) - 1)
    fetch.release(0)
    thread.join(30)
    assert [item for item, _ in out] == items
    assert fetcher.buffered_bytes == 0


def test_what_waits_is_bounded_by_bytes_and_the_head_is_in_flight(executor):
    items = list(range(500))
    budget = 20_000  # 20 responses of 1,000 bytes
    fetch = Held(held={0})
    fetcher = OrderedFetcher(
        executor, fetch, items, workers=WORKERS, max_buffered_bytes=budget, size=len
    )
    out: list = []
    thread = consume(fetcher, out)
    wait_until(lambda: fetcher.buffered_bytes >= budget, "the buffer full")
    wait_until(lambda: fetcher.in_flight == 1, "requests in flight answered")
    started = fetcher.started
    # Full: nothing more starts, and what waits is the budget plus what was in flight.
    assert 0 in fetch.called
    assert budget // 1000 < started <= budget // 1000 + WORKERS
    assert fetcher.buffered_bytes <= budget + (WORKERS - 1) * 1000
    assert len(fetch.called) == started
    fetch.release(0)
    thread.join(30)
    assert [item for item, _ in out] == items
    assert fetcher.peak_buffered_bytes <= budget + WORKERS * 1000
    assert len(fetch.called) == len(items)  # each request once


def test_a_failure_stops_new_requests_and_is_raised_without_waiting(executor):
    items = list(range(200))
    fetch = Held(held={0}, fail={3})
    fetcher = OrderedFetcher(executor, fetch, items, workers=WORKERS)
    out: list = []
    thread = consume(fetcher, out)
    thread.join(30)  # raised while the head of the line still hangs
    assert [kind for kind, _ in out] == ["raised"]  # nothing before: the head still hangs
    assert str(out[-1][1]) == "item 3 failed"
    started = fetcher.started
    assert started < len(items)
    fetch.release_all()
    wait_until(lambda: fetcher.in_flight == 0, "requests in flight answered")
    assert fetcher.started == started == len(fetch.called)


def test_items_not_wanted_are_handed_over_without_a_request(executor):
    items = list(range(30))
    fetch = Held()
    fetcher = OrderedFetcher(
        executor, fetch, items, workers=WORKERS, wants=lambda item: item % 3 != 0
    )
    out = list(fetcher)
    assert [item for item, _ in out] == items
    assert [item for item, result in out if result is None] == list(range(0, 30, 3))
    assert sorted(fetch.called) == [i for i in items if i % 3]
    assert fetcher.started == len(fetch.called)


def test_closing_early_starts_nothing_more(executor):
    fetch = Held()
    fetcher = OrderedFetcher(executor, fetch, range(1000), workers=WORKERS)
    iterator = iter(fetcher)
    assert [next(iterator)[0] for _ in range(3)] == [0, 1, 2]
    iterator.close()
    wait_until(lambda: fetcher.in_flight == 0, "requests in flight answered")
    started = fetcher.started
    assert started < 1000
    assert len(fetch.called) == started
