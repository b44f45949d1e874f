"""Singer output: msgspec serialisation, flushed at STATE messages instead of every line.

The SDK's writers flush stdout after every message, a system call per record
that costs about a third of a sync's CPU. Records only matter to a target
together with the STATE message that follows them, so we gather lines in large
chunks and flush at each STATE (and at exit). A killed run loses at most the
records after its last STATE, which the next run, resuming from that STATE,
reads again.

Every line reaches stdout whole, even when the run is stopped while a slow
target leaves the pipe full: into a pipe, only what fits without blocking is
written, cut after a newline, so the writer sees a stop between two lines (see
`PipeOutput`). A line longer than the pipe is written in pieces as the reader
takes them, holding `stopping.LINE` so that the forced exit finishes it first;
after a stop, a line is started only if it fits in the pipe or the reader's pace
lets it end before the forced exit.

The configured API key is taken out of what is written (see redact.py).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import errno
import fcntl
import os
import select
import stat
import sys
import termios
import time
import weakref
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl
from singer_sdk.singerlib import Message, StateMessage
from typing_extensions import override

from tap_braze_series import redact, stopping

# Lines are gathered up to this size before a write: fewer system calls.
CHUNK = 256 * 1024
PAGE = 4096

_WRITERS: weakref.WeakSet[StateFlushingWriter] = weakref.WeakSet()
# The reader's pace is measured over this many seconds of writes.
PACE_SECONDS = 3.0


class OutputError(Exception):
    """stdout cannot be written (a full disk, an I/O error): the run stops on one line."""


def flush_pending() -> None:
    """Write out what every writer gathered: before a last error line, so that the
    error stays the last line a reader of merged stdout and stderr sees (Meltano's
    `config test` shows that line)."""
    for writer in list(_WRITERS):
        with contextlib.suppress(OSError, ValueError, stopping.RunStopped):  # nothing to save
            writer.flush()


class StateFlushingWriter(MsgSpecWriter):
    """MsgSpecWriter that writes in large chunks and flushes after STATE messages."""

    # STATE messages written by this process: what an error line may say of them.
    states_written = 0

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._stop = stopping.installed()
        self._output: PipeOutput | None = None
        self._broken: OSError | None = None
        atexit.register(self._flush_at_exit)
        _WRITERS.add(self)

    @override
    def write_message(self, message: Message) -> None:
        # format_message returns a buffer the serialiser reuses: extend() copies it.
        self._pending += self.format_message(message)
        if isinstance(message, StateMessage):
            self.flush()
            StateFlushingWriter.states_written += 1
        elif len(self._pending) >= CHUNK:
            self.flush(force=False)

    def write_record(
        self, stream: str, record: dict[str, Any], version: int | None, extracted: dt.datetime
    ) -> None:
        """Write a RECORD message: the line `write_message(RecordMessage(...))` writes.

        Without the message object: for a record the SDK would pass through
        unchanged, building, checking and converting it cost more than encoding.
        """
        message: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": record}
        if version is not None:
            message["version"] = version
        message["time_extracted"] = extracted
        self._pending += serialize_jsonl(message)
        if len(self._pending) >= CHUNK:
            self.flush(force=False)

    def flush(self, *, force: bool = True) -> None:
        """Hand what is gathered to stdout (`force` is kept for the SDK's callers).

        Raises RunStopped, between two lines, if the run is stopped while the
        reader is slow: what is not written yet stays pending for `finish`.
        """
        if self._pending:
            self._write(deadline=None)

    def finish(self, state: dict[str, Any] | None, seconds: float) -> bool:
        """Write what is pending and a last STATE, for at most `seconds`.

        Returns whether the STATE was written. If the reader does not take it in
        time, the output ends after a whole line and the last STATE the reader got
        stays the one to resume from.
        """
        if state is not None:
            self._pending += self.format_message(StateMessage(value=state))
        written = self._write(deadline=time.monotonic() + seconds)
        if written and state is not None:
            StateFlushingWriter.states_written += 1
        return written

    def _write(self, deadline: float | None) -> bool:
        stop = self._stop
        if (stop is not None and stop.reason == stopping.READER_GONE) or self._broken:
            self._pending.clear()  # nobody reads, or nothing can be written: drop
            return False
        redact.redact_bytes(self._pending)
        try:
            output = self._output_for_stdout()
            if output is None:
                # stdout is not a file descriptor (the tap runs inside a program that
                # captures it): write through it.
                sys.stdout.buffer.write(self._pending)
                sys.stdout.flush()
                self._pending.clear()
                return True
            done, stopped = output.write(self._pending, stop, deadline)
        except BrokenPipeError:
            self._pending.clear()
            if stop is None:
                raise
            stopping.reader_gone(stop)
            raise stopping.RunStopped(stop.reason) from None
        except OSError as exc:
            self._pending.clear()
            self._broken = exc
            raise OutputError(unwritable_stdout(exc)) from None
        del self._pending[:done]
        if stopped and stop is not None:
            raise stopping.RunStopped(stop.reason)
        return not self._pending

    def _output_for_stdout(self) -> PipeOutput | None:
        # Anything written through sys.stdout (the SDK prints nothing during a sync,
        # but a library might) goes out first, in order.
        sys.stdout.flush()
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation included
            return None
        if self._output is None or self._output.fd != fd:
            self._output = PipeOutput(fd)
        return self._output

    def _flush_at_exit(self) -> None:
        with contextlib.suppress(OSError, OutputError, stopping.RunStopped):
            self.flush()


def unwritable_stdout(exc: OSError) -> str:
    """The error line for stdout that cannot be written."""
    cause = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"stdout cannot be written ({cause}): the disk or quota of the file stdout goes "
            "to is full; free space there, or send stdout to a target or another disk."
        )
    return f"stdout cannot be written ({cause}); check the file or device stdout goes to."


class PipeOutput:
    """Writes to one file descriptor, never blocking mid-line when it is a pipe.

    Into a pipe, each write is at most what the pipe has room for (its capacity
    less what is unread, less a page of slack: the kernel fills the pipe page by
    page) and ends after a newline; between two writes, a full pipe is waited
    for with poll, looking at the stop. A line longer than the room is written in
    pieces of the room. Other outputs (a file, a terminal) are written directly.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            self.is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
        except OSError:
            self.is_pipe = False
        self._capacity = PAGE
        # (monotonic time, bytes) of recent writes: the reader's pace.
        self._pace: collections.deque[tuple[float, int]] = collections.deque()
        if self.is_pipe:
            with contextlib.suppress(OSError, AttributeError):
                self._capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)

    def write(
        self, data: bytearray, stop: stopping.Stop | None, deadline: float | None
    ) -> tuple[int, bool]:
        """Write from the start of `data`: (bytes written, whether the stop cut it short).

        Without a deadline, keep going until all is written, unless `stop` is set
        (then return between two lines). With a deadline, ignore the stop and
        return when the deadline passes between two lines, or before a line that
        the reader would not take before the forced exit.

        Each line is written holding `stopping.LINE`, which the forced exit takes
        before it exits: a line once started is finished while the reader takes it.
        """
        done = 0
        total = len(data)
        holding = False
        try:
            with memoryview(data) as view:
                while done < total:
                    at_line_start = done == 0 or data[done - 1] == 0x0A
                    if at_line_start and holding:
                        stopping.LINE.release()  # between two lines: the forced exit may go
                        holding = False
                    if self.is_pipe:
                        waited = self._wait_writable(stop, deadline, data, done)
                        if waited is not None:
                            return done, waited
                        room = max(self._room(), 1)
                        stopped = at_line_start and stop is not None and stop.is_set()
                        if stopped and not self._can_finish(data, done, room, stop):
                            return done, deadline is None
                    if not holding:
                        stopping.LINE.acquire()
                        holding = True
                    if not self.is_pipe:
                        written = os.write(self.fd, view[done:])
                    else:
                        end = min(total, done + room)
                        if end < total:
                            newline = data.rfind(b"\n", done, end)
                            # Whole lines that fit; a line longer than the room goes in
                            # pieces of the room, each written as the reader frees it.
                            end = newline + 1 if newline >= done else end
                        written = os.write(self.fd, view[done:end])
                    done += written
                    self._pace.append((time.monotonic(), written))
                    stopping.LINE.progress += written
        finally:
            if holding:
                stopping.LINE.release()
        return done, False

    def _can_finish(self, data: bytearray, done: int, room: int, stop: stopping.Stop) -> bool:
        """Whether the line at `done` can be written before the forced exit (after a stop)."""
        end = data.find(b"\n", done)
        length = (end + 1 if end >= 0 else len(data)) - done
        if length <= room:
            return True
        now = time.monotonic()
        while self._pace and self._pace[0][0] < now - PACE_SECONDS:
            self._pace.popleft()
        if len(self._pace) < 2:
            return False
        elapsed = max(now - self._pace[0][0], 1e-3)
        pace = sum(n for _, n in self._pace) / elapsed  # bytes per second
        return (length - room) / pace < stop.remaining(stopping.HARD_EXIT_SECONDS)

    def _wait_writable(
        self, stop: stopping.Stop | None, deadline: float | None, data: bytearray, done: int
    ) -> bool | None:
        """None once the pipe has room; else, between two lines, True if stopped,
        False if the deadline passed."""
        at_line_start = done == 0 or data[done - 1] == 0x0A
        while True:
            if at_line_start:
                if deadline is None and stop is not None and stop.is_set():
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
            try:
                ready = select.select([], [self.fd], [self.fd], stopping.POLL_SECONDS)
            except InterruptedError:  # pragma: no cover - retried by Python itself
                continue
            if ready[1] or ready[2]:
                return None  # writable, or an error the write will tell

    def _room(self) -> int:
        """Bytes the pipe takes now without blocking (a lower bound)."""
        try:
            unread = int.from_bytes(
                fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder
            )
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTTY):
                return PAGE
            raise
        return max(self._capacity - unread - 2 * PAGE, PAGE)
