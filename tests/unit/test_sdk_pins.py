"""Each singer-sdk behaviour the tap relies on beyond the public API (see tap_braze_series/sdk.py).

An SDK upgrade that changes one of them fails here, naming what to re-check,
instead of changing a sync quietly. The copied methods' sources are pinned by
hash: the same in every release the pin allows (0.54.2 to 0.54.9).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import logging
import textwrap

import pytest
from singer_sdk import Stream, Tap, metrics
from singer_sdk.helpers import _state, _util
from singer_sdk.plugin_base import PluginBase
from singer_sdk.streams._state import StreamStateManager

from tap_braze_series import sdk
from tap_braze_series.progress import StreamTally

# (SDK object, sha256 prefix of its source, what of the tap copies or relies on it)
COPIED = [
    (Stream.sync, "7441515638456148", "sdk.stream_sync_steps copies it"),
    (Tap.sync_all, "aaaa3fe9613757dc", "sdk.sync_all copies it"),
    (
        Stream._write_record_message,
        "ee0baffc7a6568f1",
        "sdk.write_unchanged_record writes what it writes for a pass-through record",
    ),
    (
        Stream._generate_record_messages,
        "bc10d4be8964fc26",
        "sdk.write_unchanged_record and BrazeStream.records_pass_through: the steps skipped",
    ),
    (
        Stream._sync_records,
        "fddc7b18a67db4b2",
        "sdk.PartitionRecordCounter (one increment after each written record), "
        "PartitionedStateManager (the calls it overrides), sdk.stream_sync_steps",
    ),
    (
        Stream.state_manager.fget,
        "6361caa85689195b",
        "sdk.own_state_manager keeps its manager where this property does",
    ),
]


def source_hash(obj: object) -> str:
    source = textwrap.dedent(inspect.getsource(obj))  # type: ignore[arg-type]
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("obj", "expected", "relied_on"), COPIED, ids=lambda v: "")
def test_the_copied_sdk_methods_are_unchanged(obj: object, expected: str, relied_on: str):
    assert source_hash(obj) == expected, (
        f"singer-sdk changed {obj.__qualname__}: re-check {relied_on}, then update its "  # type: ignore[attr-defined]
        "hash here."
    )


def parameters(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_the_private_functions_used_exist_with_their_signatures():
    assert parameters(_state.get_writeable_state_dict)[:2] == ["tap_state", "tap_stream_id"], (
        "re-check sdk.StateManager.partition_states"
    )
    state: dict = {}
    partitions = sdk.StateManager(
        tap_name="tap-braze-series", stream_name="s", tap_state=state
    ).partition_states()
    assert state == {"bookmarks": {"s": {"partitions": []}}}
    assert partitions is state["bookmarks"]["s"]["partitions"], "it must return the state's list"
    assert parameters(_util.load_json)[0] == "json_str", "re-check tap.invoke (--check)"
    assert _util.load_json('{"a": 1}') == {"a": 1}
    now = _util.utc_now()
    assert now.tzinfo is not None, "re-check sdk.write_unchanged_record (time_extracted)"
    assert abs(now - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(seconds=5)


def test_the_state_manager_api_overridden_is_unchanged():
    init = inspect.signature(StreamStateManager.__init__).parameters
    used = {
        "tap_name",
        "stream_name",
        "tap_state",
        "state_partitioning_keys",
        "is_sorted",
        "check_sorted",
    }
    assert used <= set(init), "re-check SeriesStream._new_state_manager"
    assert parameters(StreamStateManager.get_context_state) == ["self", "context"], (
        "re-check PartitionedStateManager.get_context_state"
    )
    assert parameters(StreamStateManager.increment_state) == [
        "self",
        "latest_record",
        "context",
        "replication_key",
    ], "re-check PartitionedStateManager.increment_state"
    manager = StreamStateManager(tap_name="tap-braze-series", stream_name="s", tap_state={})
    assert manager._logger.name == "tap-braze-series.s", "re-check sdk.StateManager (quiet)"
    assert hasattr(manager, "is_flushed"), "re-check sdk.write_unchanged_record"


def test_the_private_stream_and_tap_members_used_exist():
    stream_init = inspect.getsource(Stream.__init__)
    for attribute in ("self._state_manager", "self._tap_state", "self._stream_version"):
        assert attribute in stream_init, f"Stream no longer sets {attribute}: re-check sdk.py"
    for method in (
        "_write_state_message",
        "_write_replication_key_signpost",
        "_write_schema_message",
        "_sync_records",
        "_write_record_message",
    ):
        assert callable(getattr(Stream, method, None)), f"Stream.{method}: re-check sdk.py"
    for method in (
        "_reset_state_progress_markers",
        "_set_compatible_replication_methods",
        "_setup_signal_handlers",
    ):
        assert callable(getattr(Tap, method, None)), f"Tap.{method}: re-check sdk.py and tap.py"
    assert "self._state_writer" in inspect.getsource(Tap), "re-check sdk.sync_all"
    assert "raise_errors" in inspect.signature(PluginBase._validate_config).parameters, (
        "re-check TapBrazeSeries._validate_config"
    )
    assert "self._config" in inspect.getsource(PluginBase), (
        "re-check TapBrazeSeries._validate_config"
    )


def test_the_sdk_lines_lowered_and_matched_still_exist():
    sources = inspect.getsource(PluginBase) + inspect.getsource(StreamStateManager)
    for line in sdk.QUIET_LINES:
        assert f'"{line}"' in sources, f"the SDK no longer logs {line!r}: re-check sdk.QUIET_LINES"
    assert f'"{sdk.UNHANDLED_ERROR}"' in inspect.getsource(Stream.sync), (
        "re-check sdk.UNHANDLED_ERROR and BrazeStream.log"
    )


def test_the_per_partition_start_line_is_lowered_to_debug(caplog: pytest.LogCaptureFixture):
    manager = sdk.StateManager(tap_name="tap-braze-series", stream_name="s", tap_state={})
    with caplog.at_level(logging.INFO):
        manager.write_starting_replication_value(
            {"canvas_id": "c1"}, "INCREMENTAL", "time", {"start_date": "2024-01-01"}
        )
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    assert manager.get_context_state({"canvas_id": "c1"})["starting_replication_value"] == (
        "2024-01-01"
    ), "the SDK's method must still write the starting value"
    with caplog.at_level(logging.DEBUG, logger="tap-braze-series"):
        manager.write_starting_replication_value(
            {"canvas_id": "c2"}, "INCREMENTAL", "time", {"start_date": "2024-01-01"}
        )
    assert any("Starting incremental sync" in r.getMessage() for r in caplog.records)


def test_the_record_counter_counts_only_records_written():
    sync = inspect.getsource(Stream._sync_records)
    assert sync.index("self._write_record_message(record)") < sync.index(
        "record_counter.increment()"
    ), "re-check sdk.PartitionRecordCounter: it counts after the write"
    assert callable(getattr(metrics.Counter, "_pop", None)), "re-check sdk.PartitionRecordCounter"
    tally = StreamTally("s", ("/p", None))
    counter = sdk.PartitionRecordCounter(
        metrics.Metric.RECORD_COUNT, {}, tally=tally, log_interval=3600
    )
    for written in (True, False, True):  # the second, a zero row left out
        tally.records += written
        counter.increment()
    assert counter.value == 2
