"""Singer messages, states and bookmarks; the streams' keys and partitions."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# --- the streams' keys and partitions, as the tap documents them ----------------------

#: stream -> (primary key with app_ids set, partition context columns, series path)
STREAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "canvas_data_series": (("canvas_id", "time"), ("canvas_id",), "/canvas/data_series"),
    "canvas_variant_data_series": (
        ("canvas_id", "variant_id", "time"),
        ("canvas_id",),
        "/canvas/data_series",
    ),
    "canvas_step_data_series": (
        ("canvas_id", "step_id", "time"),
        ("canvas_id",),
        "/canvas/data_series",
    ),
    "canvas_step_message_data_series": (
        ("canvas_id", "step_id", "time", "channel", "message_index"),
        ("canvas_id",),
        "/canvas/data_series",
    ),
    "campaign_data_series": (("campaign_id", "time"), ("campaign_id",), "/campaigns/data_series"),
    "campaign_message_data_series": (
        ("campaign_id", "time", "channel", "variation_api_id"),
        ("campaign_id",),
        "/campaigns/data_series",
    ),
    "event_data_series": (
        ("event_name", "app_id", "time"),
        ("event_name", "app_id"),
        "/events/data_series",
    ),
    "event_data_series_hourly": (
        ("event_name", "app_id", "time"),
        ("event_name", "app_id"),
        "/events/data_series",
    ),
    "segment_data_series": (("segment_id", "time"), ("segment_id",), "/segments/data_series"),
    "session_data_series": (("app_id", "time"), ("app_id",), "/sessions/data_series"),
    "session_data_series_hourly": (("app_id", "time"), ("app_id",), "/sessions/data_series"),
    "purchase_quantity_series": (
        ("product", "app_id", "time"),
        ("product", "app_id"),
        "/purchases/quantity_series",
    ),
}
ENTITY_KEYS = {"canvases": ("id",), "campaigns": ("id",), "segments": ("id",), "events": ("name",)}


def unit_of(stream: str) -> str:
    return "hour" if stream.endswith("_hourly") else "day"


def keys_of(stream: str) -> tuple[str, ...]:
    return STREAMS[stream][0] if stream in STREAMS else ENTITY_KEYS[stream]


def partition_of(stream: str, record: Mapping[str, Any]) -> tuple:
    return tuple(record[c] for c in STREAMS[stream][1])


def record_key(stream: str, record: Mapping[str, Any]) -> tuple:
    return tuple(record[k] for k in keys_of(stream))


def context_key(stream: str, record: Mapping[str, Any]) -> tuple:
    """The state partition (sorted context items) a record belongs to."""
    return tuple(sorted((c, record[c]) for c in STREAMS[stream][1]))


def keyed(records: Iterable[Mapping], keys: Iterable[str]) -> dict[tuple, Mapping]:
    """Records by primary key; fails on a duplicate key."""
    keys = tuple(keys)
    result: dict[tuple, Mapping] = {}
    for record in records:
        key = tuple(record[k] for k in keys)
        assert key not in result, f"duplicate primary key {key}"
        result[key] = record
    return result


# --- messages ---------------------------------------------------------------------------


@dataclass
class TapRun:
    """A finished run: its exit status, output, and the messages of its stdout."""

    returncode: int
    stdout: str
    stderr: str
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    states: list[dict] = field(default_factory=list)
    schemas: dict[str, dict] = field(default_factory=dict)

    @property
    def state(self) -> dict | None:
        return self.states[-1] if self.states else None


def parse_messages(stdout: str, run: TapRun) -> None:
    """Add the RECORD, STATE and SCHEMA messages of `stdout` to `run`."""
    for line in stdout.splitlines():
        if not line.strip():
            continue
        message = parse_line(0, line)
        if message.kind == "RECORD":
            run.records[message.stream].append(message.record)
        elif message.kind == "STATE":
            run.states.append(message.value)
        elif message.kind == "SCHEMA":
            run.schemas[message.stream] = message.raw


@dataclass
class Message:
    """One line of a run's stdout."""

    index: int  # 0-based line number in the run's stdout
    kind: str
    stream: str | None
    record: dict | None
    value: dict | None
    raw: dict = field(default_factory=dict, repr=False)


def parse_line(index: int, line: str) -> Message:
    message = json.loads(line)
    return Message(
        index,
        message["type"],
        message.get("stream"),
        message.get("record"),
        message.get("value"),
        message,
    )


# --- states and bookmarks ---------------------------------------------------------------


def bucket_order(value: str) -> dt.date | dt.datetime:
    """A `time` or bookmark as something comparable (hours as UTC instants)."""
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)


def bookmarks(state: Mapping[str, Any] | None) -> dict[str, dict[tuple, str]]:
    """stream -> {partition context (sorted items) -> replication_key_value}.

    `state` is a Singer state or what `meltano state get` prints (it wraps one in
    `singer_state`). A stream bookmarked without partitions has the context `()`;
    a partition without a bookmark is left out.
    """
    state = state or {}
    state = state.get("singer_state", state)
    out: dict[str, dict[tuple, str]] = {}
    for stream, stream_state in (state.get("bookmarks") or {}).items():
        entries = stream_state.get("partitions")
        if entries is None:
            entries = [dict(stream_state, context={})]
        for entry in entries:
            value = entry.get("replication_key_value")
            if value is not None:
                context = tuple(sorted((entry.get("context") or {}).items()))
                out.setdefault(stream, {})[context] = value
    return out
