"""The singer-sdk's private API, and the tap's copies of its sync loop, in one place.

The tap reaches past the SDK's public API where the public one costs too much or
says too much: state lookups that scan a list per record, a log line per
partition, a METRIC line tagged with the wrong partition, per-record steps that
change nothing, one family's streams synced together. Every private name it
imports, every private attribute it touches and every copy of an SDK method is
here, so that an SDK upgrade is checked in one module: tests/unit/test_sdk_pins.py
pins each behaviour relied on (the sources copied, the names and signatures used,
the log lines lowered) and names what to re-check when one changes. That is why
singer-sdk is pinned below its next minor (see pyproject.toml).

Outside this module the tap uses only the SDK's public API, and these overrides
of its public methods: `Stream.log`, `get_records`, `get_record_counter`,
`get_sync_timer`, `partitions`, `state_manager`, `STATE_MSG_FREQUENCY`,
`generate_child_contexts`; `Tap.sync_all`, `load_streams`, `discover_streams`,
`load_state`, `invoke`, `get_singer_command`; and two private ones in tap.py,
`Tap._setup_signal_handlers` and `Tap._validate_config`, whose pins are here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream, Tap, metrics
from singer_sdk.helpers._state import get_writeable_state_dict
from singer_sdk.helpers._util import load_json, utc_now
from singer_sdk.streams._state import StreamStateManager
from typing_extensions import override

if TYPE_CHECKING:
    from tap_braze_series.progress import StreamTally
    from tap_braze_series.writer import StateFlushingWriter

__all__ = [
    "QUIET_LINES",
    "UNHANDLED_ERROR",
    "PartitionRecordCounter",
    "QuietLines",
    "StateManager",
    "StreamStateManager",
    "StreamSyncTimer",
    "load_json",
    "own_state_manager",
    "stream_sync_steps",
    "sync_all",
    "tap_state",
    "write_state_message",
    "write_unchanged_record",
]

#: The SDK's line when a stream's sync raises (Stream.sync, and stream_sync_steps).
UNHANDLED_ERROR = "An unhandled error occurred while syncing '%s'"

#: The SDK's INFO lines that tell an operator nothing, logged at DEBUG instead: two
#: set-up lines (PluginBase), and the line StreamStateManager writes for every
#: partition (thousands on a large workspace; the progress lines and the summary
#: tell where the run stands).
QUIET_LINES = frozenset(
    {
        "Skipping parse of env var settings...",
        "Parsing env var for settings config...",
        "Starting incremental sync of '%s' with bookmark value: %s",
    }
)


class QuietLines(logging.Filter):
    """QUIET_LINES at DEBUG instead of INFO (shown only where DEBUG is enabled)."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg in QUIET_LINES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet(logger: logging.Logger) -> None:
    """Lower QUIET_LINES logged by `logger` itself (filters do not apply to its children)."""
    if not any(isinstance(f, QuietLines) for f in logger.filters):
        logger.addFilter(QuietLines())


# --- state --------------------------------------------------------------------------


class StateManager(StreamStateManager):
    """The SDK's (private) stream state manager, its per-partition INFO line lowered."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        quiet(self._logger)

    def partition_states(self) -> list[dict]:
        """The stream's list of partition states in the tap's state (made if missing)."""
        stream_state = get_writeable_state_dict(self.tap_state, self.stream_name)
        return stream_state.setdefault("partitions", [])


def own_state_manager(
    stream: Stream, make: Callable[[dict], StreamStateManager]
) -> StreamStateManager:
    """The stream's state manager, made once as `make(tap_state)` where the SDK keeps its own."""
    if stream._state_manager is None:
        stream._state_manager = make(stream._tap_state)
    return stream._state_manager


def tap_state(stream: Stream) -> dict:
    """The whole state of the tap, as the stream sees it."""
    return stream._tap_state


def write_state_message(stream: Stream) -> None:
    """A STATE message now (it covers only the records written)."""
    stream._write_state_message()


# --- metrics ------------------------------------------------------------------------


class PartitionRecordCounter(metrics.Counter):
    """The SDK's `record_count` counter, with each partition's records under its context.

    The SDK's counter only retags itself when the sync moves to the next partition:
    a stream's records, counted until the next interval or the end, were all logged
    under whichever partition was current then. This one logs what it counted
    before it moves on, so each METRIC line counts the records of the context it names.

    It counts what the stream's tally counts (the records written, see
    `BrazeStream._write_record_message`): the SDK increments it once per record it
    hands to the writer, a zero row left out included.
    """

    _context_logged = True  # nothing to log before the first context

    def __init__(
        self, metric: metrics.Metric, tags: dict, *, tally: StreamTally, log_interval: float
    ) -> None:
        super().__init__(metric, tags, log_interval=log_interval)
        self._tally = tally
        self._counted = tally.records

    @override
    def increment(self, value: int = 1) -> None:
        written = self._tally.records
        super().increment(written - self._counted)
        self._counted = written

    @override
    def with_context(self, value: Mapping[str, Any] | None) -> None:
        if self.value or not self._context_logged:
            self._pop()  # the partition that ends: its records, 0 if it had none
        super().with_context(value)
        self._context_logged = False

    @override
    def _pop(self) -> None:
        super()._pop()
        self._context_logged = True


class StreamSyncTimer(metrics.Timer):
    """The SDK's `sync_duration` timer, naming no partition: it times the whole stream.

    (The SDK's timer runs from the stream's first partition to its last and was
    tagged with the last one only.)
    """

    @override
    def with_context(self, value: Mapping[str, Any] | None) -> None:
        pass


# --- the sync loop ------------------------------------------------------------------


def write_unchanged_record(stream: Stream, writer: StateFlushingWriter, record: dict) -> None:
    """What `Stream._write_record_message` writes for a record its steps leave as it is.

    (Pass-through records: every property selected, no conformance, the identity
    stream map; see BrazeStream.records_pass_through.)
    """
    writer.write_record(stream.name, record, stream._stream_version, utc_now())
    stream.state_manager.is_flushed = False


def stream_sync_steps(stream: Stream) -> Iterator[dict[str, Any]]:
    """What `Stream.sync()` does for a whole stream (no context, no batches), a record a step.

    A copy of the SDK's method (its context, batch and ACTIVATE_VERSION branches
    left out: a series stream has none of them), as a generator that the family's
    driver advances (see Family.follow).
    """
    stream.log("Beginning sync of '%s' in %s mode", stream.name, stream.replication_method.lower())
    stream.context = None
    if signpost := stream.get_replication_key_signpost(None):
        stream._write_replication_key_signpost(None, signpost)
    stream._write_schema_message()
    try:
        yield from stream._sync_records()
    except Exception:
        stream.log(UNHANDLED_ERROR, stream.name, level=logging.ERROR)
        raise


def sync_all(tap: Tap, followed: Mapping[str, Iterator[Any]]) -> None:
    """`Tap.sync_all`, with the streams in `followed` run by their steps (what is left of them).

    A copy of the SDK's method; its skip of child streams is left out (no stream
    of this tap has a parent).
    """
    tap._reset_state_progress_markers()
    tap._set_compatible_replication_methods()
    if tap.state:
        tap._state_writer.write_state(tap.state)
    for stream in tap.streams.values():
        if not stream.selected and not stream.has_selected_descendents:
            tap.logger.info("Skipping deselected stream '%s'.", stream.name)
            continue
        steps = followed.get(stream.name)
        if steps is None:
            stream.sync()
        else:
            for _ in steps:  # what the driver left of it
                pass
        stream.finalize_state_progress_markers()
    for stream in tap.streams.values():
        stream.log_sync_costs()
