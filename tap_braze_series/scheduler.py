"""Fetch concurrently, hand results over in order: a slow response stalls nobody.

Records must come out in a deterministic order (partition, then time), yet Braze's
response times have a long tail. Taking results in plan order with a fixed
lookahead lets one slow response stop every new request while the other workers
idle. `OrderedFetcher` instead:

- starts the next request the moment a worker is free (the worker that finished
  starts it; the consuming thread only plans what comes next);
- keeps results that arrive before their turn in a reorder buffer and hands them
  over strictly in plan order;
- bounds that buffer by bytes: once `max_buffered_bytes` wait, no request starts
  until the consumer takes some. Requests start in plan order, so the one the
  consumer waits for (the head of the line) is always in flight or done: a full
  buffer never deadlocks. What waits is at most the budget plus the responses
  still in flight (one per worker);
- after a failure starts nothing more, hands over what is already in order and
  then raises, without waiting for slower responses still in flight.

Results should be compact (undecoded bodies): what they cost is `size(result)`.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: What the reorder buffer may hold by default: a few seconds of responses at full speed.
DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class OrderedFetcher(Generic[T, R]):
    """`(item, fetch(item))` in item order, with up to `workers` fetches running.

    `wants(item)` is asked when an item's turn to start comes: False hands the
    item over with None and no request (a marker, or work that became moot).
    """

    def __init__(
        self,
        executor: Executor,
        fetch: Callable[[T], R],
        items: Iterable[T],
        *,
        workers: int,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        size: Callable[[R], int] = lambda _result: 0,
        wants: Callable[[T], bool] = lambda _item: True,
    ) -> None:
        self._executor = executor
        self._fetch = fetch
        self._items = iter(items)
        self._workers = max(1, workers)
        self._max_bytes = max_buffered_bytes
        self._size = size
        self._wants = wants
        # Planned (taken from `items`) but not started; planning is the consumer's.
        self._planned_ahead = 2 * self._workers
        self._cond = threading.Condition()
        self._ready: collections.deque[tuple[int, T]] = collections.deque()
        self._done: dict[int, tuple[T, R | _Failed | None, int]] = {}
        self._next_seq = 0  # sequence number of the next planned item
        self._head = 0  # sequence number of the next item to hand over
        self._exhausted = False
        self._closed = False
        self._failure: BaseException | None = None
        self.in_flight = 0
        self.buffered_bytes = 0  # sizes of results done and not handed over yet
        self.peak_buffered_bytes = 0
        self.started = 0

    def __iter__(self) -> Iterator[tuple[T, R | None]]:
        try:
            while True:
                self._plan()
                with self._cond:
                    taken = self._take_head()
                if taken is None:
                    continue  # more to plan before waiting
                if taken is _END:
                    return
                yield taken  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        """Start nothing more; responses still in flight are dropped when they come."""
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._done.clear()
            self.buffered_bytes = 0

    def abort(self, error: BaseException) -> None:
        """Start nothing more, drop what waits, and have the consumer raise `error` now."""
        with self._cond:
            self.close()
            self._failure = error
            self._cond.notify_all()

    # The consumer's side.

    def _plan(self) -> None:
        """Take items from the plan (outside the lock: planning may do I/O), then start them."""
        planned: list[T] = []
        with self._cond:
            wanted = self._planned_ahead - len(self._ready)
            if self._exhausted or self._closed or self._failure is not None:
                wanted = 0
        if wanted > 0:
            for item in self._items:
                planned.append(item)
                if len(planned) >= wanted:
                    break
            else:
                with self._cond:
                    self._exhausted = True
        if planned or self._exhausted:
            with self._cond:
                for item in planned:
                    self._ready.append((self._next_seq, item))
                    self._next_seq += 1
                self._start_ready()

    def _take_head(self) -> tuple[T, R | None] | object | None:
        """The head of the line once done (raising its error); _END; None: plan more first."""
        while True:
            entry = self._done.pop(self._head, None)
            if entry is not None:
                item, result, size = entry
                self._head += 1
                self.buffered_bytes -= size
                self._start_ready()
                if isinstance(result, _Failed):
                    raise result.error
                return item, result
            if self._failure is not None:
                # A later request failed: what is in order was handed over; do not wait
                # for slower responses before stopping.
                raise self._failure
            if self._head == self._next_seq and self._exhausted:
                return _END
            if not self._exhausted and len(self._ready) < self._planned_ahead // 2:
                return None
            self._cond.wait()

    # Either side, under the lock.

    def _start_ready(self) -> None:
        while self._ready and not self._closed and self._failure is None:
            seq, item = self._ready[0]
            if not self._wants(item):
                self._ready.popleft()
                self._done[seq] = (item, None, 0)
                self._cond.notify_all()
                continue
            if self.in_flight >= self._workers or self.buffered_bytes >= self._max_bytes:
                return
            self._ready.popleft()
            self.in_flight += 1
            self.started += 1
            try:
                self._executor.submit(self._run, seq, item)
            except RuntimeError as exc:  # the executor shut down (interpreter exit)
                self.in_flight -= 1
                self._failure = exc
                self._cond.notify_all()
                return

    # A worker's side.

    def _run(self, seq: int, item: T) -> None:
        result: R | _Failed
        size = 0
        try:
            result = self._fetch(item)
            size = self._size(result)
        except BaseException as exc:  # handed to the consumer, which raises it
            result = _Failed(exc)
        with self._cond:
            self.in_flight -= 1
            if self._closed:
                return
            if isinstance(result, _Failed) and self._failure is None:
                self._failure = result.error
            self._done[seq] = (item, result, size)
            self.buffered_bytes += size
            self.peak_buffered_bytes = max(self.peak_buffered_bytes, self.buffered_bytes)
            self._start_ready()
            self._cond.notify_all()


_END = object()
