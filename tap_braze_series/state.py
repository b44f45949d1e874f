"""Bookmarks: one per entity partition, checked on input, O(1) to find, never moving back.

The SDK keeps partition states in a list and scans it on every lookup, which
makes a sync cost partitions x records. `PartitionedStateManager` keeps the
SDK's state format (so Meltano and `meltano state` read it as usual) and adds
a dict index over the list. Its bookmark is the latest bucket emitted for a
partition and only moves forward, even while the lookback re-reads older
buckets; the SDK advances it right after each record is written, so a STATE
message never claims a bucket that was not emitted before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from typing_extensions import override

from tap_braze_series.sdk import StateManager

REPLICATION_KEY = "time"


class StateError(ValueError):
    """The state input is malformed; the message says where and how to fix it."""


def partition_key(context: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable identity for a partition context."""
    return tuple(sorted(context.items()))


class PartitionedStateManager(StateManager):
    """The SDK's state manager with indexed partitions and forward-only bookmarks."""

    def __init__(self, *, order: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._order = order
        self._index: dict[tuple[tuple[str, Any], ...], dict] = {}
        self._indexed_list: list[dict] | None = None
        self._indexed_count = 0
        # The SDK passes the same context object for every record of a partition:
        # remember the last one to skip the lookup, and the order key of its bookmark.
        self._last_context: Mapping[str, Any] | None = None
        self._last_state: dict | None = None
        self._last_value: str | None = None
        self._last_order: Any = None

    def _partitions(self) -> list[dict]:
        partitions = self.partition_states()
        if partitions is not self._indexed_list or len(partitions) != self._indexed_count:
            self._index = {}
            for entry in partitions:
                key = partition_key(entry.get("context") or {})
                if key in self._index:
                    raise StateError(
                        f"State for stream '{self.stream_name}' lists partition "
                        f"{dict(key)} twice; remove the duplicate entry."
                    )
                self._index[key] = entry
            self._indexed_list = partitions
            self._indexed_count = len(partitions)
        return partitions

    @override
    def get_context_state(self, context: Mapping[str, Any] | None) -> dict:
        if not context:
            return self.stream_state
        if context is self._last_context and self._last_state is not None:
            return self._last_state
        partitions = self._partitions()
        key = partition_key(context)
        found = self._index.get(key)
        if found is None:
            found = {"context": dict(context)}
            partitions.append(found)
            self._index[key] = found
            self._indexed_count += 1
        self._last_context, self._last_state = context, found
        return found

    def bookmark(self, context: Mapping[str, Any]) -> str | None:
        """The partition's bookmark, without creating an entry for it."""
        self._partitions()
        found = self._index.get(partition_key(context))
        if not found:
            return None
        value = found.get("replication_key_value")
        return value if isinstance(value, str) and value else None

    def bookmarks(self) -> list[tuple[dict, str]]:
        """(context, bookmark) of every partition the state holds a bookmark for."""
        return [
            (dict(entry.get("context") or {}), value)
            for entry in self._partitions()
            if isinstance(value := entry.get("replication_key_value"), str) and value
        ]

    @override
    def increment_state(
        self,
        latest_record: dict,
        *,
        context: Mapping[str, Any] | None = None,
        replication_key: str,
    ) -> None:
        value = latest_record.get(replication_key)
        if not isinstance(value, str):
            return
        state = self.get_context_state(context)
        current = state.get("replication_key_value")
        if current == value:
            return
        if current is None:
            order = self._order(value)
        else:
            if current != self._last_value:
                self._last_value, self._last_order = current, self._order(current)
            order = self._order(value)
            if order <= self._last_order:
                return
        state["replication_key"] = replication_key
        state["replication_key_value"] = value
        self._last_value, self._last_order = value, order


def validate_state(state: object) -> None:
    """Check the shape of a state input before anything uses it."""
    fix = (
        "Fix the state file, or clear this tap's state (e.g. `meltano state clear "
        "<state id>`) to backfill from start_date."
    )
    if not isinstance(state, Mapping):
        raise StateError(f"State must be a JSON object, not {type(state).__name__}. {fix}")
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, Mapping):
        raise StateError(f"State 'bookmarks' must be an object. {fix}")
    for stream, stream_state in bookmarks.items():
        if not isinstance(stream_state, Mapping):
            raise StateError(f"State for stream '{stream}' must be an object. {fix}")
        partitions = stream_state.get("partitions", [])
        if not isinstance(partitions, list):
            raise StateError(f"State 'partitions' of stream '{stream}' must be a list. {fix}")
        seen: set[tuple] = set()
        for entry in partitions:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("context"), Mapping):
                raise StateError(
                    f"State for stream '{stream}' has a partition without a 'context' "
                    f"object: {entry!r}. {fix}"
                )
            try:
                key = partition_key(entry["context"])
                hash(key)
            except TypeError:
                raise StateError(
                    f"State for stream '{stream}' has a partition context with nested values: "
                    f"{dict(entry['context'])}. {fix}"
                ) from None
            if key in seen:
                raise StateError(
                    f"State for stream '{stream}' lists partition {dict(entry['context'])} "
                    f"twice. {fix}"
                )
            seen.add(key)
            value = entry.get("replication_key_value")
            if value is not None and not _is_iso(value):
                raise StateError(
                    f"State for stream '{stream}', partition {dict(entry['context'])}: "
                    f"replication_key_value {value!r} is not an ISO-8601 date or datetime. {fix}"
                )


def _is_iso(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        if len(value) == 10:
            dt.date.fromisoformat(value)
        else:
            dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def parse_bookmark(
    value: str, parse: Callable[[str], dt.date | dt.datetime], stream: str, context: Mapping
) -> dt.date | dt.datetime:
    """A bookmark string as a bucket, or a StateError naming the stream and partition."""
    try:
        return parse(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise StateError(
            f"State for stream '{stream}', partition {dict(context)}: bookmark {value!r} is "
            "not a valid time for this stream. Fix or remove that entry (or clear the "
            "state to backfill from start_date)."
        ) from exc
