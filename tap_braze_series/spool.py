"""The on-disk spool: rows one request serves, kept for a family's other members.

A family's driver shapes each response for every member; the rows of the
members that sync after it wait here, in a temporary file per member, so memory
stays flat in the number of entities and the history length (see feed.py). A
full temporary folder is a `SpoolFullError`: one line naming the folder and how
to give it room.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from tap_braze_series.client import BrazeError


class SpoolFullError(BrazeError):
    """The temporary folder holding the spools is full."""


class Spool:
    """Records the driver keeps on disk for another member, one batch per response.

    The driver appends while the member reads (see `Family.follow`): reads and
    writes keep their own positions in the one file. Once the member has read
    everything written, the file is emptied before the next write, so a followed
    member's spool holds about one partition's rows, not the whole run's.
    """

    def __init__(self) -> None:
        # Closed by close(), when the member has read it or the run ends.
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="tap-braze-series-spool-")  # noqa: SIM115
        self.complete: set[int] = set()
        self._read_at = 0
        self._rows_written = 0
        self._rows_complete = 0  # rows of the partitions ended so far
        self._rows_read = 0
        # Where each partition's end marker starts and stops in the file.
        self._ends: dict[int, tuple[int, int]] = {}

    def write(self, index: int, records: list[dict[str, Any]]) -> None:
        """Keep the records one response holds for partition `index`."""
        if records:
            with _disk_full_is_an_error():
                self._seek_end()
                # One pickle per batch, not per record: pickling costs mostly per call.
                pickle.dump((index, records), self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._rows_written += len(records)

    def end(self, index: int) -> None:
        with _disk_full_is_an_error():
            self._seek_end()
            start = self._file.tell()
            pickle.dump((index, None), self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._ends[index] = (start, self._file.tell())
        self.complete.add(index)
        self._rows_complete = self._rows_written

    def _seek_end(self) -> None:
        """Move to the end for a write, emptying the file first if all of it was read."""
        size = self.size()  # and the position is at the end
        if size and self._read_at == size:
            # A read in progress resumes from _read_at, so it reads the next write.
            self._file.seek(0)
            self._file.truncate()
            self._read_at = 0
            self._ends.clear()

    def size(self) -> int:
        """Bytes the spool's file holds now."""
        return self._file.seek(0, os.SEEK_END)

    def backlog(self) -> int:
        """Rows of ended partitions not read yet."""
        return self._rows_complete - self._rows_read

    def read(self, index: int) -> Iterator[dict[str, Any]]:
        """The records of partition `index`; partitions are read in the order written."""
        while True:
            self._file.seek(self._read_at)
            try:
                # A fresh unpickler per batch: one kept across loads would memoise
                # every object it ever read, and memory would grow with the spool.
                item_index, records = pickle.load(self._file)
            except EOFError:
                return
            self._read_at = self._file.tell()
            if records is None:
                if item_index == index:
                    return
                continue
            if item_index != index:  # rows of a partition the member did not ask for
                self._rows_read += len(records)
                continue
            # The partition's end marker right after its last batch is taken now: a
            # member advanced up to its last row has then read the whole file, which
            # the next write can empty.
            marker_at, after_marker = self._ends.get(index, (-1, -1))
            ended = marker_at == self._read_at
            if ended:
                self._read_at = after_marker
            for record in records:
                self._rows_read += 1
                yield record
            if ended:
                return

    def close(self) -> None:
        self._file.close()


@contextlib.contextmanager
def _disk_full_is_an_error() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        folder = tempfile.gettempdir()
        raise SpoolFullError(
            f"the temporary folder {folder} is full ({exc.strerror}): the tap keeps the "
            "rows one request serves for the family's other streams there. Free space in "
            f"{folder}, or set TMPDIR to a folder with more room (about the rows of one "
            "partition per stream)."
        ) from None
