"""Singer output: msgspec serialisation, flushed at STATE messages instead of every line.

The SDK's writers flush stdout after every message, a system call per record
that costs about a third of a sync's CPU. Records only matter to a target
together with the STATE message that follows them, so we gather lines in large
chunks and flush at each STATE (and at exit). A killed run loses at most the
records after its last STATE, which the next run, resuming from that STATE,
reads again.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import sys
import weakref
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl
from singer_sdk.singerlib import Message, StateMessage
from typing_extensions import override

# Lines are gathered up to this size before a write: fewer system calls.
CHUNK = 256 * 1024

_WRITERS: weakref.WeakSet[StateFlushingWriter] = weakref.WeakSet()


def flush_pending() -> None:
    """Write out what every writer gathered: before a last error line, so that the
    error stays the last line a reader of merged stdout and stderr sees (Meltano's
    `config test` shows that line)."""
    for writer in list(_WRITERS):
        with contextlib.suppress(OSError, ValueError):  # stdout closed: nothing to save
            writer.flush()


class StateFlushingWriter(MsgSpecWriter):
    """MsgSpecWriter that writes in large chunks and flushes after STATE messages."""

    # STATE messages written by this process: what an error line may say of them.
    states_written = 0

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        atexit.register(self.flush)
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
        """Hand what is gathered to stdout; with `force`, to the reader too."""
        if self._pending:
            sys.stdout.buffer.write(self._pending)
            self._pending.clear()
        if force:
            sys.stdout.flush()
