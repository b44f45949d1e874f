"""Stopping a run: SIGTERM, SIGINT, a reader that closed stdout, a fatal error.

One run-wide `Stop` ends every wait at once: the rate governor's, the backoff
between retries, and requests in flight (their sockets are shut down). Each
worker checks it before every request, so nothing is sent once it is set.

Signals never run tap code in the middle of something else: the handler is a
no-op, and the byte Python writes to its wakeup fd is read by a watcher thread,
which sets the stop. (Raising from a handler, as the SDK's does with
`sys.exit`, interrupts whatever the main thread was doing, a write to stdout
included: a half line was written, and the same records again after it.) The
main thread, at its next safe point, raises `RunStopped`; the console script
then writes a final STATE, says why it stopped, and exits without joining the
worker threads: one still blocked on a socket must not delay the exit.

The forced exit never cuts a line: the writer holds `LINE` while it writes one,
and the exit waits for it as long as the reader keeps taking the line (it
stops waiting once nothing was taken for LINE_STALL_SECONDS).

The same watcher polls stdout: Linux reports POLLERR on a pipe's write end once
its reader is gone, so a target that exits stops the run within a second even
when the tap writes nothing for a while.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

SIGNAL_EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}
# The run's exit is forced this long after a stop whatever the main thread is doing
# (orchestrators send SIGKILL after a grace period; 5 s is the shortest common one).
HARD_EXIT_SECONDS = 4.5
# The final STATE is handed to a slow reader until this long after the stop.
FINAL_WRITE_SECONDS = 3.5
# How often a thread waiting on something else looks at the stop.
POLL_SECONDS = 0.1
READER_GONE = "the reader of stdout closed the pipe"
# The forced exit waits for a line under way while its reader takes some of it at
# least this often.
LINE_STALL_SECONDS = 1.0


class LineGuard:
    """Held by the writer while a line is under way; `progress` counts bytes written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.progress = 0

    def acquire(self, timeout: float = -1) -> bool:
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def wait_for_line_end(self) -> bool:
        """Take the guard once the line under way ends; False if its reader stalled."""
        seen = self.progress
        while not self.acquire(timeout=LINE_STALL_SECONDS):
            if self.progress == seen:
                return False
            seen = self.progress
        return True


LINE = LineGuard()


class RunStopped(BaseException):
    """Raised at a safe point once the run must stop.

    A BaseException, so that no `except Exception` on the way (the SDK logs those
    as unhandled errors) mistakes it for a failure.
    """


class Stop:
    """The run-wide stop: set once, by a signal, a closed stdout or a fatal error."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""
        self.exit_code = 0
        self.at: float | None = None  # time.monotonic() of the request
        self.signal: int | None = None
        # Writes what is pending and a final STATE within the seconds given; says
        # whether the STATE was written. Set by the tap.
        self.finisher: Callable[[float], bool] | None = None

    def request(self, reason: str, exit_code: int, signum: int | None = None) -> bool:
        """Stop the run; the first request wins. Returns whether this one did."""
        with self._lock:
            if self._event.is_set():
                return False
            self.reason, self.exit_code, self.signal = reason, exit_code, signum
            self.at = time.monotonic()
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()
        return True

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from the stopping thread) when the stop is requested."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise RunStopped if the run must stop."""
        if self._event.is_set():
            raise RunStopped(self.reason)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or raise RunStopped as soon as the run must stop."""
        if self._event.wait(seconds):
            raise RunStopped(self.reason)

    def remaining(self, seconds: float) -> float:
        """Seconds left until `seconds` after the stop (all of them if not stopped)."""
        if self.at is None:
            return seconds
        return max(0.0, self.at + seconds - time.monotonic())


_installed: Stop | None = None


def installed() -> Stop | None:
    """The console script's stop, or None when the tap runs inside another program."""
    return _installed


def install() -> Stop:
    """Route SIGTERM/SIGINT and a closed stdout to a new run-wide stop (main thread only)."""
    global _installed
    stop = Stop()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    for signum in SIGNAL_EXIT:
        signal.signal(signum, _ignore)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    watcher = threading.Thread(
        target=_watch, args=(stop, wake_read), name="tap-braze-series-stop", daemon=True
    )
    watcher.start()
    atexit.register(_ignore_late_signals)
    _installed = stop
    return stop


def _ignore_late_signals() -> None:
    """From the last exit handler on, SIGTERM and SIGINT are ignored.

    At exit the interpreter puts back the default action of every signal it handled,
    and that action ends the process by the signal: a SIGTERM in the last milliseconds
    of a run whose every line and final STATE are written made it exit as killed
    (status -15), not with the run's own status. Registered at install, this runs
    after the exit handlers registered later (the writer's last flush).
    """
    for signum in SIGNAL_EXIT:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)


def _ignore(signum: int, frame: Any) -> None:
    """A Python-level handler must exist for the wakeup fd to be written; it does nothing."""


def _watch(stop: Stop, wake_read: int) -> None:
    poller = select.poll()
    poller.register(wake_read, select.POLLIN)
    stdout = sys.__stdout__.fileno() if sys.__stdout__ is not None else None
    if stdout is not None:
        # No event asked for: POLLERR / POLLHUP are always reported, and nothing else is.
        poller.register(stdout, 0)
    while True:
        timeout = None if stop.at is None else stop.remaining(HARD_EXIT_SECONDS) * 1000
        if timeout is not None and timeout <= 0:
            # Never in the middle of a line (held while the reader takes it): the
            # output ends on a whole line, and no new one is started.
            whole = LINE.wait_for_line_end()
            cut = "" if whole else "; the reader stopped taking a line, which is cut"
            say(f"did not stop within {HARD_EXIT_SECONDS:.0f} s ({stop.reason}); exiting now{cut}.")
            os._exit(stop.exit_code or 1)
        for fd, events in poller.poll(timeout):
            if fd == wake_read:
                for signum in os.read(wake_read, 64):
                    if signum in SIGNAL_EXIT:
                        name = signal.Signals(signum).name
                        stop.request(f"stopped by {name}", SIGNAL_EXIT[signum], signum)
            elif events & select.POLLNVAL:
                poller.unregister(fd)  # stdout was closed by the tap itself: nothing to watch
            elif events & (select.POLLERR | select.POLLHUP):
                poller.unregister(fd)
                reader_gone(stop)


def reader_gone(stop: Stop) -> None:
    """The reader of stdout closed it: stop, and never write (or flush) to it again."""
    if stop.request(READER_GONE, 1):
        # Later writes, and the interpreter's own flush at exit, go nowhere instead
        # of failing with a BrokenPipeError traceback.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)


def exit_now(code: int) -> None:
    """Flush stderr and leave, without joining threads still blocked on a socket."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def say(message: str) -> None:
    """One line on stderr, as the console script's errors are."""
    with contextlib.suppress(OSError, ValueError):
        print(f"tap-braze-series: {message}", file=sys.stderr, flush=True)
