"""The sandbox's log of served requests."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One served request.

    ``started`` is wall-clock epoch seconds (``time.time()``) when the request
    had been read; ``duration`` is seconds until its response was about to be
    written (or the connection dropped) -- the record is appended at that moment,
    so a client holding a response always finds it in the log; ``in_flight``
    counts requests being served when this one started, itself included;
    ``status`` is 0 for a dropped connection; ``latency`` is the delay the
    sandbox added on purpose (``latency``, plus ``tail_latency`` for a request of
    the tail).
    """

    path: str
    params: dict[str, str]
    status: int
    started: float
    duration: float
    in_flight: int
    fault: str | None = None
    pool: str = "default"
    client_port: int = 0  # the client's TCP port: equal ports = a reused keep-alive connection
    latency: float = 0.0
    point_faults: tuple[str, ...] = ()  # "missing", "duplicate", "reordered" (see points.py)

    @property
    def ended(self) -> float:
        return self.started + self.duration


class RequestLog:
    """Thread-safe, list-like log of :class:`RequestRecord` (append-only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._items.append(record)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __getitem__(self, index: Any) -> Any:
        with self._lock:
            return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"
