"""The tap as the profiler runs it: subclasses of the tap, of its series stream and of its
runtime, defined here, which choose the writer, the conformance level and the record
path, and which record a run's responses or serve them again from memory. Nothing of the
tap itself is changed: each variant is a class of its own, run like the tap.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.io_base import SingerWriter
from typing_extensions import override

from benchmarks.processes import RECORD
from tap_braze_series.catalog import SERIES
from tap_braze_series.client import Response
from tap_braze_series.config import Settings
from tap_braze_series.entities import EntityDirectory
from tap_braze_series.runtime import Runtime
from tap_braze_series.streams import ENTITY_STREAMS, SeriesStream
from tap_braze_series.tap import TapBrazeSeries, streams_by_path


@dataclass(frozen=True)
class RecordPath:
    writer: type[SingerWriter]
    conformance: TypeConformanceLevel
    sdk_path: bool  # whether every record takes the SDK's full path


RECORD_PATHS: dict[str, RecordPath] = {
    "SDK defaults: simplejson writer (flush per line), RECURSIVE conformance": RecordPath(
        SingerWriter, TypeConformanceLevel.RECURSIVE, True
    ),
    "msgspec writer (flush per line), RECURSIVE conformance": RecordPath(
        MsgSpecWriter, TypeConformanceLevel.RECURSIVE, True
    ),
    "msgspec writer (flush per line), conformance NONE": RecordPath(
        MsgSpecWriter, TypeConformanceLevel.NONE, True
    ),
    "tap writer (chunks flushed at STATE), conformance NONE": RecordPath(
        TapBrazeSeries.message_writer_class, TypeConformanceLevel.NONE, True
    ),
    "the tap as shipped: + records written directly when the SDK's steps change nothing": (
        RecordPath(TapBrazeSeries.message_writer_class, TypeConformanceLevel.NONE, False)
    ),
}


class Replay:
    """Every response of a real run (series, details, entity lists), then served from
    memory.

    A replayed run does the main thread's work only (shaping, SDK, writing): the
    worker threads no longer compete for the GIL, so a wall-clock profile of the
    main thread is not inflated by GIL waits.
    """

    def __init__(self) -> None:
        self.responses: dict[tuple, Response] = {}
        self.lists: dict[tuple, list[Any]] = {}

    @staticmethod
    def key(path: str, params: Mapping[str, Any] | None) -> tuple:
        return path, tuple(sorted((k, str(v)) for k, v in (params or {}).items()))


class ReplayRuntime(Runtime):
    """The run's shared objects, with its requests (series and details through `fetch`,
    entity lists through its directory's client) recorded into `replay` (`replaying`
    False) or answered from it."""

    def __init__(
        self,
        settings: Settings,
        by_path: Mapping[str, list[str]],
        *,
        replay: Replay,
        replaying: bool,
    ) -> None:
        super().__init__(settings, by_path)
        self.replay = replay
        self.replaying = replaying
        # The entity lists, read through the directory's client, recorded and replayed too.
        self.directory = EntityDirectory(ReplayLists(self), settings)  # type: ignore[arg-type]

    @override
    def fetch(self, path: str, params: dict[str, Any]) -> Response:
        key = self.replay.key(path, params)
        if self.replaying:
            return self.replay.responses[key]
        response = self.client.get(path, params)
        self.replay.responses[key] = response
        return response

    @override
    def reporting_fetch(self, family: str) -> Any:
        report = self.report

        def fetch(path: str, params: dict[str, Any]) -> Response:
            response = self.fetch(path, params)
            report.request_done(family)
            return response

        return fetch


class ReplayLists:
    """What the entity directory asks of a client (`paginate`), recorded or replayed."""

    def __init__(self, runtime: ReplayRuntime) -> None:
        self.runtime = runtime

    def paginate(self, endpoint: Any, params: Mapping[str, Any]) -> Iterator[Any]:
        replay = self.runtime.replay
        key = replay.key(endpoint.path, params)
        if not self.runtime.replaying:
            replay.lists[key] = list(self.runtime.client.paginate(endpoint, params))
        return iter(replay.lists[key])


def profiled_tap(
    variant: str | None = None, replay: Replay | None = None, replaying: bool = False
) -> type[TapBrazeSeries]:
    """The tap with the record path `variant` (the tap's own without one), its requests
    recorded into `replay` or, `replaying`, answered from it."""

    path = None if variant is None else RECORD_PATHS[variant]

    class ProfiledSeriesStream(SeriesStream):
        if path is not None:
            TYPE_CONFORMANCE_LEVEL = path.conformance
        if path is not None and path.sdk_path:

            @override
            def records_pass_through(self) -> bool:
                return False  # every record through the SDK's steps

    class ProfiledTap(TapBrazeSeries):
        if path is not None:
            message_writer_class = path.writer

            @override
            def discover_streams(self) -> list:
                # The tap's streams, its series streams of the class above.
                series = [ProfiledSeriesStream(self, spec) for spec in SERIES]
                self.runtime.add_families(series)
                return [*(cls(tap=self) for cls in ENTITY_STREAMS), *series]

        @cached_property
        @override
        def runtime(self) -> Runtime:
            settings = Settings.parse(self.config)
            if replay is None:
                return Runtime(settings, streams_by_path(settings))
            return ReplayRuntime(
                settings, streams_by_path(settings), replay=replay, replaying=replaying
            )

    return ProfiledTap


@dataclass
class OutputCount:
    records: int = 0


@contextlib.contextmanager
def singer_output_counted(stderr_path: Path) -> Iterator[OutputCount]:
    """This process's stdout into a pipe that `grep -c` (a process of its own) reads,
    counting the RECORD lines; its stderr into `stderr_path`. As a target reads a tap's
    stdout, and nothing of the counting on this process's CPU."""
    sys.stdout.flush()
    sys.stderr.flush()
    counter = subprocess.Popen(
        ["grep", "-c", "-F", RECORD.decode()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert counter.stdin is not None
    saved_out, saved_err = os.dup(1), os.dup(2)
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(counter.stdin.fileno(), 1)
    os.dup2(err, 2)
    count = OutputCount()
    try:
        yield count
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, err):
            os.close(fd)
        out, _ = counter.communicate()
        count.records = int(out.strip() or 0)
