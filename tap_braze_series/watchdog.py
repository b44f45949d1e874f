"""The deadline watchdog: a whole request bounded in time, every request ended at a stop.

urllib3's read timeout applies to each socket read: a server that sends a byte a
second is never timed out. `Deadlines` runs a thread that shuts down the socket
of a request still running at its deadline, and of every running request when
the run stops. The connections it watches (`Deadlines.watched_connection`) tell it
their sockets, never take an interim (1xx) answer for the final one, and are not
reused once the server sent more than the answer.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from typing_extensions import override

from tap_braze_series.stopping import Stop


class _Watch:
    """One request's deadline, and the socket to shut down when it passes."""

    __slots__ = ("deadline", "expired", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.sock: socket.socket | None = None


class Deadlines:
    """Bounds each request as a whole, and ends every request at a stop.

    urllib3's read timeout applies to each socket read: a server that sends a
    byte a second is never timed out. Here a watchdog thread shuts down the
    socket of a request still running at its deadline (from the start of the
    connection to the last byte), and of every running request when the run
    stops; the blocked read then fails at once, as a dropped connection.
    Connecting itself is bounded by urllib3's connect timeout.
    """

    def __init__(self, stop: Stop) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._running: dict[int, _Watch] = {}
        self._ids = itertools.count()
        self._local = threading.local()
        self._thread: threading.Thread | None = None
        self._stop = stop
        stop.on_stop(self._abort_all)

    @contextlib.contextmanager
    def watch(self, seconds: float) -> Iterator[_Watch]:
        """The request made in this block must end within `seconds`."""
        watch = _Watch(time.monotonic() + seconds)
        key = next(self._ids)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tap-braze-series-deadlines", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (watch.deadline, key, watch))
            self._running[key] = watch
            if self._heap[0][2] is watch:
                self._cond.notify()
        self._local.watch = watch
        try:
            yield watch
        finally:
            self._local.watch = None
            with self._cond:
                self._running.pop(key, None)
                watch.sock = None

    def attach(self, sock: socket.socket | None) -> None:
        """The socket this thread's request uses (called by the connection)."""
        watch = getattr(self._local, "watch", None)
        if watch is None or sock is None:
            return
        with self._cond:
            watch.sock = sock
            if watch.expired or self._stop.is_set():
                _shut(sock)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, key, watch = heapq.heappop(self._heap)
                    if self._running.get(key) is watch:
                        watch.expired = True
                        if watch.sock is not None:
                            _shut(watch.sock)
                timeout = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout)

    def _abort_all(self) -> None:
        with self._cond:
            for watch in self._running.values():
                if watch.sock is not None:
                    _shut(watch.sock)

    def watched_connection(self, cls: type) -> type:
        """`cls` (an urllib3 connection class) telling this watchdog its socket.

        Its responses skip interim (1xx) answers, and a connection that sent more
        than the answer asked for is not reused (see `_FinalResponse`).
        """
        deadlines = self

        class WatchedConnection(cls):  # type: ignore[misc, valid-type]
            response_class = _FinalResponse
            _last_response: _FinalResponse | None = None

            def connect(self) -> None:
                super().connect()
                deadlines.attach(self.sock)

            def request(self, *args: Any, **kwargs: Any) -> None:
                deadlines.attach(self.sock)  # a reused keep-alive connection
                super().request(*args, **kwargs)

            def getresponse(self) -> Any:
                response = super().getresponse()
                self._last_response = getattr(response, "_original_response", None)
                return response

            @property
            def is_connected(self) -> bool:
                # urllib3 asks this before reusing a kept-alive connection: one whose
                # server answered out of turn is closed, so no later request reads an
                # answer that was not its own.
                last = self._last_response
                if last is not None and last.out_of_turn:
                    return False
                return bool(super().is_connected)

        return WatchedConnection

    def watched_pool(self, cls: type) -> type:
        """`cls` (an urllib3 pool class) whose connections tell this watchdog their socket."""
        return type(
            cls.__name__, (cls,), {"ConnectionCls": self.watched_connection(cls.ConnectionCls)}
        )


class _FinalResponse(http.client.HTTPResponse):
    """http.client's response, never taking an interim (1xx) answer for the final one.

    http.client skips `100 Continue` only: a `103 Early Hints` would be returned as
    the answer (with no body), and the real answer, arriving next on the
    kept-alive connection, read as the answer to the next request. Every 1xx but
    101 is skipped here (101 was never asked for: an error). Bytes already there
    once the answer is complete were sent out of turn: the connection is marked
    so that it is not reused.
    """

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self._socket = sock
        self.out_of_turn = False
        self.interim = 0

    @override
    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if status == 101:
                self.out_of_turn = True
                raise http.client.HTTPException("an unasked-for 101 Switching Protocols")
            if not 100 <= status < 200:
                return version, status, reason
            self.interim += 1
            http.client.parse_headers(self.fp)  # an interim answer's headers, unused

    @override
    def _close_conn(self) -> None:
        fp = self.fp
        if fp is not None and not self.out_of_turn:
            self.out_of_turn = _unread_bytes(fp, self._socket)
        super()._close_conn()  # type: ignore[misc]


def _unread_bytes(fp: Any, sock: socket.socket) -> bool:
    """Whether the server sent more than the answer: in `fp`'s buffer, or on the socket."""
    try:
        timeout = sock.gettimeout()
    except OSError:
        return False
    try:
        sock.settimeout(0)
        return bool(fp.peek(1))
    except (BlockingIOError, OSError, ValueError):
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)


def _shut(sock: socket.socket) -> None:
    # shutdown (not close): the blocked reader wakes with end-of-file, and the file
    # descriptor stays the connection's until urllib3 discards it.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
