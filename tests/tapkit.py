"""Test helpers: run the tap for real (a subprocess) against the sandbox, and the oracle."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tap_braze_series.sandbox import Workspace

TAP = [sys.executable, "-m", "tap_braze_series.tap"]

#: The readings of Braze the tap must be right under (docs/braze.md), as sandbox
#: settings: as recorded (count series leave out their zero buckets; a datetime
#: `ending_at` names the bucket holding the instant just before it), a datetime
#: `ending_at` naming the last bucket that ends by it, and zero-filled count series.
READINGS: dict[str, dict[str, str]] = {
    "recorded": {},
    "ends_by": {"ending_at_reading": "ends_by"},
    "zero_filled": {"count_zero_buckets": "filled"},
}


@dataclass
class TapRun:
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
    for line in stdout.splitlines():
        if not line.strip():
            continue
        message = json.loads(line)
        kind = message["type"]
        if kind == "RECORD":
            run.records[message["stream"]].append(message["record"])
        elif kind == "STATE":
            run.states.append(message["value"])
        elif kind == "SCHEMA":
            run.schemas[message["stream"]] = message


_catalog_cache: dict[str, dict] = {}


def catalog_for(config: Mapping[str, Any], streams: Iterable[str] | None) -> dict:
    """The tap's discovered catalog with only `streams` selected (all if None)."""
    key = json.dumps(config, sort_keys=True)
    if key not in _catalog_cache:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "config.json")
            path.write_text(json.dumps(config))
            out = subprocess.run(
                [*TAP, "--config", str(path), "--discover"],
                capture_output=True,
                text=True,
                check=True,
            )
        _catalog_cache[key] = json.loads(out.stdout)
    catalog = json.loads(json.dumps(_catalog_cache[key]))
    wanted = None if streams is None else set(streams)
    for entry in catalog["streams"]:
        selected = wanted is None or entry["tap_stream_id"] in wanted
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = selected
    return catalog


def run_tap(
    config: Mapping[str, Any],
    *,
    state: Mapping[str, Any] | None = None,
    streams: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    args: Iterable[str] = (),
) -> TapRun:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp, "config.json")
        config_path.write_text(json.dumps(config))
        command = [*TAP, "--config", str(config_path), *args]
        if streams is not None:
            catalog_path = Path(tmp, "catalog.json")
            catalog_path.write_text(json.dumps(catalog_for(config, streams)))
            command += ["--catalog", str(catalog_path)]
        if state is not None:
            state_path = Path(tmp, "state.json")
            state_path.write_text(json.dumps(state))
            command += ["--state", str(state_path)]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    run = TapRun(proc.returncode, proc.stdout, proc.stderr)
    parse_messages(proc.stdout, run)
    return run


def keyed(records: Iterable[Mapping], keys: Iterable[str]) -> dict[tuple, Mapping]:
    """Records by primary key; fails on a duplicate key."""
    keys = tuple(keys)
    result: dict[tuple, Mapping] = {}
    for record in records:
        key = tuple(record[k] for k in keys)
        assert key not in result, f"duplicate primary key {key}"
        result[key] = record
    return result


# --- the oracle -------------------------------------------------------------------------


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def entity_days(ws: Workspace, entity: Any, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days a canvas's or campaign's rows cover: none before the day it was created."""
    return days(max(first, ws.created_day(entity)), last)


def hour_starts(ws: Workspace, first: dt.date, last: dt.date) -> list[dt.datetime]:
    start = ws.day_start(first)
    end = ws.day_start(last + dt.timedelta(days=1))
    out = []
    while start < end:
        out.append(start)
        start = ws.next_bucket(start, "hour")
    return out


def expected_simple(
    ws: Workspace,
    path: str,
    field_name: str,
    *,
    unit: str,
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
    entities: Iterable[tuple[dict, str | None]] = (({}, None),),
    apps: Iterable[str] = ("*",),
    segments: Iterable[str] | None = None,
    bookmarked: bool = False,
) -> list[dict]:
    """Expected rows of a simple series: identity, app_id, [segment_id,] time, value.

    With `segments` ('*' for all users), rows carry segment_id and values are those
    of each segment's users.

    As the sandbox's readings make Braze answer (see docs/braze.md) and a run without
    state exports it: a count series whose zero buckets Braze leaves out has no row
    before its first non-zero bucket (unless `bookmarked`: a partition a run already
    bookmarked has rows with 0 from the start of its lookback) and none for a zero in
    the current, partial bucket (its other zeros are rows with 0); under the "ends_by" reading of
    `ending_at` the partial bucket never appears.
    """
    omitted = ws.omits_zero_buckets(path)
    partial_shown = ws.config.ending_at_reading == "instant"
    buckets = (
        hour_starts(ws, first, last)
        if unit == "hour"
        else [ws.day_start(d) for d in days(first, last)]
    )
    now_bucket_end = now
    rows = []
    audiences = [{}] if segments is None else [{"segment_id": s} for s in segments]
    for identity, entity in entities:
        for app in apps:
            for audience in audiences:
                segment = audience.get("segment_id", "*")
                seen_data = bookmarked
                for start in buckets:
                    if start >= now_bucket_end:
                        continue
                    partial = ws.next_bucket(start, unit) > now
                    if partial and not partial_shown:
                        continue
                    value = ws.series_value(
                        path,
                        start,
                        unit=unit,
                        entity=entity,
                        app_id=None if app == "*" else app,
                        segment_id=None if segment == "*" else segment,
                        now=now,
                    )
                    if omitted and value == 0 and (partial or not seen_data):
                        continue
                    seen_data = True
                    row = {
                        **identity,
                        "app_id": app,
                        **audience,
                        "time": ws.bucket_label(start, unit),
                    }
                    if unit == "hour":  # the company's day and hour of the bucket
                        local = start.astimezone(ws.tz)
                        row["date"] = local.date().isoformat()
                        row["hour"] = local.hour
                    row[field_name] = value
                    rows.append(row)
    return rows
